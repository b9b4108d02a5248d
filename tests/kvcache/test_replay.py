"""Hit rate over the Mooncake sample: equal to the trace's reuse when unbounded, lower when smaller."""

from __future__ import annotations

from twinfer.kvcache.chain import chain_keys
from twinfer.kvcache.replay import replay_prefixes, replay_workload
from twinfer.workload.build import resolve_trace
from twinfer.workload.readers import read_trace

BLOCK_TOKENS = 512  # Mooncake: each hash id is a 512-token block


def _theoretical_reuse(rows: list[dict]) -> float:
    """Cached prompt tokens / prompt tokens if every block seen before were still cached.

    Counted from the raw ids, independently of twinfer: request r hits its first m
    blocks where m is the longest m such that the tuple ids[:m] (the whole prefix,
    not just the block id) occurred as a prefix of an earlier request. A block whose
    id repeats after a different prefix is not a hit. The hit covers min(m * 512,
    input_length) tokens (the last block of a prompt may be partial).
    """
    seen: set[tuple[int, ...]] = set()
    hit = total = 0
    for row in rows:
        ids = row["hash_ids"]
        m = 0
        while m < len(ids) and tuple(ids[: m + 1]) in seen:
            m += 1
        seen.update(tuple(ids[: j + 1]) for j in range(len(ids)))
        hit += min(m * BLOCK_TOKENS, row["input_length"])
        total += row["input_length"]
    return hit / total


def test_unbounded_hit_rate_equals_theoretical_reuse(mooncake_rows: list[dict]) -> None:
    keys = chain_keys([row["hash_ids"] for row in mooncake_rows])
    prompts = [row["input_length"] for row in mooncake_rows]
    stats = replay_prefixes(keys, prompts, capacity_blocks=None, block_tokens=BLOCK_TOKENS)
    expected = _theoretical_reuse(mooncake_rows)
    assert 0.1 < expected < 0.5  # the sample does repeat prefixes (shared system prompt, turns)
    assert stats.hit_rate == expected  # same integers, same division: exact
    assert stats.evicted_blocks == 0


def test_hit_rate_falls_as_the_cache_shrinks() -> None:
    workload, _ = read_trace(resolve_trace("builtin:mooncake-conv-sample"))
    rates = [replay_workload(workload, size).hit_rate for size in (None, 8192, 2048, 512, 128, 16)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert rates[-1] < 0.5 * rates[0]
