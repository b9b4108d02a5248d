"""KV-aware routing in the simulator, and the audit of the router's choice against the best cached prefix."""

from __future__ import annotations

import numpy as np
import pytest
from sim_factories import FixedCost

from twinfer.errors import ConfigError
from twinfer.sim.cluster import FleetSim
from twinfer.sim.instance import InstanceLoads
from twinfer.sim.pool import PoolSetup
from twinfer.sim.prefix_sched import PrefixSetup
from twinfer.sim.prefix_stats import prefix_summary
from twinfer.sim.router import make_router
from twinfer.sim.scheduler import BatchingConfig

BATCHING = BatchingConfig(policy="chunked", token_budget=4096, block_tokens=16)


def _fleet(router: str, count: int = 3) -> FleetSim:
    return FleetSim([PoolSetup("mixed", FixedCost(kv_tokens=100_000), count, BATCHING, router, PrefixSetup(16))],
                    kv_bytes_per_token=1.0, num_layers=1)


def _conversation(turns: int, gap_s: float) -> tuple[list[float], list[int], list[int], list[np.ndarray]]:
    """One conversation: turn k's prompt extends turn k-1's by two 16-token blocks (chain keys 0, 1, 2, ...)."""
    t = [k * gap_s for k in range(turns)]
    prompts = [32 * (k + 1) + 5 for k in range(turns)]
    keys = [np.arange(2 * (k + 1)) for k in range(turns)]
    return t, prompts, [4] * turns, keys


def test_kv_aware_keeps_a_conversation_on_the_instance_holding_it():
    results = {}
    for router in ("round_robin", "kv_aware"):
        sim = _fleet(router)
        sim.load_workload(*_conversation(9, 5.0))
        sim.run_until()
        results[router] = prefix_summary(sim)
        instances = {r.prefill_instance for r in sim.requests}
        if router == "kv_aware":
            assert instances == {0}  # idle fleet: the holder always wins
    # every turn after the first reuses all earlier blocks on the holder: hand-counted tokens
    cached = sum(32 * k for k in range(9))
    prompt = sum(32 * (k + 1) + 5 for k in range(9))
    assert results["kv_aware"]["prefix_hit_rate"] == pytest.approx(cached / prompt)
    assert results["kv_aware"]["prefix_route_best_frac"] == 1.0
    assert results["kv_aware"]["prefix_route_cached_frac"] == 1.0
    # round robin visits each instance in turn: turn k finds turn k-3's blocks there
    cached_rr = sum(32 * (k - 2) for k in range(3, 9))
    assert results["round_robin"]["prefix_hit_rate"] == pytest.approx(cached_rr / prompt)
    assert results["round_robin"]["prefix_route_best_frac"] < 1.0


def test_kv_aware_leaves_a_busy_holder_for_an_idle_instance():
    sim = _fleet("kv_aware", count=2)
    pick = make_router("kv_aware")
    t, p, o, keys = _conversation(2, 5.0)
    sim.load_workload(t[:1], p[:1], o[:1], keys[:1])
    sim.run_until()
    loads = InstanceLoads(sim.pools["mixed"].instances)

    class Req:
        prompt_tokens = 69
        keys = np.arange(4)

    assert pick(loads, Req()) == 0  # idle fleet: the instance holding two of its four blocks
    hog = sim.instances[0].sched
    from twinfer.sim.request import Request

    for i in range(5):  # queue 5 x 2,000 prompt tokens on the holder
        hog.enqueue(Request(100 + i, 10.0, 2000, 10))
    assert pick(loads, Req()) == 1


def test_kv_aware_without_a_prefix_cache_is_a_clear_error():
    sim = FleetSim([PoolSetup("mixed", FixedCost(), 2, BATCHING, "kv_aware")], kv_bytes_per_token=1.0,
                   num_layers=1)
    sim.load_workload(*_conversation(2, 1.0))
    with pytest.raises(ConfigError, match="kv_aware router needs a prefix cache"):
        sim.run_until()
