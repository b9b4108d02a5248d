"""KV-cache orchestration pieces: prefix cache, offload tiers, KV-aware routing and pairing.

Standalone, tested parts for issue 13 that the simulator core plugs in; nothing
here imports :mod:`twinfer.sim`. Wired now: the prefix cache and offload tiers
(:mod:`twinfer.sim.prefix_sched`), the Dynamo-style score (the ``kv_aware``
router in :mod:`twinfer.sim.router`); not yet: :mod:`~twinfer.kvcache.pairing`
(the simulator's KV link belongs to the prefill instance, so every decode
candidate sees the same link) and a shared tier. How each piece is meant to be
wired (the integrator's map):

Block identity (once per run)
    ``Workload.prefix_block_ids`` (Mooncake ``hash_ids``, twinfer JSONL
    ``prefix_block_ids``, or the ``sessions`` workload) become chain keys with
    one :class:`ChainInterner` for the whole fleet (:func:`chain_keys`); each
    request carries its key array. Equal keys mean equal whole prefixes, so one
    int comparison respects the prefix rule. The cache's ``block_tokens`` must
    be ``Workload.prefix_block_tokens`` (512 for Mooncake; ``sessions`` default
    16). A workload without ids (Azure, ShareGPT) gets no caching: keep today's
    code path, byte-identical, when caching is off or ids are absent.

Scheduler admission (one :class:`PrefixCache` per instance)
    Before admitting, the scheduler checks ``cache.available_blocks`` (capacity
    minus referenced blocks) the way it checks KV tokens now, then calls
    ``cache.acquire(request_id, keys, prompt_tokens)``; the returned cached
    tokens count as done (``tokens_done = cached``, but leave at least one
    token to prefill, as vLLM does, when the whole prompt hits), so only the
    suffix is prefilled. Size the cache from the instance's KV pool
    (``kv_tokens // block_tokens``). Decode-time KV of running requests stays
    in the scheduler's own token accounting; subtract it from the pool or give
    the cache the pool minus the decode reserve.

Scheduler ``update()``
    When a request's prefill completes, ``cache.insert(request_id)`` makes its
    prompt blocks resident; the evicted chain keys it returns go to
    ``OffloadTiers.demote`` when tiers are configured. On finish (or after the
    KV hand-off from a prefill instance) ``cache.release(request_id)``.
    ``prefix_hit_rate`` per pool and fleet = the sum of the instances'
    ``cache.stats`` (they add with ``+``, start from ``NO_STATS``); saved prefill
    time = the backend's prefill time of the hit tokens.

Offload tiers (:mod:`twinfer.kvcache.tiers`, :mod:`twinfer.kvcache.offload`)
    After ``acquire`` matched ``m`` device blocks, ``tiers.lookup(keys[m:])``
    (an :class:`OffloadTiers` per instance; one :class:`BlockStore` per fleet
    for a shared tier) says how many following blocks sit in host DRAM / SSD /
    a shared pool and what reloading them costs; if
    :func:`reload_beats_recompute` says so (given the backend's prefill time
    per token), the scheduler calls ``tiers.take(plan)``, delays the prefill by
    ``plan.transfer_s`` and counts those tokens as cached (``insert`` then puts
    them back on the device). Presets with sources: ``tiers.toml``, scaled per
    instance with ``TierSpec.for_gpus``.

Router (:mod:`twinfer.kvcache.kv_route`, :mod:`twinfer.kvcache.pairing`)
    The rebuilt router registry adds ``kv_aware`` as one factory: it builds an
    :class:`InstanceSnapshot` per candidate (instance id, outstanding prefill
    tokens, active KV blocks, queued requests, and ``cache.match`` as the
    read-only lookup) and calls :func:`choose_instance`; the returned
    :class:`RouteDecision` also carries the most cached tokens any candidate
    had, for the "router choice vs best possible hit" report. Round-robin and
    least-loaded stay as they are. For disaggregated fleets the hand-off picks
    the decode instance with :func:`~twinfer.kvcache.pairing.choose_decode`
    (when the KV lands, given each link's queued transfers).

Planner (:mod:`twinfer.autoscale`)
    FleetSim samples :class:`~twinfer.autoscale.rebalance.WindowSignals` every
    window, calls :func:`~twinfer.autoscale.rebalance.plan_step`, and applies the
    returned actions: the instance leaving a role takes no new work from
    ``decided_at_s``; the moved or added one serves from ``effective_at_s``.
    :func:`~twinfer.autoscale.rebalance.paid_instances_timeline` and
    :func:`~twinfer.autoscale.fleet_cost.fleet_cost` give instance-hours and
    cost against the static fleet at peak. Time-varying load comes from the
    workload: ``arrivals: {kind: diurnal}``, a trace's own timestamps, or
    ``rate_profile`` stretching a one-hour trace over a day.
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
from twinfer.kvcache.pairing import DecodeCandidate, Pairing, choose_decode
from twinfer.kvcache.prefix_cache import NO_STATS, InsertResult, PrefixCache, PrefixCacheStats
from twinfer.kvcache.replay import replay_prefixes, replay_workload
from twinfer.kvcache.tiers import TierSpec, get_tier, load_tiers

__all__ = [
    "NO_STATS",
    "BlockStore",
    "ChainInterner",
    "DecodeCandidate",
    "InsertResult",
    "InstanceSnapshot",
    "OffloadTiers",
    "Pairing",
    "PrefixCache",
    "PrefixCacheStats",
    "ReloadPlan",
    "RouteDecision",
    "TierSpec",
    "breakeven_tokens",
    "chain_keys",
    "choose_decode",
    "choose_instance",
    "get_tier",
    "load_tiers",
    "reload_beats_recompute",
    "replay_prefixes",
    "replay_workload",
    "route_costs",
]
