"""PrefixCache: matching under the prefix rule, reference counts and LRU eviction, counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.kvcache.chain import ChainInterner
from twinfer.kvcache.prefix_cache import NO_STATS, PrefixCache


def _serve(cache: PrefixCache, rid: int, keys: list[int], tokens: int) -> int:
    hit = cache.acquire(rid, keys, tokens)
    cache.insert(rid)
    cache.release(rid)
    return hit


def test_match_is_read_only_and_stops_at_first_miss() -> None:
    cache = PrefixCache(capacity_blocks=None, block_tokens=4)
    _serve(cache, 0, [10, 11, 12], 12)
    assert cache.match([10, 11, 99, 12]) == 2
    assert cache.match([99, 10]) == 0
    assert 11 in cache and np.int64(12) in cache and 99 not in cache
    assert cache.stats.lookups == 1  # match() counted nothing


def test_cached_tokens_cap_at_a_partial_last_block() -> None:
    cache = PrefixCache(capacity_blocks=None, block_tokens=4)
    assert _serve(cache, 0, [1, 2, 3], 10) == 0  # 10 tokens: blocks of 4, 4, 2
    assert _serve(cache, 1, [1, 2, 3], 10) == 10  # not 12: the last block holds 2 tokens
    assert _serve(cache, 2, [1, 2, 7, 8], 15) == 8
    stats = cache.stats
    assert (stats.prompt_tokens, stats.hit_tokens) == (35, 18)
    assert stats.hit_rate == pytest.approx(18 / 35)


def test_prefix_rule_through_chain_keys() -> None:
    # Raw ids [9, 2, 3] share blocks "2" and "3" with [1, 2, 3] but not the prefix:
    # chain keys make them different blocks, so nothing is hit.
    interner = ChainInterner()
    a = interner.keys_for([1, 2, 3])
    b = interner.keys_for([9, 2, 3])
    c = interner.keys_for([1, 2, 5])
    cache = PrefixCache(capacity_blocks=None, block_tokens=1)
    _serve(cache, 0, list(a), 3)
    assert cache.match(list(b)) == 0
    assert cache.match(list(c)) == 2


def test_reference_counts_by_hand() -> None:
    cache = PrefixCache(capacity_blocks=None, block_tokens=1)
    cache.acquire(0, [1, 2], 2)
    cache.insert(0)  # places 1 and 2, held by request 0
    cache.acquire(1, [1, 2, 3], 3)  # shares 1 and 2
    assert (cache.refs(1), cache.refs(2), cache.refs(3)) == (2, 2, 0)
    cache.insert(1)
    assert cache.refs(3) == 1
    cache.release(0)
    assert (cache.refs(1), cache.refs(2), cache.refs(3)) == (1, 1, 1)
    assert cache.referenced_blocks == 3
    cache.release(1)
    assert (cache.refs(1), cache.refs(2), cache.refs(3)) == (0, 0, 0)
    assert cache.referenced_blocks == 0
    assert cache.used_blocks == 3  # still cached
    with pytest.raises(ConfigError, match="released twice"):
        cache.release(1)


def test_lru_evicts_least_recently_released_leaf_first() -> None:
    # Capacity 4. A = [1, 2], B = [3, 4] fill it; A is released before B.
    cache = PrefixCache(capacity_blocks=4, block_tokens=1)
    cache.acquire(0, [1, 2], 2)
    cache.insert(0)
    cache.acquire(1, [3, 4], 2)
    cache.insert(1)
    cache.release(0)
    cache.release(1)
    # C = [5] needs one block: the LRU unreferenced leaf is 2 (A's tail), not 1 (its parent).
    cache.acquire(2, [5], 1)
    result = cache.insert(2)
    assert result.evicted_keys == (2,)
    # D = [6, 7] needs two: 1 (now a leaf, released with A) then 4 (B's tail); 3 stays.
    cache.acquire(3, [6, 7], 2)
    assert cache.insert(3).evicted_keys == (1, 4)
    assert cache.match([3]) == 1 and cache.match([1]) == 0
    assert cache.stats.evicted_blocks == 3


def test_recent_use_protects_a_block() -> None:
    cache = PrefixCache(capacity_blocks=2, block_tokens=1)
    _serve(cache, 0, [1], 1)
    _serve(cache, 1, [2], 1)
    _serve(cache, 2, [1], 1)  # touches 1: now 2 is the least recently used
    cache.acquire(3, [3], 1)
    assert cache.insert(3).evicted_keys == (2,)


def test_referenced_blocks_are_never_evicted() -> None:
    cache = PrefixCache(capacity_blocks=2, block_tokens=1)
    cache.acquire(0, [1, 2], 2)
    cache.insert(0)  # both held
    cache.acquire(1, [3, 4], 2)
    result = cache.insert(1)
    assert (result.inserted_blocks, result.evicted_keys, result.not_inserted_blocks) == (0, (), 2)
    assert cache.stats.failed_inserts == 2
    assert cache.match([1, 2]) == 2


def test_explicit_evict_returns_keys_in_lru_order() -> None:
    cache = PrefixCache(capacity_blocks=None, block_tokens=1)
    _serve(cache, 0, [1, 2], 2)
    _serve(cache, 1, [3], 1)
    assert cache.evict(10) == (2, 1, 3)  # 2 before its parent 1; 3 released last
    assert cache.used_blocks == 0


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="block_tokens"):
        PrefixCache(capacity_blocks=4, block_tokens=0)
    with pytest.raises(ConfigError, match="capacity_blocks"):
        PrefixCache(capacity_blocks=-1, block_tokens=16)
    cache = PrefixCache(capacity_blocks=4, block_tokens=16)
    with pytest.raises(ConfigError, match="never acquired"):
        cache.insert(7)
    cache.acquire(7, [1], 16)
    with pytest.raises(ConfigError, match="already holds"):
        cache.acquire(7, [1], 16)


def test_available_blocks_counts_what_eviction_could_free() -> None:
    cache = PrefixCache(capacity_blocks=5, block_tokens=1)
    _serve(cache, 0, [1, 2], 2)  # cached, unreferenced
    cache.acquire(1, [3, 4], 2)
    cache.insert(1)  # held
    assert (cache.used_blocks, cache.free_blocks, cache.available_blocks) == (4, 1, 3)
    cache.acquire(2, [1, 9], 2)  # references 1
    assert cache.available_blocks == 2
    assert PrefixCache(None, 1).available_blocks is None


def test_stats_add_up_over_instances() -> None:
    a, b = PrefixCache(None, 4), PrefixCache(None, 4)
    _serve(a, 0, [1], 4)
    _serve(a, 1, [1], 4)
    _serve(b, 0, [1, 2], 6)
    total = sum((a.stats, b.stats), NO_STATS)
    assert (total.lookups, total.prompt_tokens, total.hit_tokens, total.inserted_blocks) == (3, 14, 4, 3)
    assert total.hit_rate == 4 / 14
