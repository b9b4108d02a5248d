"""Prefix caching in scenario files: parsing, errors, and the Mooncake example end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_factories import FixedCost, theoretical_reuse

from twinfer.errors import ConfigError
from twinfer.sim import Scenario, load_scenario, simulate_fleet
from twinfer.sim.scenario import PrefixCacheConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MOONCAKE = {"trace": "builtin:mooncake-conv-sample", "max_requests": 120}


def _scenario(fleet: dict, workload: dict | None = None) -> Scenario:
    return Scenario.from_dict({"model": "llama-3-8b", "workload": workload or MOONCAKE,
                               "fleets": [{"name": "f", **fleet}]})


def test_fleet_level_cache_applies_to_pools_that_prefill_and_a_pool_may_override_it():
    scen = _scenario({"prefix_cache": {"enabled": True}, "pools": {
        "prefill": {"hardware": "h100", "prefix_cache": {"blocks": 64, "tiers": ["h100-host-dram"]}},
        "decode": {"hardware": "h100"}}})
    assert scen.fleets[0].prefix_cache == {"prefill": PrefixCacheConfig(64, ("h100-host-dram",))}
    scen = _scenario({"prefix_cache": True, "pools": {"mixed": {"hardware": "h100"}}})
    assert scen.fleets[0].prefix_cache == {"mixed": PrefixCacheConfig(None, ())}
    scen = _scenario({"prefix_cache": {"enabled": False}, "pools": {"mixed": {"hardware": "h100"}}})
    assert scen.fleets[0].prefix_cache == {}


@pytest.mark.parametrize(("fleet", "match"), [
    ({"router": "kv_aware", "pools": {"mixed": {"hardware": "h100"}}}, "kv_aware routes by cached prefixes"),
    ({"pools": {"prefill": {"hardware": "h100"}, "decode": {"hardware": "h100", "prefix_cache": True}}},
     "decode instances receive KV"),
    ({"prefix_cache": {"tiers": ["floppy"]}, "pools": {"mixed": {"hardware": "h100"}}}, "unknown tier 'floppy'"),
    ({"prefix_cache": {"tiers": ["mooncake-store", "h100-host-dram"]}, "pools": {"mixed": {"hardware": "h100"}}},
     "must be the one last tier"),
    ({"prefix_cache": {"blocks": -1}, "pools": {"mixed": {"hardware": "h100"}}}, "blocks"),
    ({"prefix_cache": {"size": 3}, "pools": {"mixed": {"hardware": "h100"}}}, "unknown key 'size'"),
])
def test_bad_prefix_cache_settings_are_clear_errors(fleet, match):
    with pytest.raises(ConfigError, match=match):
        _scenario(fleet)


def test_a_jsonl_trace_without_block_ids_is_refused_before_any_fleet_runs(tmp_path, monkeypatch):
    import twinfer.sim.run as run

    trace = tmp_path / "plain.jsonl"  # twinfer JSONL: ids are optional, so only reading it tells
    trace.write_text("".join(f'{{"arrival_s": {t}, "prompt_tokens": 64, "output_tokens": 4}}\n' for t in range(3)))
    scen = Scenario.from_dict({"name": "s", "model": "llama-3-8b", "workload": {"trace": str(trace)}, "fleets": [
        {"name": "plain", "pools": {"mixed": {"hardware": "h100"}}},
        {"name": "cached", "prefix_cache": True, "pools": {"mixed": {"hardware": "h100"}}}]})

    def no_fleet(*args, **kwargs):
        raise AssertionError("a fleet was simulated before the workload was checked")

    monkeypatch.setattr(run, "simulate_fleet", no_fleet)
    with pytest.raises(ConfigError, match=r"^scenario s\.fleets\[1\] \(cached\)\.prefix_cache: .*no row of the "
                                          r"twinfer-jsonl trace .* has prefix_block_ids"):
        run.simulate(scen)


def test_tiers_under_a_user_gpu_reach_the_simulator(tmp_path):
    import yaml

    from twinfer.hardware import get_hardware, spec_table

    hw = tmp_path / "hw.yaml"  # an H100 under another name: the tiers check must look in the hardware file
    hw.write_text(yaml.safe_dump({"gpu": {"my-h100": spec_table(get_hardware("h100"))}}))
    scen = Scenario.from_dict({"model": "llama-3-8b", "workload": MOONCAKE, "hardware_file": str(hw), "fleets": [
        {"name": "f", "prefix_cache": {"tiers": ["h100-host-dram"]}, "pools": {"mixed": {"hardware": "my-h100"}}}]})
    res = simulate_fleet(scen, scen.fleets[0], costs={"mixed": FixedCost()})
    assert res.summary["completed"] == MOONCAKE["max_requests"]


def test_the_mooncake_example_runs_and_reports_hit_rates():
    scen = load_scenario(EXAMPLES / "prefix_mooncake.yaml")
    names = [f.name for f in scen.fleets]
    assert names[0] == "no-cache" and not scen.fleets[0].prefix_cache
    assert {f.router for f in scen.fleets} >= {"round_robin", "least_outstanding", "kv_aware"}
    small = Scenario.from_dict({"model": scen.model, "workload": MOONCAKE, "fleets": [
        {"name": f.name, "router": f.router,
         "prefix_cache": {"tiers": list(f.prefix_cache["mixed"].tiers)} if f.prefix_cache else False,
         "pools": {"mixed": {"hardware": "h100", "count": 2}}} for f in scen.fleets]})
    cost = {"mixed": FixedCost(fixed_s=0.005, per_token_s=2e-6, kv_tokens=60_000)}
    for f in small.fleets:
        s = simulate_fleet(small, f, costs=cost).summary
        if not f.prefix_cache:
            assert not any(k.startswith(("prefix_", "pool.mixed.prefix")) for k in s)
            continue
        assert 0.0 < s["prefix_hit_rate"] < 1.0
        assert s["pool.mixed.prefix_hit_rate"] == s["prefix_hit_rate"]
        assert s["prefix_saved_prefill_s"] > 0
        assert s["prefix_evicted_blocks"] > 0  # a small KV cache: blocks are evicted ...
        assert (s["prefix_offloaded_blocks"] > 0) == bool(f.prefix_cache["mixed"].tiers)  # ... and kept below


def test_a_sessions_workload_hits_at_most_its_reuse_and_more_with_kv_aware_routing():
    sessions = {"arrivals": {"kind": "poisson", "rate_per_s": 2.0}, "sessions": {
        "num_sessions": 60, "system_prompts": 2, "system_prompt_tokens": 1024,
        "turns": {"kind": "uniform", "low": 2, "high": 6},
        "user_tokens": {"kind": "lognormal", "median": 100, "sigma": 0.5},
        "reply_tokens": {"kind": "lognormal", "median": 150, "sigma": 0.5}, "think_time_s": 20, "block_tokens": 16}}
    pools = {"mixed": {"hardware": "h100", "count": 4}}
    scen = Scenario.from_dict({"model": "llama-3-8b", "workload": sessions, "fleets": [
        {"name": "rr", "router": "round_robin", "prefix_cache": True, "pools": pools},
        {"name": "kv", "router": "kv_aware", "prefix_cache": True, "pools": pools}]})
    from twinfer.sim.run import build_scenario_workload

    wl = build_scenario_workload(scen, 0)
    reuse = theoretical_reuse(wl, 16)
    cost = {"mixed": FixedCost(fixed_s=0.005, per_token_s=1e-6)}
    rr, kv = (simulate_fleet(scen, f, workload=wl, costs=cost).summary["prefix_hit_rate"] for f in scen.fleets)
    assert 0 < rr < kv <= reuse
