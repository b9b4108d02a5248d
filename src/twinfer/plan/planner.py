"""The planner's search: enumerate fleets, prune the provably infeasible, simulate the rest.

``twinfer plan`` = :func:`prune` (memory fit, limits, and the bounds of
:mod:`twinfer.plan.bounds`, per request rate) -> :func:`make_jobs` (one
single-fleet scenario per surviving (fleet, rate)) -> the sweep engine (local
processes or Ray, resumable Parquet in ``OUT/results``) -> :mod:`twinfer.plan.evaluate`
(feasibility, goodput, Pareto frontier, recommendation, plan JSON). Which
survivors are simulated is up to :mod:`twinfer.plan.search` (all of them, or a
staircase search over instance counts).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from twinfer.errors import CapacityError, ConfigError
from twinfer.plan.bounds import PoolBound, WorkloadStats, instance_checks, throughput_check
from twinfer.plan.grid import Job, scenario_id
from twinfer.plan.pruning import FleetCost, PruneReport
from twinfer.plan.space import (
    DEVICES_PER_RACK,
    Candidate,
    PlanSpec,
    PoolChoice,
    enumerate_candidates,
    instance_shapes,
)


def workload_section(spec: PlanSpec, rate_per_s: float) -> dict[str, Any]:
    """The scenario workload at ``rate_per_s``: the plan's workload with its arrival rate set.

    ``arrival_pattern: poisson`` (default): Poisson arrivals at the rate (or the
    plan's own arrival kind, e.g. gamma with its cv), lengths kept from the trace.
    ``arrival_pattern: trace``: the trace's own timestamps, with ``rate_scale``
    chosen so the requests kept arrive at ``rate_per_s`` on average (burstiness kept).
    """
    section = dict(spec.workload)
    if spec.arrival_pattern == "trace":
        section.pop("arrivals", None)
        section["rate_scale"] = float(rate_per_s) / trace_rate_per_s(spec)
        return section
    arrivals = dict(section.get("arrivals") or {"kind": "poisson"})
    if arrivals.get("kind") == "replay":
        arrivals = {"kind": "poisson"}
    arrivals["rate_per_s"] = float(rate_per_s)
    section["arrivals"] = arrivals
    section.pop("rate_scale", None)
    return section


@lru_cache(maxsize=16)
def _trace_rate(workload_json: str, base_dir: str | None, seed: int) -> float:
    import json

    from twinfer.plan.runner import workload_rng
    from twinfer.workload.build import build_workload
    from twinfer.workload.config import WorkloadConfig

    section = {k: v for k, v in json.loads(workload_json).items() if k not in ("arrivals", "rate_scale")}
    w = build_workload(WorkloadConfig.from_dict(section, base_dir=base_dir), workload_rng(seed))
    span = float(w.arrival_s[-1] - w.arrival_s[0]) if len(w.arrival_s) > 1 else 0.0
    if span <= 0:
        raise ConfigError("arrival_pattern: trace needs a trace with at least two distinct arrival times")
    return (len(w.arrival_s) - 1) / span


def trace_rate_per_s(spec: PlanSpec) -> float:
    """Mean arrival rate of the plan's trace as recorded (the requests the workload keeps)."""
    from twinfer.plan.grid import canonical_json

    return _trace_rate(canonical_json(spec.workload), spec.base_dir, spec.seed)


def workload_stats(spec: PlanSpec, rate_per_s: float) -> WorkloadStats:
    """The exact requests the simulator will see at this rate (same config and seed)."""
    from twinfer.plan.runner import workload_rng
    from twinfer.workload.build import build_workload
    from twinfer.workload.config import WorkloadConfig

    config = WorkloadConfig.from_dict(workload_section(spec, rate_per_s), base_dir=spec.base_dir)
    w = build_workload(config, workload_rng(spec.seed))
    return WorkloadStats.from_arrays(np.asarray(w.arrival_s), np.asarray(w.prompt_tokens), np.asarray(w.output_tokens))


def pool_key(pool: PoolChoice) -> tuple:
    """What sets one instance's step-cost model: hardware, parallelism, batch cap, AFD groups."""
    return (pool.hardware, pool.tp, pool.chips, pool.max_batch_seqs, pool.afd)


def fleet_cost(candidate: Candidate, resources: dict[tuple, Any], kinds: dict[str, str],
               devices_per_rack: int | None) -> FleetCost:
    """Devices, price, power and racks of a fleet from its instances' resources."""
    from twinfer.plan.afd import afd_devices_by_kind

    devices = price = pmax = pidle = 0.0
    by_kind: dict[str, int] = {}
    for pool in candidate.pools:
        res = resources[pool_key(pool)]
        devices += res.num_devices * pool.count
        price += res.price_per_hour_usd * pool.count
        pmax += res.power_max_w * pool.count
        pidle += res.power_idle_w * pool.count
        split = (afd_devices_by_kind(pool.afd, res.num_devices, kinds) if pool.afd is not None
                 else {kinds[pool.hardware]: res.num_devices})
        for kind, n in split.items():
            by_kind[kind] = by_kind.get(kind, 0) + n * pool.count
    racks = sum(math.ceil(n / (devices_per_rack or DEVICES_PER_RACK[k])) for k, n in by_kind.items())
    return FleetCost(devices=int(devices), price_per_hour_usd=price, power_max_w=pmax, power_idle_w=pidle, racks=racks)


class _MemoCost:
    """A step-cost model with its step times memoised (the bounds ask the same shapes at every rate)."""

    def __init__(self, cost: Any) -> None:
        self.cost = cost
        self.memo: dict[Any, float] = {}
        self._resources = cost.resources()

    def step_time_s(self, shape: Any) -> float:
        """The wrapped model's step time, computed once per shape."""
        if shape not in self.memo:
            self.memo[shape] = self.cost.step_time_s(shape)
        return self.memo[shape]

    def resources(self) -> Any:
        """The wrapped model's resources."""
        return self._resources


def _limit_reason(spec: PlanSpec, cost: FleetCost) -> str | None:
    if spec.budget_per_hour_usd is not None and cost.price_per_hour_usd > spec.budget_per_hour_usd:
        return f"budget: ${cost.price_per_hour_usd:.2f}/h > ${spec.budget_per_hour_usd:.2f}/h"
    if spec.power_w is not None and cost.power_max_w > spec.power_w:
        return f"power: {cost.power_max_w:.0f} W peak > {spec.power_w:.0f} W"
    if spec.racks is not None and cost.racks > spec.racks:
        return f"racks: {cost.racks} > {spec.racks}"
    return None


def prune(spec: PlanSpec, stats_by_rate: dict[float, WorkloadStats] | None = None) -> PruneReport:
    """Apply memory fit, the limits and the bounds to every (candidate, rate) of the plan."""
    from twinfer.hardware import get_hardware
    from twinfer.models import load_model
    from twinfer.perf.factory import make_step_cost

    model = load_model(spec.model)
    extra = spec.extra_hardware()
    kinds = {hw: get_hardware(hw, extra).kind for hw in spec.hardware}
    kinds.update({a.ffn.hardware: get_hardware(a.ffn.hardware, extra).kind for a in spec.afd_decode})
    stats_by_rate = stats_by_rate or {r: workload_stats(spec, r) for r in spec.rates_per_s}
    shapes = instance_shapes(spec, kinds)
    costs_models: dict[tuple, Any] = {}
    memory: dict[tuple, str] = {}
    for hw, tp, chips, cap in shapes:
        try:
            costs_models[(hw, tp, chips, cap, None)] = _MemoCost(make_step_cost(model, hw, tp=tp, chips=chips,
                                                                                 max_batch_seqs=cap,
                                                                                 extra_hardware=extra))
        except (CapacityError, ConfigError) as exc:
            memory[(hw, tp, chips, cap, None)] = f"memory: {exc}"
    for afd in spec.afd_decode:  # AFD decode pools (twinfer.plan.afd)
        from twinfer.afd.step_cost import AfdStepCost

        key = (afd.attention.hardware, 1, None, None, afd)
        try:
            costs_models[key] = _MemoCost(AfdStepCost(model, afd, extra_hardware=extra))
        except (CapacityError, ConfigError) as exc:
            memory[key] = f"memory: {exc}"
    resources = {s: c.resources() for s, c in costs_models.items()}
    inst: dict[tuple, tuple[PoolBound | None, str | None]] = {}
    candidates = enumerate_candidates(spec, shapes, kinds)
    report = PruneReport(candidates=candidates, costs={}, survivors=[])
    for cand in candidates:
        keys = [pool_key(p) for p in cand.pools]
        bad = next((memory[k] for k in keys if k in memory), None)
        if bad is None:
            report.costs[cand.key] = cost = fleet_cost(cand, resources, kinds, spec.devices_per_rack)
            bad = _limit_reason(spec, cost)
        for rate in spec.rates_per_s:
            reason = bad
            stats = stats_by_rate[rate]
            bounds: list[tuple[PoolBound, int]] = []
            for pool, key in zip(cand.pools, keys, strict=True):
                if reason is not None:
                    break
                memo = (key, pool.role, rate)
                if memo not in inst:
                    inst[memo] = instance_checks(costs_models[key], pool.role, stats, ttft_s=spec.ttft_s,
                                                 tpot_s=spec.tpot_s, attainment=spec.attainment,
                                                 max_batch_seqs=pool.max_batch_seqs)
                bound, reason = inst[memo]
                if bound is not None:
                    bounds.append((bound, pool.count))
            if reason is None:
                reason = throughput_check(bounds, stats, ttft_s=spec.ttft_s, tpot_s=spec.tpot_s,
                                          attainment=spec.attainment)
            if reason is None:
                report.survivors.append((cand, rate))
            else:
                report.reasons[(cand.key, rate)] = reason
    return report


def fleet_section(spec: PlanSpec, cand: Candidate) -> dict[str, Any]:
    """The scenario ``fleets`` entry for a candidate (schema: :mod:`twinfer.sim.scenario`)."""
    pools: dict[str, Any] = {}
    for p in cand.pools:
        pool: dict[str, Any] = {"hardware": p.hardware, "count": p.count}
        if p.afd is not None:
            from twinfer.plan.afd import afd_pool_section

            pool = afd_pool_section(p.afd, p.count)
        elif p.kind == "lpu":
            if p.chips is not None:
                pool["chips"] = p.chips
        elif p.tp != 1:
            pool["tp"] = p.tp
        batching = dict(p.batching)
        if p.max_batch_seqs is not None:
            batching["max_batch_seqs"] = p.max_batch_seqs
        if batching:
            pool["batching"] = batching
        pools[p.role] = pool
    fleet: dict[str, Any] = {"name": cand.key, "pools": pools}
    if cand.mode == "disaggregated":
        fleet["kv_link"] = dict(spec.link)
    return fleet


def scenario_for(spec: PlanSpec, cand: Candidate, rate_per_s: float) -> dict[str, Any]:
    """The single-fleet scenario mapping that simulates ``cand`` at ``rate_per_s``."""
    scenario = {
        "name": f"{spec.name} @ {rate_per_s:g} req/s",
        "model": spec.model,
        "workload": workload_section(spec, rate_per_s),
        "slo": {"ttft_s": spec.ttft_s, "tpot_s": spec.tpot_s, "attainment": spec.attainment},
        "fleets": [fleet_section(spec, cand)],
    }
    if spec.hardware_file is not None:
        scenario["hardware_file"] = spec.hardware_file
    return scenario


def make_jobs(spec: PlanSpec, survivors: list[tuple[Candidate, float]]) -> list[Job]:
    """Sweep jobs for the surviving (candidate, rate) pairs; params become result columns."""
    jobs = []
    for i, (cand, rate) in enumerate(survivors):
        scenario = scenario_for(spec, cand, rate)
        jobs.append(Job(scenario_id=scenario_id(scenario, spec.seed), index=i, seed=spec.seed, scenario=scenario,
                        params={"candidate": cand.key, "mode": cand.mode, "rate_per_s": float(rate)},
                        base_dir=spec.base_dir))
    return jobs


def run_plan(
    spec: PlanSpec,
    results_dir: Any,
    *,
    runner: str | None = None,
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Prune, simulate what the search strategy picks into ``results_dir`` (resumable), return the plan JSON."""
    from twinfer.plan.evaluate import evaluate
    from twinfer.plan.search import search
    from twinfer.plan.store import ResultStore, query
    from twinfer.plan.sweep import DEFAULT_RUNNER, run_sweep

    report = prune(spec)
    store = ResultStore(results_dir)
    rows: dict[str, dict[str, Any]] = {}

    def simulate(pairs: list[tuple[Candidate, float]]) -> dict[tuple[str, float], bool]:
        jobs = make_jobs(spec, pairs)
        run_sweep(jobs, store, runner=runner or DEFAULT_RUNNER, workers=workers, backend=backend,
                  ray_address=ray_address, extend=True, progress=progress)
        names, tuples = query(results_dir, "SELECT * FROM results")
        wanted = {j.scenario_id for j in jobs}
        for t in tuples:
            row = dict(zip(names, t, strict=True))
            if row["scenario_id"] in wanted:
                rows[row["scenario_id"]] = row
        out = {}
        for job, (cand, rate) in zip(jobs, pairs, strict=True):
            row = rows.get(job.scenario_id, {})
            att = row.get("slo_attainment")
            out[(cand.key, rate)] = bool(row.get("status") == "ok" and att is not None
                                         and att >= spec.attainment - 1e-12)
        return out

    rounds = search(report.survivors, simulate, spec.strategy)
    plan = evaluate(spec, report, list(rows.values()))
    plan["search"]["strategy"] = spec.strategy
    plan["search"]["rounds"] = rounds
    return plan
