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
