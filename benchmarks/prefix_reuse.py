"""Prefix reuse on the Mooncake conversation trace: local caches, a global pool, routing and a host tier.

Run: .venv/bin/python benchmarks/prefix_reuse.py [--instances 8] [--sample]
A simulator-free replay (requests in trace order, each served before the next
arrives) through twinfer.kvcache: it bounds the prefix hit rate a fleet could
reach and shows how it splits between cache size, routing and offload. For
each per-instance device capacity it prints the hit rate of
  - local:   one PrefixCache per instance, round-robin routing (no cache awareness);
  - kv:      the same caches with the Dynamo-style score (overlap weight 1; the load
             term is a proxy: prompt tokens routed to the instance over the last
             ``instances`` requests, not simulated queueing);
  - kv+host: kv, plus a host-DRAM tier per instance of 4x the device capacity; a block
             found there counts as a hit (reloaded instead of recomputed);
  - global:  one cache of instances x capacity (a pool every instance reads, Mooncake Store's idea);
and global / local, to set beside Mooncake's report that its global store
reached 2.36x the hit rate of a local cache (FAST'25; gpu-and-serving.md).
The unbounded hit rate is the trace's theoretical reuse.
Reads ../shared/data/traces/mooncake_conversation.jsonl, or the shipped sample with --sample
(or when the shared file is absent, and says so).
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from pathlib import Path

from twinfer.kvcache import (
    InstanceSnapshot,
    OffloadTiers,
    PrefixCache,
    TierSpec,
    chain_keys,
    choose_instance,
    replay_prefixes,
)
from twinfer.workload import read_trace, resolve_trace

TRACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "traces" / "mooncake_conversation.jsonl"
BLOCK = 512  # Mooncake blocks


def _fleet(keys, prompts, n: int, capacity: int, router: str, host_blocks: int = 0) -> float:
    caches = [PrefixCache(capacity, BLOCK) for _ in range(n)]
    # a host tier per instance sized in blocks (block_bytes 1 makes bytes = blocks)
    host = TierSpec("host", float(host_blocks), 1.0, 1.0, 0.0)
    tiers = [OffloadTiers([host], 1.0) for _ in range(n)] if host_blocks else None
    recent: deque[tuple[int, int]] = deque()
    load = [0] * n
    hit = total = 0
    for rid, (k, p) in enumerate(zip(keys, prompts, strict=True)):
        p = int(p)
        if router == "round_robin":
            i = rid % n
        else:
            snaps = [InstanceSnapshot(j, load[j], 0, 0, caches[j].match) for j in range(n)]
            i = choose_instance(k, p, snaps, block_tokens=BLOCK, overlap_weight=1.0).instance_id
        recent.append((i, p))
        load[i] += p
        if len(recent) > n:
            j, q = recent.popleft()
            load[j] -= q
        cached = caches[i].acquire(rid, k, p)
        if tiers is not None:
            m = caches[i].match(k)
            plan = tiers[i].lookup(k[m:])
            tiers[i].take(plan)
            cached = min((m + plan.blocks) * BLOCK, p)
        hit += cached
        total += p
        result = caches[i].insert(rid)
        if tiers is not None:
            tiers[i].demote(result.evicted_keys)
        caches[i].release(rid)
    return hit / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=8)
    ap.add_argument("--sample", action="store_true", help="use the shipped 1,000-request sample")
    args = ap.parse_args()
    path = TRACE
    if args.sample or not TRACE.is_file():
        if not args.sample:
            print(f"{TRACE} is absent: using the shipped sample builtin:mooncake-conv-sample")
        path = resolve_trace("builtin:mooncake-conv-sample")
    workload, _ = read_trace(path)
    assert workload.prefix_block_ids is not None
    keys = chain_keys(workload.prefix_block_ids)
    prompts = workload.prompt_tokens
    n = args.instances
    start = time.perf_counter()
    reuse = replay_prefixes(keys, prompts, None, BLOCK).hit_rate
    print(f"{path.name}: {len(workload)} requests; theoretical reuse (unbounded cache) {reuse:.3f}")
    print(f"{n} instances; capacity in 512-token blocks per instance")
    print(f"{'capacity':>9} {'local':>7} {'kv':>7} {'kv+host':>8} {'global':>7} {'global/local':>13}")
    for cap in (64, 256, 1024, 4096):
        local = _fleet(keys, prompts, n, cap, "round_robin")
        kv = _fleet(keys, prompts, n, cap, "kv_aware")
        kv_host = _fleet(keys, prompts, n, cap, "kv_aware", host_blocks=4 * cap)
        pooled = replay_prefixes(keys, prompts, n * cap, BLOCK).hit_rate
        ratio = pooled / local if local else float("inf")
        print(f"{cap:>9} {local:>7.3f} {kv:>7.3f} {kv_host:>8.3f} {pooled:>7.3f} {ratio:>13.2f}")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
