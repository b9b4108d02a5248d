"""Prefix caching in the simulator: hit rates against a trace's reuse, KV accounting, the suffix-only prefill."""

from __future__ import annotations

import numpy as np
import pytest
from sim_factories import FixedCost, make_requests, theoretical_reuse

from twinfer.errors import ConfigError
from twinfer.kvcache.chain import ChainInterner
from twinfer.kvcache.tiers import TierSpec
from twinfer.models.step import StepShape
from twinfer.sim.cluster import FleetSim, LinkSetup
from twinfer.sim.metrics import request_columns
from twinfer.sim.pool import PoolSetup
from twinfer.sim.prefix_sched import PrefixScheduler, PrefixSetup
from twinfer.sim.prefix_stats import prefix_summary
from twinfer.sim.request import RequestState
from twinfer.sim.run import prefix_keys
from twinfer.sim.scheduler import BatchingConfig
from twinfer.workload import WorkloadConfig, build_workload


@pytest.fixture(scope="module")
def mooncake():
    """The shipped Mooncake conversation sample (1,000 requests, 512-token blocks)."""
    return build_workload(WorkloadConfig.from_dict({"trace": "builtin:mooncake-conv-sample"}, "test"),
                          np.random.default_rng(0))


def _fleet(cost, prefix: PrefixSetup | None, count: int = 1, router: str = "least_outstanding",
           budget: int = 8192) -> FleetSim:
    batching = BatchingConfig(policy="chunked", token_budget=budget)
    return FleetSim([PoolSetup("mixed", cost, count, batching, router, prefix)], kv_bytes_per_token=1000.0,
                    num_layers=10)


def _spaced_run(workload, capacity_blocks: int | None) -> FleetSim:
    """One instance, each request served alone (arrivals 1,000 s apart), KV room for the whole trace."""
    n = len(workload)
    sim = _fleet(FixedCost(kv_tokens=40_000_000, max_seqs=64), PrefixSetup(512, capacity_blocks))
    sim.load_workload(np.arange(n) * 1000.0, workload.prompt_tokens, workload.output_tokens,
                      prefix_keys(workload))
    sim.run_until()
    assert sim.completed == n
    return sim


def test_unbounded_cache_hits_the_traces_theoretical_reuse(mooncake):
    want = theoretical_reuse(mooncake, 512)
    assert 0.15 < want < 0.3  # the sample reuses about a fifth of its prompt tokens
    got = prefix_summary(_spaced_run(mooncake, None))["prefix_hit_rate"]
    assert got == pytest.approx(want, rel=1e-12)


def test_hit_rate_falls_as_the_cache_shrinks(mooncake):
    head = mooncake.head(300)
    rates = [prefix_summary(_spaced_run(head, cap))["prefix_hit_rate"] for cap in (None, 400, 100, 25, 0)]
    assert rates[0] == pytest.approx(theoretical_reuse(head, 512), rel=1e-12)
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[0] > rates[2] > rates[-1] == 0.0


def test_kv_accounting_balances_after_a_busy_run_with_evictions(mooncake):
    # A small KV cache and fast arrivals: requests share cached blocks, evict them, wait for room.
    head = mooncake.head(200)
    cost = FixedCost(fixed_s=0.002, per_token_s=2e-6, kv_tokens=200_000, max_seqs=32)
    sim = _fleet(cost, PrefixSetup(512), count=2)
    sim.load_workload(head.arrival_s / 4, head.prompt_tokens, head.output_tokens, prefix_keys(head))
    sim.run_until()
    assert sim.completed + sim.rejected == len(head)
    assert sim.rejected < 10
    evicted = 0
    for inst in sim.instances:
        sched = inst.sched
        assert isinstance(sched, PrefixScheduler)
        assert sched.cache.referenced_blocks == 0
        # every block is free or held by the cache (nothing leaked, nothing counted twice)
        assert sched.free_blocks + sched.cache.used_blocks * sched.rpb == sched.total_blocks
        evicted += sched.stats.evicted_blocks
    assert evicted > 0
    assert prefix_summary(sim)["prefix_hit_rate"] > 0


