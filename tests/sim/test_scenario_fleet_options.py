"""Fleet options in scenario files: prefix-cache tiers and the workload a prefix cache needs, refused at load."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.sim import Scenario
from twinfer.sim.scenario_fleet_options import PrefixCacheConfig

MOONCAKE = {"trace": "builtin:mooncake-conv-sample", "max_requests": 50}
SYNTHETIC = {"num_requests": 5, "arrivals": {"kind": "poisson", "rate_per_s": 1.0},
             "prompt_tokens": {"kind": "fixed", "value": 100}, "output_tokens": {"kind": "fixed", "value": 10}}


def _load(fleet: dict, workload: dict) -> Scenario:
    return Scenario.from_dict({"model": "llama-3-8b", "workload": workload,
                               "fleets": [{"name": "plain", "pools": {"mixed": {"hardware": "h100"}}},
                                          {"name": "cached", **fleet}]}, "s.yaml")


@pytest.mark.parametrize(("fleet", "key"), [
    ({"prefix_cache": {"tiers": ["h100-host-dram", "h100-local-nvme", "h100-host-dram"]},
      "pools": {"mixed": {"hardware": "h100"}}}, "fleets[1] (cached).prefix_cache.tiers"),
    ({"pools": {"prefill": {"hardware": "h100", "prefix_cache": {"tiers": ["h100-host-dram", "h100-host-dram"]}},
                "decode": {"hardware": "h100"}}}, "fleets[1] (cached).pools.prefill.prefix_cache.tiers"),
])
def test_a_tier_listed_twice_is_refused_with_its_name(fleet, key):
    with pytest.raises(ConfigError) as err:
        _load(fleet, MOONCAKE)
    msg = str(err.value)
    assert msg.startswith(f"s.yaml.{key}: 'h100-host-dram' is listed twice") and "name each tier once" in msg


def test_distinct_tiers_keep_their_order():
    scen = _load({"prefix_cache": {"tiers": ["h100-host-dram", "h100-local-nvme"]},
                  "pools": {"mixed": {"hardware": "h100"}}}, MOONCAKE)
    assert scen.fleets[1].prefix_cache == {"mixed": PrefixCacheConfig(None, ("h100-host-dram", "h100-local-nvme"))}


@pytest.mark.parametrize(("fleet", "key"), [
    ({"prefix_cache": True, "pools": {"mixed": {"hardware": "h100"}}}, "fleets[1] (cached).prefix_cache"),
    ({"pools": {"prefill": {"hardware": "h100", "prefix_cache": {"blocks": 64}}, "decode": {"hardware": "h100"}}},
     "fleets[1] (cached).pools.prefill.prefix_cache"),
])
def test_a_prefix_cache_on_a_synthetic_workload_is_refused_at_load(fleet, key):
    with pytest.raises(ConfigError) as err:
        _load(fleet, SYNTHETIC)
    msg = str(err.value)
    assert msg.startswith(f"s.yaml.{key}: a prefix cache matches requests by their prefix block ids")
    assert "a synthetic workload" in msg and "or remove prefix_cache" in msg


def test_a_prefix_cache_on_a_csv_trace_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"fleets\[1\] \(cached\)\.prefix_cache: .*azure2023 CSV format"):
        _load({"prefix_cache": True, "pools": {"mixed": {"hardware": "h100"}}},
              {"trace": "builtin:azure-conv-sample", "max_requests": 50})


def test_a_disabled_prefix_cache_needs_no_block_ids():
    scen = _load({"prefix_cache": {"enabled": False}, "pools": {"mixed": {"hardware": "h100"}}}, SYNTHETIC)
    assert scen.fleets[1].prefix_cache == {}


def test_tiers_under_an_lpu_pool_are_refused_at_load():
    with pytest.raises(ConfigError, match=r"^s\.yaml\.fleets\[1\] \(cached\)\.pools\.mixed\.prefix_cache\.tiers: "
                                          r"offload tiers are modelled for GPUs only.*groq-tsp-v1.*remove the tiers"):
        _load({"pools": {"mixed": {"hardware": "groq-tsp-v1", "prefix_cache": {"tiers": ["h100-host-dram"]}}}},
              MOONCAKE)


@pytest.mark.parametrize(("pools", "key"), [
    ({"mixed": {"hardware": "h100", "batching": {"block_tokens": 1024}}}, "pools.mixed.batching.block_tokens"),
    ({"prefill": {"hardware": "h100", "batching": {"block_tokens": 48}}, "decode": {"hardware": "h100"}},
     "pools.prefill.batching.block_tokens"),
])
def test_kv_blocks_that_do_not_divide_the_prefix_blocks_are_refused_at_load(pools, key):
    """Mooncake's prefix blocks are 512 tokens: KV blocks of 1024 or 48 cannot hold one whole (before, the run
    failed only when the fleet started, naming no fleet or key)."""
    with pytest.raises(ConfigError) as err:
        _load({"prefix_cache": True, "pools": pools}, MOONCAKE)
    msg = str(err.value)
    assert msg.startswith(f"s.yaml.fleets[1] (cached).{key}: KV blocks of ") and "a divisor of 512" in msg


def test_kv_blocks_that_divide_the_prefix_blocks_load():
    scen = _load({"prefix_cache": True, "pools": {"mixed": {"hardware": "h100", "batching": {"block_tokens": 64}}}},
                 MOONCAKE)
    assert scen.fleets[1].pools["mixed"].batching.block_tokens == 64


def _autoscaled(prefill: dict, decode: dict) -> Scenario:
    return Scenario.from_dict({"model": "llama-3.3-70b", "workload": SYNTHETIC, "fleets": [
        {"name": "pd", "pools": {"prefill": prefill, "decode": decode}, "autoscale": {}}]}, "s.yaml")


def test_autoscale_names_each_instance_setting_the_pools_differ_in():
    """Before, the refusal listed every setting that must match without saying which one did not."""
    with pytest.raises(ConfigError) as err:
        _autoscaled({"hardware": "h100", "tp": 8}, {"hardware": "h100", "tp": 4, "precision": "fp8"})
    msg = str(err.value)
    assert msg.startswith("s.yaml.fleets[0] (pd).autoscale: the planner moves instances between prefill and decode")
    assert "they differ in tp (8 vs 4); precision (" in msg and msg.endswith("make them equal or drop autoscale")
    assert "hardware (" not in msg


def test_autoscale_lets_the_decode_pool_speculate():
    """A moved instance rejoins as a fresh instance of the other pool, so speculation is a role setting like batching."""
    spec = {"method": "draft", "draft_model": "llama-3.1-8b", "k": 4, "acceptance": 0.7}
    scen = _autoscaled({"hardware": "h100", "tp": 8}, {"hardware": "h100", "tp": 8, "speculative": spec})
    assert scen.fleets[0].pools["decode"].speculative.k == 4 and scen.fleets[0].autoscale is not None


def test_a_disabled_prefix_cache_still_has_its_tiers_checked():
    """`enabled: false` turns the cache off but a broken tier list is still named (before, it was accepted)."""
    with pytest.raises(ConfigError, match=r"^s\.yaml\.fleets\[1\] \(cached\)\.prefix_cache\.tiers: 'mooncake-store' "
                                          "is listed twice"):
        _load({"prefix_cache": {"enabled": False, "tiers": ["mooncake-store", "mooncake-store"]},
               "pools": {"mixed": {"hardware": "h100"}}}, MOONCAKE)
    scen = _load({"prefix_cache": {"enabled": False, "tiers": ["h100-host-dram"]},
                  "pools": {"mixed": {"hardware": "h100"}}}, SYNTHETIC)
    assert scen.fleets[1].prefix_cache == {}


def test_zero_device_blocks_under_tiers_are_refused():
    """Blocks reach a tier only by eviction from the device cache, and a cache of 0 blocks never evicts."""
    with pytest.raises(ConfigError, match=r"^s\.yaml\.fleets\[1\] \(cached\)\.prefix_cache\.blocks: 0 device blocks "
                                          r"under offload tiers \(h100-host-dram\).*never used"):
        _load({"prefix_cache": {"blocks": 0, "tiers": ["h100-host-dram"]}, "pools": {"mixed": {"hardware": "h100"}}},
              MOONCAKE)
    scen = _load({"prefix_cache": {"blocks": 0}, "pools": {"mixed": {"hardware": "h100"}}}, MOONCAKE)
    assert scen.fleets[1].prefix_cache["mixed"].blocks == 0


def test_autoscale_refuses_a_drafter_on_devices_of_its_own():
    """Its devices would make decode instances dearer than prefill ones, and the planner moves them between roles."""
    spec = {"method": "draft", "draft_model": "llama-3.1-8b", "k": 4, "acceptance": 0.7,
            "draft_devices": {"hardware": "h100"}}
    with pytest.raises(ConfigError, match=r"decode pool's drafter has devices of its own .* drop autoscale"):
        _autoscaled({"hardware": "h100", "tp": 8}, {"hardware": "h100", "tp": 8, "speculative": spec})
