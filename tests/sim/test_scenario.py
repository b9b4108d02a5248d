"""Scenario files: schema errors name the file and key; examples load; runs are deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sim_factories import FixedCost

from twinfer.errors import ConfigError
from twinfer.sim import Scenario, load_scenario, simulate_fleet
from twinfer.sim.export import requests_table

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE = {
    "model": "llama-3-8b",
    "workload": {"num_requests": 300, "arrivals": {"kind": "poisson", "rate_per_s": 30},
                 "prompt_tokens": {"kind": "uniform", "low": 10, "high": 500},
                 "output_tokens": {"kind": "uniform", "low": 1, "high": 60}},
    "fleets": [{"name": "f", "pools": {"mixed": {"hardware": "h100"}}}],
}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_parse(path):
    scen = load_scenario(path)
    assert scen.fleets and scen.model


def test_unknown_key_names_file_and_path(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("model: llama-3-8b\nworkload: {trace: builtin:azure-conv-sample}\n"
                 "fleets:\n  - name: x\n    pools:\n      mixed: {hardware: h100, tpp: 2}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*pools\.mixed.*'tpp'"):
        load_scenario(f)


def test_bad_pool_roles_and_policy():
    with pytest.raises(ConfigError, match="prefill \\+ decode"):
        Scenario.from_dict({**BASE, "fleets": [{"name": "x", "pools": {"prefill": {"hardware": "h100"}}}]})
    with pytest.raises(ConfigError, match="unknown batching policy"):
        Scenario.from_dict({**BASE, "fleets": [{"name": "x", "pools": {"mixed": {
            "hardware": "h100", "batching": {"policy": "fifo"}}}}]})
    with pytest.raises(ConfigError, match="unknown policy 'fastest'"):
        Scenario.from_dict({**BASE, "fleets": [{"name": "x", "router": "fastest", "pools": {"mixed": {"hardware": "h100"}}}]})


def test_same_seed_gives_byte_identical_parquet(tmp_path):
    import pyarrow.parquet as pq

    scen = Scenario.from_dict(BASE)
    paths = []
    for k in range(2):
        res = simulate_fleet(scen, scen.fleets[0], seed=7, costs={"mixed": FixedCost(fixed_s=0.01, per_token_s=1e-5)})
        paths.append(tmp_path / f"r{k}.parquet")
        pq.write_table(requests_table([res]), paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = simulate_fleet(scen, scen.fleets[0], seed=8, costs={"mixed": FixedCost(fixed_s=0.01, per_token_s=1e-5)})
    assert not np.array_equal(other.requests["arrival_s"], res.requests["arrival_s"])
    assert res.summary["completed"] == 300


def _autoscaled(autoscale, pools=None):
    pools = pools or {"mixed": {"hardware": "h100", "count": 2}}
    return Scenario.from_dict({**BASE, "fleets": [{"name": "x", "pools": pools, "autoscale": autoscale}]})


def test_autoscale_defaults_and_errors_name_the_key_and_the_fix():
    cfg = _autoscaled({}).fleets[0].autoscale
    assert (cfg.policy, cfg.interval_s, dict(cfg.min_instances), dict(cfg.max_instances)) == \
        ("dynamo", 60.0, {"mixed": 1}, {"mixed": 4})
    assert Scenario.from_dict(BASE).fleets[0].autoscale is None
    with pytest.raises(ConfigError, match=r"fleets\[0\] \(x\)\.autoscale: unknown key 'delay_s'"):
        _autoscaled({"delay_s": 3})
    with pytest.raises(ConfigError, match=r"autoscale\.policy: unknown policy 'k8s'; choose one of dynamo"):
        _autoscaled({"policy": "k8s"})
    with pytest.raises(ConfigError, match=r"autoscale\.interval_s: expected a number"):
        _autoscaled({"interval_s": -5})
    with pytest.raises(ConfigError, match=r"starts with 2 instances, outside min_instances 3 \.\. max_instances 4"):
        _autoscaled({"min_instances": {"mixed": 3}})
    with pytest.raises(ConfigError, match=r"autoscale\.max_instances: unknown key 'decode'"):
        _autoscaled({"max_instances": {"decode": 3}})
    with pytest.raises(ConfigError, match=r"cold_ratio: must be below hot_ratio"):
        _autoscaled({"cold_ratio": 1.5})
    mixed_hw = {"prefill": {"hardware": "h100"}, "decode": {"hardware": "h200"}}
    with pytest.raises(ConfigError, match=r"both pools need the same hardware.*drop autoscale"):
        _autoscaled({}, mixed_hw)
    ok = {"prefill": {"hardware": "h100", "batching": {"policy": "continuous"}}, "decode": {"hardware": "h100", "count": 3}}
    assert dict(_autoscaled({}, ok).fleets[0].autoscale.max_instances) == {"prefill": 2, "decode": 6}


@pytest.mark.parametrize(("pool", "message"), [
    ({"hardware": "h100", "speculative": {"method": "eagle", "k": 2, "acceptance": "0.9,0.8"}},
     r"acceptance: give a number in \[0, 1\] or a list"),
    ({"hardware": "h100", "power_idle_w": 900, "power_max_w": 100}, "idle power must not exceed peak power"),
])
def test_pool_values_a_user_gets_wrong_are_named(pool, message):
    from twinfer.sim.scenario import PoolConfig

    with pytest.raises(ConfigError, match=message):
        PoolConfig.from_dict(pool, "pools.mixed")


def test_a_folder_is_not_a_scenario(tmp_path):
    from twinfer.sim.scenario import load_scenario

    with pytest.raises(ConfigError, match="is a folder"):
        load_scenario(tmp_path)