class _ContextCost(FixedCost):
    """FixedCost whose prefill steps also pay for every key/value read and every causal pair."""

    def step_time_s(self, shape: StepShape) -> float:
        return super().step_time_s(shape) + 1e-3 * shape.prefill_kv_tokens + 1e-5 * shape.prefill_attn_pairs


def test_only_the_uncached_suffix_is_prefilled_with_attention_over_the_whole_prompt():
    cost = _ContextCost(fixed_s=0.01, per_token_s=1e-4, kv_tokens=10_000)
    batching = BatchingConfig(policy="chunked", token_budget=4096, block_tokens=16)
    sim = FleetSim([PoolSetup("mixed", cost, 1, batching, "round_robin", PrefixSetup(16))],
                   kv_bytes_per_token=1.0, num_layers=1, record_timeline=True)
    # prompts of 40 tokens: two full 16-token blocks each; the second shares both with the first,
    # the third only the first
    keys = [np.array([0, 1]), np.array([0, 1]), np.array([0, 2])]
    sim.load_workload([0.0, 10.0, 20.0], [40, 40, 40], [1, 1, 1], keys)
    sim.run_until()
    steps = [e for e in sim.timeline if e[0] == "step"]
    assert [e[4] for e in steps] == [40, 8, 24]  # 40 - 32 cached, 40 - 16 cached
    # each step reads the K/V of all 40 tokens; causal pairs of n new tokens after c cached: n*c + n(n+1)/2
    for (_, _, start, end, n, _), cached in zip(steps, (0, 32, 16), strict=True):
        pairs = n * cached + n * (n + 1) // 2
        assert end - start == pytest.approx(0.01 + 1e-4 * n + 1e-3 * 40 + 1e-5 * pairs, rel=1e-12)
    s = prefix_summary(sim)
    assert s["prefix_hit_rate"] == pytest.approx((32 + 16) / 120)
    # saved: the whole prompt's batch-1 prefill minus the suffix's, for the two hits
    full = 0.01 + 1e-4 * 40 + 1e-3 * 40 + 1e-5 * 820
    saved = sum(full - (0.01 + 1e-4 * n + 1e-3 * 40 + 1e-5 * (n * c + n * (n + 1) // 2)) for n, c in ((8, 32), (24, 16)))
    assert s["prefix_saved_prefill_s"] == pytest.approx(saved, rel=1e-12)


def test_a_cache_that_holds_nothing_changes_no_timing(mooncake):
    # blocks: 0 runs every prefix-cache code path but never hits: each request's timestamps must
    # be bit-identical to the fleet without a cache.
    head = mooncake.head(150)
    cost = FixedCost(fixed_s=0.003, per_token_s=1e-6, kv_tokens=300_000, max_seqs=32)
    cols = []
    for prefix in (None, PrefixSetup(512, 0)):
        sim = _fleet(cost, prefix, count=2)
        sim.load_workload(head.arrival_s / 3, head.prompt_tokens, head.output_tokens,
                          prefix_keys(head) if prefix else None)
        sim.run_until()
        cols.append(request_columns(sim, 1.0, 0.1))
    for name, values in cols[0].items():
        np.testing.assert_array_equal(values, cols[1][name], err_msg=name)


def test_cache_bigger_than_the_kv_and_mismatched_blocks_are_clear_errors():
    with pytest.raises(ConfigError, match="more than one instance's KV cache holds"):
        _fleet(FixedCost(kv_tokens=5120), PrefixSetup(512, 11))
    with pytest.raises(ConfigError, match="whole number of KV blocks"):
        _fleet(FixedCost(), PrefixSetup(24))


def test_preempt_policy_evicts_cached_blocks_before_preempting():
    t, p, o = make_requests(60, 30.0, (64, 200), (50, 200), seed=3)
    interner = ChainInterner()  # four families of prompts sharing their leading blocks
    keys = [interner.keys_for(np.arange(int(x) // 16) % 3 + 100 * (i % 4)) for i, x in enumerate(p)]
    batching = BatchingConfig(policy="chunked", kv_policy="preempt", token_budget=512)
    sim = FleetSim([PoolSetup("mixed", FixedCost(kv_tokens=4000), 1, batching, "round_robin", PrefixSetup(16))],
                   kv_bytes_per_token=1.0, num_layers=1)
    sim.load_workload(t, p, o, keys)
    sim.run_until()
    sched = sim.instances[0].sched
    assert sim.completed == 60
    assert sched.free_blocks + sched.cache.used_blocks * sched.rpb == sched.total_blocks


@pytest.mark.parametrize(("read_bw", "reloads"), [(1.6e9, True), (1e6, False)])
def test_an_evicted_prefix_is_reloaded_from_a_tier_only_when_that_beats_recomputing_it(read_bw, reloads):
    # Blocks of 16 tokens x 1,000 B. The cache holds 2 blocks: B evicts A's two blocks to the tier,
    # then A comes back. Reloading 2 blocks takes 32,000 B / read_bw: 20 us from a fast tier
    # (recomputing 32 tokens takes 10 ms + 3.2 ms at batch 1), 32 ms from a slow one (recompute wins).
    tier = TierSpec("host", capacity_bytes=1e9, read_bw_bytes_per_s=read_bw, write_bw_bytes_per_s=read_bw,
                    latency_s=0.0)
    cost = FixedCost(fixed_s=0.01, per_token_s=1e-4, kv_tokens=10_000)
    batching = BatchingConfig(policy="chunked", token_budget=4096, block_tokens=16)
    setup = PrefixSetup(16, capacity_blocks=2, tiers=(tier,), kv_bytes_per_token=1000.0)
    sim = FleetSim([PoolSetup("mixed", cost, 1, batching, "round_robin", setup)], kv_bytes_per_token=1000.0,
                   num_layers=1)
    sim.load_workload([0.0, 10.0, 20.0], [40, 40, 40], [1, 1, 1], [np.array([0, 1]), np.array([2, 3]),
                                                                  np.array([0, 1])])
    sim.run_until()
    ttft = [r.first_token_s - r.arrival_s for r in sim.requests]
    s = prefix_summary(sim)
    assert s["prefix_evicted_blocks"] >= 2 and s["prefix_offloaded_blocks"] == s["prefix_evicted_blocks"]
    if reloads:
        assert s["prefix_tier_hit_tokens"] == 32
        assert s["prefix_reload_s"] == pytest.approx(32_000 / read_bw)
        assert ttft[2] == pytest.approx(32_000 / read_bw + 0.01 + 1e-4 * 8, rel=1e-9)
    else:
        assert s["prefix_tier_hit_tokens"] == 0
        assert ttft[2] == pytest.approx(0.01 + 1e-4 * 40, rel=1e-9)
    assert ttft[0] == pytest.approx(0.01 + 1e-4 * 40, rel=1e-9)


@pytest.mark.parametrize("shared", [True, False])
def test_a_shared_tier_lets_another_instance_reload_what_one_evicted(shared):
    # Two instances, round robin: r0 (blocks A) and r2 (blocks B) go to instance 0, whose cache holds 2 blocks,
    # so B pushes A down to the tier; r3 asks instance 1 for A. From a shared store (Mooncake) instance 1 reloads
    # A's 2 blocks (32,000 B at 1.6 GB/s = 20 us, against 10 ms + 3.2 ms to recompute them); from a local host
    # tier it cannot see them and prefills all 40 tokens.
    from twinfer.sim.run import shared_stores

    tier = TierSpec("pool", capacity_bytes=1e9, read_bw_bytes_per_s=1.6e9, write_bw_bytes_per_s=1.6e9,
                    latency_s=0.0, shared=shared)
    cost = FixedCost(fixed_s=0.01, per_token_s=1e-4, kv_tokens=10_000)
    batching = BatchingConfig(policy="chunked", token_budget=4096, block_tokens=16)
    setup = PrefixSetup(16, capacity_blocks=2, tiers=(tier,), kv_bytes_per_token=1000.0)
    setups = shared_stores([PoolSetup("mixed", cost, 2, batching, "round_robin", setup)])
    sim = FleetSim(setups, kv_bytes_per_token=1000.0, num_layers=1)
    a, b, c = np.array([0, 1]), np.array([2, 3]), np.array([4, 5])
    sim.load_workload([0.0, 10.0, 20.0, 30.0], [40] * 4, [1] * 4, [a, c, b, a])
    sim.run_until()
    ttft = [r.first_token_s - r.arrival_s for r in sim.requests]
    s = prefix_summary(sim)
    if shared:
        store = setups[0].prefix.shared_store
        assert store is not None and store.capacity_blocks == int(2 * 1e9 // 16_000)  # both instances' shares
        assert s["prefix_tier_hit_tokens"] == 32
        assert ttft[3] == pytest.approx(32_000 / 1.6e9 + 0.01 + 1e-4 * 8, rel=1e-9)
    else:
        assert setups[0].prefix.shared_store is None
        assert s["prefix_tier_hit_tokens"] == 0
        assert ttft[3] == pytest.approx(0.01 + 1e-4 * 40, rel=1e-9)


def _balanced(sched) -> bool:
    """No request holds cached blocks, and every KV block is free or the cache's."""
    return (sched.cache.referenced_blocks == 0 and not sched._held and not sched._leased
            and sched.free_blocks + sched.cache.used_blocks * sched.rpb == sched.total_blocks)


def test_cancelled_requests_leave_no_cache_references(mooncake):
    head = mooncake.head(120)
    sim = _fleet(FixedCost(fixed_s=0.004, per_token_s=1e-6, kv_tokens=150_000, max_seqs=16), PrefixSetup(512),
                 count=2)
    sim.load_workload(head.arrival_s / 5, head.prompt_tokens, head.output_tokens, prefix_keys(head))
    cancelled = 0
    for k in range(1, 60):
        sim.run_until(k * 0.5)
        for r in sim.requests[::7]:
            if r.state not in (RequestState.DONE, RequestState.CANCELLED, RequestState.REJECTED):
                sim.cancel(r)
    sim.run_until()
    cancelled = sim.cancelled
    assert cancelled > 5 and sim.completed + sim.rejected + cancelled == len(head)
    assert all(_balanced(i.sched) for i in sim.instances)


def test_a_prefill_pool_caches_and_releases_after_the_kv_hand_off(mooncake):
    head = mooncake.head(150)
    batching = BatchingConfig(policy="chunked", token_budget=8192)
    cost = FixedCost(fixed_s=0.003, per_token_s=1e-6, kv_tokens=200_000, max_seqs=16)
    sim = FleetSim([PoolSetup("prefill", cost, 2, batching, "kv_aware", PrefixSetup(512)),
                    PoolSetup("decode", cost, 2, batching, "least_outstanding")],
                   kv_bytes_per_token=1000.0, num_layers=10, link=LinkSetup(bw_bytes_per_s=1e10, latency_s=1e-4))
    sim.load_workload(head.arrival_s / 3, head.prompt_tokens, head.output_tokens, prefix_keys(head))
    sim.run_until()
    assert sim.completed + sim.rejected == len(head)
    prefill = sim.pools["prefill"].instances
    assert all(_balanced(i.sched) for i in prefill)
    s = prefix_summary(sim)
    assert s["pool.prefill.prefix_hit_rate"] == s["prefix_hit_rate"] > 0
    assert "pool.decode.prefix_hit_rate" not in s
    # a request's KV still crosses the link whole: the decode instance gets the full prompt
    assert sim.kv_bytes == 1000.0 * sum(r.prompt_tokens for r in sim.requests if r.kv_end_s == r.kv_end_s)
