"""Uncertainty bands of fleets with LPU pools: the fleet rerun at the LPU's fastest and slowest consistent sets.

An LPU's uncertain parameters are pinned down only to a family of sets that
fit the published measurements equally well (:mod:`twinfer.lpu.calibrate`).
For every fleet that contains an LPU pool (or an AFD pool whose FFN group
is LPU chips, :mod:`twinfer.afd.bands`, or a speculative pool whose draft
model runs on LPU chips of its own), the two sets of that family giving
the fastest and the slowest decode step are found with the closed-form step
model (a handful of formula evaluations), and the fleet is simulated again at
each. Rerunning rather than scaling analytically is deliberate: goodput and
cost per token respond to step time through queueing, batching and KV
capacity, nonlinearly near saturation, so only the simulator can say how a
faster or slower LPU moves them. It costs two extra simulations per LPU fleet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from twinfer.hardware import get_hardware
from twinfer.hardware.loader import HardwareSet
from twinfer.hardware.specs import LpuSpec
from twinfer.lpu.analytic import AnalyticLpu
from twinfer.lpu.chip import override_params, param_names
from twinfer.lpu.microarch import microarch_for
from twinfer.lpu.step_cost import LpuStepCost
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.perf.base import StepCostModel
from twinfer.sim.results import FleetResult
from twinfer.sim.run import make_pool_cost, simulate_fleet
from twinfer.sim.scenario import FleetConfig, Scenario

#: Summary keys that get a ``<key>_range: [low, high]`` next to them.
BAND_KEYS = ("tpot_p50_s", "tpot_p99_s", "goodput_rps", "cost_per_m_output_tok_usd")
#: Decode shape the fastest and slowest parameter sets are chosen at (a typical LPU decode batch).
_REF_SEQS, _REF_CONTEXT = 8, 2048


def extreme_sets(cost: LpuStepCost) -> tuple[Mapping[str, float], Mapping[str, float]]:
    """The band's parameter sets giving the fastest and the slowest decode step on ``cost``'s plan."""
    sets = microarch_for(cost.chip.spec, param_names()).band_overrides()
    shape = StepShape.decode([_REF_CONTEXT] * min(_REF_SEQS, cost.resources().max_batch_seqs))

    def seconds(overrides: Mapping[str, float]) -> float:
        chip = replace(cost.chip, params=override_params(cost.chip.params, overrides))
        return AnalyticLpu(cost.model, replace(cost.system, chip=chip), cost.plan, cost.precision).step_seconds(shape)

    timed = sorted(((seconds(s), i) for i, s in enumerate(sets)))
    return sets[timed[0][1]], sets[timed[-1][1]]


def _lpu_costs(model: ModelSpec, fleet: FleetConfig, cache: dict, pick: int,
               extra: HardwareSet | None = None) -> dict[str, StepCostModel] | None:
    """Each pool's cost, the LPU pools' at their fastest (``pick`` 0) or slowest (1) consistent set."""
    costs: dict[str, StepCostModel] = {}
    found = False
    for role, pool in fleet.pools.items():
        base = make_pool_cost(model, pool, cache, extra)
        if isinstance(get_hardware(pool.hardware, extra), LpuSpec) and isinstance(base, LpuStepCost):
            overrides = extreme_sets(base)[pick]
            chip = replace(base.chip, params=override_params(base.chip.params, overrides))
            base = LpuStepCost(model, base.chip.spec, chips=base.plan.num_chips, precision=base.precision,
                               max_batch_seqs=base.resources().max_batch_seqs, chip=chip)
            found = True
        elif pool.afd is not None:  # an AFD pool with LPU experts: its FFN group at the band's sets
            from twinfer.afd.bands import afd_band_costs
            from twinfer.afd.step_cost import AfdStepCost

            variants = afd_band_costs(base) if isinstance(base, AfdStepCost) else None
            if variants is not None:
                base, found = variants[pick], True
        if pool.speculative is not None and pool.speculative.draft_devices is not None:
            drafted = _with_banded_drafter(model, pool, base, cache, pick, extra)
            if drafted is not None:
                base, found = drafted, True
        costs[role] = base
    return costs if found else None


def _with_banded_drafter(model: ModelSpec, pool: Any, target: StepCostModel, cache: dict, pick: int,
                         extra: HardwareSet | None) -> StepCostModel | None:
    """``target`` with its pool's draft model on LPU chips of its own at the band's set (None: no LPU drafter)."""
    from twinfer.perf.pipeline import PipelinedInstance, pipelined
    from twinfer.perf.speculative import SeparateDrafter
    from twinfer.perf.speculative_cost import SpeculativeStepCost
    from twinfer.sim.run import speculative_pool_cost

    nominal = speculative_pool_cost(model, pool, target, cache, extra)
    if not isinstance(nominal, SpeculativeStepCost) or nominal.separate is None:
        return None
    lane = nominal.draft.lane if isinstance(nominal.draft, PipelinedInstance) else nominal.draft
    if not isinstance(lane, LpuStepCost):
        return None
    chip = replace(lane.chip, params=override_params(lane.chip.params, extreme_sets(lane)[pick]))
    drafter = pipelined(LpuStepCost(lane.model, lane.chip.spec, chips=lane.plan.num_chips, precision=lane.precision,
                                    max_batch_seqs=lane.resources().max_batch_seqs, chip=chip))
    return SpeculativeStepCost(target, nominal.cfg, drafter,
                               separate=SeparateDrafter(drafter.resources(), nominal.separate.link))


def add_lpu_bands(scenario: Scenario, results: Sequence[FleetResult], seed: int, *, workload: Any,
                  model: ModelSpec, cost_cache: dict) -> None:
    """Add ``<key>_range`` for :data:`BAND_KEYS` to the summary of every result whose fleet has an LPU pool."""
    fleets = {f.name: f for f in scenario.fleets}
    extra = scenario.extra_hardware()
    for res in results:
        fleet = fleets[res.summary["fleet"]]
        runs = [res.summary]
        for pick in (0, 1):
            costs = _lpu_costs(model, fleet, cost_cache, pick, extra)
            if costs is None:
                break
            runs.append(simulate_fleet(scenario, fleet, seed, workload=workload, model=model, costs=costs).summary)
        if len(runs) == 1:
            continue
        for key in BAND_KEYS:
            vals = [float(r[key]) for r in runs if r.get(key) is not None]
            if vals:
                res.summary[f"{key}_range"] = [min(vals), max(vals)]
        res.summary["lpu_band_from"] = "fleet rerun at the LPU parameter sets with the fastest and slowest decode step " \
                                       "among those consistent with the calibration data"


def band_lines(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per fleet with LPU bands: TPOT, goodput and $/M output tokens, low-high."""
    lines = []
    for s in summaries:
        if "tpot_p50_s_range" not in s:
            continue
        t50, t99 = s["tpot_p50_s_range"], s["tpot_p99_s_range"]
        parts = [f"TPOT p50 {t50[0] * 1e3:.2f}-{t50[1] * 1e3:.2f} ms, p99 {t99[0] * 1e3:.2f}-{t99[1] * 1e3:.2f} ms"]
        if "goodput_rps_range" in s:
            g = s["goodput_rps_range"]
            digits = 2 if g[1] < 10 else 1  # as many decimals as the table shows
            parts.append(f"goodput {g[0]:,.{digits}f}-{g[1]:,.{digits}f} req/s")
        if "cost_per_m_output_tok_usd_range" in s:
            c = s["cost_per_m_output_tok_usd_range"]
            parts.append(f"$/M out tok {c[0]:,.2f}-{c[1]:,.2f}")
        lines.append(f"{s['fleet']}: LPU band " + ", ".join(parts))
    return lines
