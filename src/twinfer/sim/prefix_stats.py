"""Prefix-cache figures of a finished run, per pool and per fleet, for the summary.

Keys appear only when a pool of the fleet caches prefixes, so a run without
caching has exactly the summary it had before the feature. Definitions:

* ``prefix_hit_rate`` = prompt tokens found cached (on the device, or reloaded
  from an offload tier) / prompt tokens, over each request's first lookup;
* ``prefix_saved_prefill_s`` = the sum over requests of the backend's batch-1
  prefill time of the whole prompt minus that of the uncached suffix
  (:mod:`twinfer.sim.prefix_sched`);
* ``prefix_route_best_frac`` = of the requests whose prefix some instance held
  when they were routed, the share sent to an instance holding the longest
  one; ``prefix_route_cached_frac`` = blocks held by the chosen instances /
  the most held by any instance, summed over requests
  (:mod:`twinfer.sim.prefix_route`).
"""

from __future__ import annotations

import math
from typing import Any

from twinfer.sim.prefix_sched import PrefixCounters, PrefixScheduler

#: Summary keys this module adds (see twinfer.sim.results.SUMMARY_KEYS).
PREFIX_SUMMARY_KEYS: dict[str, str] = {
    "prefix_hit_rate": "prompt tokens found in a prefix cache (device or offload tier) / prompt tokens",
    "prefix_saved_prefill_s": "batch-1 prefill time the cache saved, summed over requests",
    "prefix_prompt_tokens, prefix_cached_tokens": "prompt tokens looked up and found cached",
    "prefix_tier_hit_tokens, prefix_reload_s": "cached tokens reloaded from offload tiers and their transfer time",
    "prefix_evicted_blocks, prefix_offloaded_blocks": "blocks evicted from device caches, and of them moved to a tier",
    "prefix_route_best_frac": "requests routed to an instance holding the longest cached prefix / requests some "
    "instance held a prefix of",
    "prefix_route_cached_frac": "cached blocks on the chosen instances / the most on any instance, summed",
    "pool.<role>.prefix_hit_rate, pool.<role>.prefix_saved_prefill_s": "the same per pool",
    "pool.<role>.prefix_cache_blocks, pool.<role>.prefix_block_tokens": "cache capacity of one instance",
}


def _rate(num: float, den: float) -> float:
    return num / den if den else math.nan


def prefix_summary(sim: Any) -> dict[str, Any]:
    """The prefix-cache keys of a finished :class:`~twinfer.sim.cluster.FleetSim` (empty without caching)."""
    out: dict[str, Any] = {}
    fleet = PrefixCounters()
    routed = with_hit = chose_best = chosen = best = 0
    for role, pool in sim.pools.items():
        scheds = [i.sched for i in pool.instances if isinstance(i.sched, PrefixScheduler)]
        if not scheds:
            continue
        counts = PrefixCounters()
        for sched in scheds:
            counts += sched.stats
        fleet += counts
        key = f"pool.{role}"
        out[f"{key}.prefix_hit_rate"] = _rate(counts.hit_tokens, counts.prompt_tokens)
        out[f"{key}.prefix_saved_prefill_s"] = counts.saved_prefill_s
        out[f"{key}.prefix_cache_blocks"] = scheds[0].cache.capacity_blocks
        out[f"{key}.prefix_block_tokens"] = scheds[0].cbt
        audit = pool.route_audit
        if audit is not None:
            routed += audit.routed
            with_hit += audit.with_hit
            chose_best += audit.chose_best
            chosen += audit.chosen_blocks
            best += audit.best_blocks
    if not out:
        return out
    return {
        "prefix_hit_rate": _rate(fleet.hit_tokens, fleet.prompt_tokens),
        "prefix_saved_prefill_s": fleet.saved_prefill_s,
        "prefix_prompt_tokens": fleet.prompt_tokens,
        "prefix_cached_tokens": fleet.hit_tokens,
        "prefix_tier_hit_tokens": fleet.tier_hit_tokens,
        "prefix_reload_s": fleet.reload_s,
        "prefix_evicted_blocks": fleet.evicted_blocks,
        "prefix_offloaded_blocks": fleet.offloaded_blocks,
        "prefix_route_best_frac": _rate(chose_best, with_hit),
        "prefix_route_cached_frac": _rate(chosen, best),
        **out,
    }
