"""Results of an autoscaled fleet: instance-hours and cost against the same fleet held static at its peak.

:func:`simulate_autoscaled` runs the fleet with its planner, then the same fleet
with each pool held at the most instances it served at once (the static fleet
sized for the peak), on the same workload. The autoscaled fleet pays for every
instance from the decision that adds it until it has drained after a removal,
including its reconfiguration delays (:func:`twinfer.autoscale.fleet_cost`); the
static one pays for its instances over its whole run. Summary keys that assume
a fixed fleet are recomputed from what the autoscaled fleet really ran:

- ``instances`` / ``devices``: the peak paid; ``pool.<role>.instances``: the most that served the role at once;
- ``price_per_hour_usd``: the mean (cost / run hours); ``cost_per_m_output_tok_usd`` from the cost;
- energy: idle power over the paid instance-seconds plus (max - idle) over busy time;
- ``pool.<role>.utilisation`` (and the KV- / batch-bound fractions): busy time over the
  instance-seconds the role was served; ``kv_link_utilisation`` over the prefill instance-seconds.

The comparison goes in ``autoscale.*`` summary keys (see :data:`AUTOSCALE_KEYS`),
and the instance counts over time in :attr:`FleetResult.autoscale`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twinfer.autoscale.fleet_cost import SECONDS_PER_HOUR, fleet_cost
from twinfer.errors import ConfigError
from twinfer.sim.metrics import PoolPricing
from twinfer.sim.rebalancer import Rebalancer
from twinfer.sim.results import FleetResult
from twinfer.sim.scenario import FleetConfig

#: Summary keys an autoscaled fleet adds (none appear for a fleet that keeps its size).
AUTOSCALE_KEYS: dict[str, str] = {
    "autoscale.policy": "the planner policy (dynamo)",
    "autoscale.instance_hours": "paid instance-hours of the autoscaled fleet (transitions included)",
    "autoscale.cost_usd": "its cost: instance-hours x price per instance-hour",
    "autoscale.peak_instances, autoscale.min_instances": "most and fewest instances paid at once",
    "autoscale.adds, autoscale.removes, autoscale.moves": "reconfigurations carried out",
    "autoscale.static_instances": "instances of the static fleet sized for the peak (per role, the most that served it)",
    "autoscale.static_instance_hours, autoscale.static_cost_usd": "the static fleet over its own run",
    "autoscale.static_slo_attainment, autoscale.static_goodput_rps": "the static fleet's SLO attainment and goodput",
    "autoscale.static_ttft_p99_s, autoscale.static_tpot_p99_s": "the static fleet's tail latencies",
    "autoscale.saving_fraction": "1 - autoscaled cost / static cost",
}


def static_peak_fleet(fleet: FleetConfig, peaks: dict[str, int]) -> FleetConfig:
    """``fleet`` without its planner, each pool at ``peaks[role]`` instances."""
    pools = {role: replace(pool, count=peaks[role]) for role, pool in fleet.pools.items()}
    return replace(fleet, name=f"{fleet.name} (static at peak)", pools=pools, autoscale=None)


def apply_autoscale_results(result: FleetResult, reb: Rebalancer, pricing: dict[str, PoolPricing],
                            static: FleetResult) -> None:
    """Recompute ``result``'s size-dependent summary keys and add the comparison with ``static`` (module doc)."""
    s = result.summary
    sim = reb.sim
    duration = float(s["duration_s"])
    paid = reb.paid_timeline()
    end = max(duration, paid[-1][0])
    pr = next(iter(pricing.values()))  # pools of an autoscaled fleet share hardware and price (checked at load)
    if any(p != pr for p in pricing.values()):
        raise ConfigError(f"fleet {result.summary['fleet']!r}: autoscaled pools must cost the same per instance "
                          f"(got {', '.join(f'{r} ${p.price_per_hour_usd:g}/h' for r, p in pricing.items())})")
    cost = fleet_cost(paid, end, pr.price_per_hour_usd)
    hours = cost.instance_hours
    out_tok = float(s["output_tokens"]) if "output_tokens" in s else math.nan
    busy_total = 0.0
    peaks = reb.role_peaks()
    for role, pool in sim.pools.items():
        busy = sum(i.busy_s for i in pool.instances)
        busy_total += busy
        served = sum(reb.alive_seconds(i, duration) for i in pool.instances)
        key = f"pool.{role}"
        s[f"{key}.instances"] = peaks[role]
        for frac, total in (("utilisation", busy), ("kv_blocked_frac", None), ("batch_full_frac", None)):
            if total is None:  # summarize divided by duration x instances: rescale to the served seconds
                total = s[f"{key}.{frac}"] * duration * len(pool.instances)
            s[f"{key}.{frac}"] = total / served if served > 0 else math.nan
        if role == "prefill" and sim.links:
            s["kv_link_utilisation"] = sum(lk.busy_s for lk in sim.links) / served if served > 0 else 0.0
    s["instances"] = cost.peak_instances
    s["devices"] = cost.peak_instances * pr.devices
    s["price_per_hour_usd"] = cost.cost_usd / (end / SECONDS_PER_HOUR) if end > 0 else math.nan
    s["cost_per_m_output_tok_usd"] = cost.cost_usd / out_tok * 1e6 if out_tok else math.nan
    energy = pr.power_idle_w * hours * SECONDS_PER_HOUR + (pr.power_max_w - pr.power_idle_w) * busy_total
    s["energy_j"] = energy
    s["energy_per_output_tok_j"] = energy / out_tok if out_tok else math.nan
    s["avg_power_w"] = energy / duration if duration > 0 else math.nan
    s["tokens_per_s_per_mw"] = s["throughput_output_tok_s"] / (s["avg_power_w"] / 1e6) if energy else math.nan
    ss = static.summary
    static_hours = ss["instances"] * ss["duration_s"] / SECONDS_PER_HOUR
    static_cost = static_hours * pr.price_per_hour_usd
    s["autoscale.policy"] = reb.cfg.policy
    s["autoscale.instance_hours"] = hours
    s["autoscale.cost_usd"] = cost.cost_usd
    s["autoscale.peak_instances"] = cost.peak_instances
    s["autoscale.min_instances"] = min(c for _, c in paid)
    for kind, n in reb.counts().items():
        s[f"autoscale.{kind}s"] = n
    s["autoscale.static_instances"] = ss["instances"]
    s["autoscale.static_instance_hours"] = static_hours
    s["autoscale.static_cost_usd"] = static_cost
    for k in ("slo_attainment", "goodput_rps", "ttft_p99_s", "tpot_p99_s"):
        s[f"autoscale.static_{k}"] = ss[k]
    s["autoscale.saving_fraction"] = 1.0 - cost.cost_usd / static_cost if static_cost > 0 else math.nan
    result.autoscale = {"timeline": list(reb.timeline), "paid": [list(p) for p in paid],
                        "static": {f"pool.{r}.instances": ss[f"pool.{r}.instances"] for r in sim.pools},
                        # (role, index in its pool) of each fleet-wide instance index
                        "instances": [(i.role, i.local_index) for i in sim.instances]}


def simulate_autoscaled(fleet: FleetConfig, run: Callable[[FleetConfig], tuple[FleetResult, Any, Any]]) -> FleetResult:
    """Run ``fleet`` with its planner and the static fleet at its peak (``run(fleet) -> (result, sim, pricing)``)."""
    result, sim, pricing = run(fleet)
    reb: Rebalancer = sim.rebalancer
    static, _, _ = run(static_peak_fleet(fleet, reb.role_peaks()))
    apply_autoscale_results(result, reb, pricing, static)
    return result
