"""Offload tiers: blocks moving down and back up, counted by hand; reload against recompute."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from twinfer.errors import ConfigError
from twinfer.kvcache.offload import (
    BlockStore,
    OffloadTiers,
    breakeven_tokens,
    reload_beats_recompute,
    reload_time_s,
)
from twinfer.kvcache.tiers import TierSpec

HOST = TierSpec("host", capacity_bytes=200.0, read_bw_bytes_per_s=100.0, write_bw_bytes_per_s=100.0, latency_s=0.5)
SSD = TierSpec("ssd", capacity_bytes=300.0, read_bw_bytes_per_s=10.0, write_bw_bytes_per_s=10.0, latency_s=2.0)
BLOCK = 100.0  # bytes per block: host holds 2 blocks, SSD 3


def test_evicted_blocks_move_down_before_they_are_lost() -> None:
    tiers = OffloadTiers([HOST, SSD], BLOCK)
    assert tiers.demote([1, 2, 3]) == ()  # host keeps 2, 3 (most recent); 1 goes to SSD
    assert [tiers.level_of(k) for k in (1, 2, 3)] == [1, 0, 0]
    assert tiers.demote([4, 5]) == ()  # host 4, 5; SSD 1, 2, 3
    assert [tiers.level_of(k) for k in (1, 2, 3, 4, 5)] == [1, 1, 1, 0, 0]
    assert tiers.demote([6]) == (1,)  # host 5, 6; 4 to SSD, which drops its oldest, 1
    assert tiers.level_of(1) is None and tiers.level_of(4) == 1
    stats = tiers.stats
    assert stats.demoted_blocks == (6, 4) and stats.lost_blocks == 1


def test_lookup_and_reload_cost_by_hand() -> None:
    tiers = OffloadTiers([HOST, SSD], BLOCK)
    tiers.demote([1, 2, 3, 4, 5])  # host 4, 5; SSD 1, 2, 3
    plan = tiers.lookup([2, 3, 5, 9, 4])  # the run stops at 9, so 4 is not reloaded
    assert plan.keys == (2, 3, 5) and plan.blocks_per_level == (1, 2)
    # host: 0.5 + 1 * 100 / 100 = 1.5 s; SSD: 2 + 2 * 100 / 10 = 22 s
    assert plan.transfer_s == pytest.approx(23.5)
    tiers.take(plan)
    assert [tiers.level_of(k) for k in (2, 3, 5)] == [None, None, None]  # back on the device
    assert tiers.stats.reloaded_blocks == (1, 2)
    assert tiers.lookup([9]).blocks == 0 and tiers.lookup([9]).transfer_s == 0.0


def test_a_recomputed_block_is_not_kept_twice() -> None:
    tiers = OffloadTiers([HOST, SSD], BLOCK)
    tiers.demote([1, 2, 3])  # 1 in SSD
    tiers.demote([1])  # recomputed on the device and evicted again: back in host only
    assert tiers.level_of(1) == 0
    assert tiers.lookup([1]).blocks_per_level == (1, 0)


def test_shared_pool_serves_every_instance_and_keeps_its_copy() -> None:
    pool_spec = replace(SSD, name="pool", shared=True)
    pool = BlockStore(capacity_blocks=10)
    a = OffloadTiers([HOST, pool_spec], BLOCK, shared_store=pool)
    b = OffloadTiers([HOST, pool_spec], BLOCK, shared_store=pool)
    a.demote([1, 2, 3])  # A's host keeps 2, 3; 1 goes to the pool
    plan = b.lookup([1, 2])  # B sees 1 in the pool, not A's host copy of 2
    assert plan.keys == (1,) and plan.blocks_per_level == (0, 1)
    b.take(plan)
    assert 1 in pool and a.lookup([1]).keys == (1,)


def test_shared_level_must_be_last_with_a_store() -> None:
    pool_spec = replace(SSD, shared=True)
    with pytest.raises(ConfigError, match="shared"):
        OffloadTiers([pool_spec, HOST], BLOCK, shared_store=BlockStore(4))
    with pytest.raises(ConfigError, match="shared"):
        OffloadTiers([HOST, pool_spec], BLOCK)


def test_reload_against_recompute_by_hand() -> None:
    # Llama-3-70B KV: 320 KiB per token (gpu-and-serving.md). Over a 64 GB/s link a token
    # takes 327,680 / 64e9 = 5.12 us; with 10 us latency and a prefill of 100 us per token,
    # reload wins above 10e-6 / (100e-6 - 5.12e-6) = 0.1054 tokens, i.e. always.
    link = TierSpec("pcie", 1e12, 64e9, 64e9, 10e-6)
    kv = 320 * 1024
    assert reload_time_s(1000, kv, link) == pytest.approx(10e-6 + 1000 * 5.12e-6)
    assert breakeven_tokens(kv, link, 100e-6) == pytest.approx(10e-6 / (100e-6 - 5.12e-6))
    assert reload_beats_recompute(1, kv, link, 100e-6)
    # A 1 GB/s link needs 327.68 us per token: slower than 100 us of prefill, never worth it.
    slow = TierSpec("slow", 1e12, 1e9, 1e9, 10e-6)
    assert breakeven_tokens(kv, slow, 100e-6) == math.inf
    assert not reload_beats_recompute(100_000, kv, slow, 100e-6)
    # Latency-bound case: 1 ms latency, 1 us/token link, 2 us/token prefill -> 1000 tokens.
    lat = TierSpec("lat", 1e12, 1e9, 1e9, 1e-3)
    assert breakeven_tokens(1000, lat, 2e-6) == pytest.approx(1000)
    assert not reload_beats_recompute(999, 1000, lat, 2e-6)
    assert reload_beats_recompute(1001, 1000, lat, 2e-6)
