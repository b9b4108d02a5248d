"""KV-cache orchestration pieces: prefix cache, offload tiers, KV-aware routing score.

Standalone, tested parts for issue 13 that the simulator core plugs in; nothing
here imports :mod:`twinfer.sim`. How each piece is wired (the integrator's map):

Block identity
    ``Workload.prefix_block_ids`` (Mooncake ``hash_ids``, twinfer JSONL
    ``prefix_block_ids``, or the ``sessions`` generator) become chain keys once
    per run with one :class:`ChainInterner` shared by the whole fleet
    (:func:`chain_keys`); a request carries its key array. Equal keys mean equal
    whole prefixes, so one int comparison respects the prefix rule.

Scheduler admission (per instance, one :class:`PrefixCache` each)
    When the scheduler admits a request it calls ``cache.acquire(request_id,
    keys, prompt_tokens)``; the returned cached tokens are marked done
    (``tokens_done = cached``), so only the suffix is prefilled (keep at least
    one token to prefill, as vLLM does, when the whole prompt hits). Capacity:
    size the cache from the instance's KV pool (``kv_tokens // block_tokens``);
    referenced blocks count against it, so admission must check
    ``free_blocks`` plus evictable blocks the same way it checks KV tokens now.

Scheduler ``update()``
    When a request's prefill completes, ``cache.insert(request_id)`` makes its
    prompt blocks resident; the evicted chain keys it returns go to
    ``OffloadTiers.demote`` when tiers are configured. On finish (or on hand-off
    to a decode instance) ``cache.release(request_id)``. Hit counters
    (``cache.stats``: ``hit_tokens / prompt_tokens`` = ``prefix_hit_rate``)
    are read per instance and summed per pool and fleet by the metrics layer;
    saved prefill time = the backend's prefill time of the hit tokens.

Offload tiers (:mod:`twinfer.kvcache.tiers`, :mod:`twinfer.kvcache.offload`)
    After ``acquire`` matched ``m`` device blocks, ``tiers.lookup(keys[m:])``
    (an :class:`OffloadTiers` per instance; one :class:`BlockStore` per fleet
    for a shared tier) says how many following blocks sit in host DRAM / SSD /
    a shared pool and
    what reloading them costs; if :func:`reload_beats_recompute` says so, the
    scheduler calls ``tiers.take(plan)``, adds ``plan.transfer_s`` before the
    prefill and counts those tokens as cached. Presets: ``tiers.toml``.

Router (:mod:`twinfer.kvcache.kv_route`)
    The rebuilt router registry adds ``kv_aware`` as one factory that builds an
    :class:`InstanceSnapshot` per candidate (instance id, outstanding prefill
    tokens, active KV blocks, queued requests, and ``cache.match`` as the lookup)
    and calls :func:`choose_instance`; the returned :class:`RouteDecision` also
    carries the best cached tokens any candidate had, for the "router vs cache"
    report. Round-robin and least-loaded stay as they are.

Planner (:mod:`twinfer.autoscale`)
    FleetSim samples :class:`~twinfer.autoscale.rebalance.WindowSignals` every
    window, calls :func:`~twinfer.autoscale.rebalance.plan_step`, and applies the
    returned actions at their ``effective_at_s`` (a moved instance stops taking
    new work at the decision and serves its new role after the delay);
    :func:`~twinfer.autoscale.fleet_cost.fleet_cost` turns the paid-instance
    timeline into instance-hours and cost against the static fleet at peak.
"""

from twinfer.kvcache.chain import ChainInterner, chain_keys
from twinfer.kvcache.kv_route import InstanceSnapshot, RouteDecision, choose_instance, route_costs
from twinfer.kvcache.offload import (
    BlockStore,
    OffloadTiers,
    ReloadPlan,
    breakeven_tokens,
    reload_beats_recompute,
)
from twinfer.kvcache.prefix_cache import InsertResult, PrefixCache, PrefixCacheStats
from twinfer.kvcache.replay import replay_prefixes, replay_workload
from twinfer.kvcache.tiers import TierSpec, get_tier, load_tiers

__all__ = [
    "BlockStore",
    "ChainInterner",
    "InsertResult",
    "InstanceSnapshot",
    "OffloadTiers",
    "PrefixCache",
    "PrefixCacheStats",
    "ReloadPlan",
    "RouteDecision",
    "TierSpec",
    "breakeven_tokens",
    "chain_keys",
    "choose_instance",
    "get_tier",
    "load_tiers",
    "reload_beats_recompute",
    "replay_prefixes",
    "replay_workload",
    "route_costs",
]
