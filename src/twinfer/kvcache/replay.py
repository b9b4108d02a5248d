"""Replay a workload's prefixes through one PrefixCache, request after request, without a simulator.

Each request acquires its cached prefix, inserts the rest of its blocks and
releases them before the next one arrives: the cache sees the trace's reuse
order with no concurrency. This bounds what one instance could hit and is the
quick way to size a cache or check a trace's reuse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twinfer.errors import ConfigError
from twinfer.kvcache.chain import KeyList, chain_keys
from twinfer.kvcache.prefix_cache import PrefixCache, PrefixCacheStats
from twinfer.workload.types import Workload


def replay_prefixes(
    keys_per_request: Sequence[KeyList],
    prompt_tokens: Sequence[int] | np.ndarray,
    capacity_blocks: int | None,
    block_tokens: int,
) -> PrefixCacheStats:
    """Counters after passing every request's chain keys through one cache in order."""
    if len(keys_per_request) != len(prompt_tokens):
        raise ConfigError(
            f"replay: {len(keys_per_request)} key lists for {len(prompt_tokens)} prompt lengths"
        )
    cache = PrefixCache(capacity_blocks, block_tokens)
    for rid, (keys, tokens) in enumerate(zip(keys_per_request, prompt_tokens, strict=True)):
        cache.acquire(rid, keys, int(tokens))
        cache.insert(rid)
        cache.release(rid)
    return cache.stats


def replay_workload(workload: Workload, capacity_blocks: int | None) -> PrefixCacheStats:
    """:func:`replay_prefixes` over a workload that carries prefix block ids."""
    if workload.prefix_block_ids is None or workload.prefix_block_tokens is None:
        raise ConfigError(
            f"workload {workload.name!r} has no prefix block ids; use a Mooncake trace, a twinfer "
            "JSONL trace with prefix_block_ids, or a sessions workload"
        )
    keys = chain_keys(workload.prefix_block_ids)
    return replay_prefixes(keys, workload.prompt_tokens, capacity_blocks, workload.prefix_block_tokens)
