"""KV-aware routing score: cost terms and choices worked out by hand."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.kvcache.kv_route import InstanceSnapshot, choose_instance, route_costs
from twinfer.kvcache.prefix_cache import PrefixCache

B = 16  # tokens per block


def _snap(iid: int, cache: PrefixCache, prefill_tokens: int = 0, kv_blocks: int = 0, queued: int = 0) -> InstanceSnapshot:
    return InstanceSnapshot(iid, prefill_tokens, kv_blocks, queued, cache.match)


def _cache_with(keys: list[int]) -> PrefixCache:
    cache = PrefixCache(capacity_blocks=None, block_tokens=B)
    cache.acquire(0, keys, len(keys) * B)
    cache.insert(0)
    cache.release(0)
    return cache


def test_cost_terms_by_hand() -> None:
    # Request: 4 blocks, 60 tokens. Instance 0 holds 3 of them and has 32 prefill tokens
    # queued and 10 active blocks; instance 1 holds none and is idle.
    keys = [1, 2, 3, 4]
    warm = _snap(0, _cache_with([1, 2, 3]), prefill_tokens=32, kv_blocks=10)
    cold = _snap(1, _cache_with([]))
    c0, c1 = route_costs(keys, 60, [warm, cold], block_tokens=B, overlap_weight=1.0)
    # instance 0: uncached 60 - 48 = 12 tokens; prefill (32 + 12)/16 = 2.75; decode 10 + 4 = 14
    assert (c0.cached_blocks, c0.prefill_blocks, c0.decode_blocks, c0.cost) == (3, 2.75, 14.0, 16.75)
    # instance 1: prefill 60/16 = 3.75; decode 0 + 4 = 4; cost 7.75
    assert (c1.cached_blocks, c1.prefill_blocks, c1.decode_blocks, c1.cost) == (0, 3.75, 4.0, 7.75)


def test_weight_trades_cache_against_load() -> None:
    keys = [1, 2, 3, 4]
    warm = _snap(0, _cache_with([1, 2, 3]), prefill_tokens=32, kv_blocks=10)
    cold = _snap(1, _cache_with([]))
    # weight 1: 16.75 vs 7.75 -> the idle one. weight 20: 2.75*20 + 14 = 69 vs 3.75*20 + 4 = 79
    # -> the warm one.
    assert choose_instance(keys, 60, [warm, cold], block_tokens=B, overlap_weight=1.0).instance_id == 1
    pick = choose_instance(keys, 60, [warm, cold], block_tokens=B, overlap_weight=20.0)
    assert pick.instance_id == 0
    assert (pick.cached_tokens, pick.best_cached_tokens) == (48, 48)


def test_choice_reports_the_best_cache_it_passed_over() -> None:
    keys = [1, 2]
    busy_warm = _snap(0, _cache_with([1, 2]), prefill_tokens=1000)
    idle = _snap(1, _cache_with([]))
    pick = choose_instance(keys, 20, [busy_warm, idle], block_tokens=B, overlap_weight=1.0)
    assert pick.instance_id == 1
    assert (pick.cached_tokens, pick.best_cached_tokens) == (0, 20)  # 2 blocks but only 20 tokens


def test_ties_go_to_fewer_queued_then_first() -> None:
    empty = _cache_with([])
    a, b, c = _snap(5, empty, queued=2), _snap(6, empty, queued=1), _snap(7, empty, queued=1)
    assert choose_instance([1], 10, [a, b, c], block_tokens=B).instance_id == 6


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="no candidate"):
        choose_instance([1], 10, [], block_tokens=B)
    with pytest.raises(ConfigError, match="overlap_weight"):
        route_costs([1], 10, [_snap(0, _cache_with([]))], block_tokens=B, overlap_weight=-1)
