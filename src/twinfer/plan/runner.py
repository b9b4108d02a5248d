"""The bridge from a scenario mapping to the fleet simulator, as the sweep engine calls it.

:func:`run_scenario` is the default ``run_one(scenario, seed, base_dir)`` of
``twinfer sweep`` and ``twinfer plan``: it builds the simulator's ``Scenario``
from the mapping, simulates each fleet with ``seed`` and returns the fleet's
flat summary (see :data:`twinfer.sim.results.SUMMARY_KEYS`). A scenario with
several fleets returns ``{fleet name: summary}``, stored as dotted columns
(``"<fleet>.ttft_p99_s"``); give each fleet its own case to get one row per fleet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twinfer.sim.run import StepCostCache


def workload_rng(seed: int) -> np.random.Generator:
    """The generator the simulator builds a scenario's workload with (the planner's bounds use the same).

    Kept equal to :func:`twinfer.sim.run.build_scenario_workload`'s ``default_rng(seed)``.
    """
    return np.random.default_rng(seed)


#: Step-cost models by their whole ModelSpec and backend settings (twinfer.sim.run.pool_cost_key), the
#: most recently used few kept for the life of a worker process: they are stateless and pure (same
#: settings -> same answers), so reusing them across scenarios only saves building them.
_COST_CACHE = StepCostCache(max_entries=32)

#: The last few workloads by (workload config, seed), for the life of a worker process: sweep grids
#: mostly vary the fleet, so consecutive scenarios replay the same workload and the trace is read once.
#: (A trace file edited while a sweep runs is not re-read by a worker that has it.)
_WORKLOAD_CACHE: dict[Any, Any] = {}
_WORKLOAD_CACHE_SIZE = 4


def _scenario_workload(sc: Any, seed: int) -> Any:
    from twinfer.sim.run import build_scenario_workload

    key = (sc.workload, seed)
    try:
        workload = _WORKLOAD_CACHE.get(key)
    except TypeError:  # an unhashable config: build it every time
        return build_scenario_workload(sc, seed)
    if workload is None:
        workload = build_scenario_workload(sc, seed)
        for arr in (workload.arrival_s, workload.prompt_tokens, workload.output_tokens):
            arr.flags.writeable = False  # shared by later scenarios: nothing may change it
        if len(_WORKLOAD_CACHE) >= _WORKLOAD_CACHE_SIZE:
            del _WORKLOAD_CACHE[next(iter(_WORKLOAD_CACHE))]
        _WORKLOAD_CACHE[key] = workload
    return workload


def run_scenario(scenario: dict[str, Any], seed: int, base_dir: str | None = None) -> dict[str, Any]:
    """Simulate every fleet of ``scenario`` with ``seed``; the summary (or summaries by fleet name)."""
    from pathlib import Path

    from twinfer.sim.run import load_scenario_model, simulate_fleet
    from twinfer.sim.scenario import Scenario

    sc = Scenario.from_dict(scenario, where=str(scenario.get("name", "scenario")),
                            base_dir=Path(base_dir) if base_dir else None)
    workload = _scenario_workload(sc, seed)
    model = load_scenario_model(sc)
    summaries = [simulate_fleet(sc, fleet, seed, workload=workload, model=model, cost_cache=_COST_CACHE).summary
                 for fleet in sc.fleets]
    if len(summaries) == 1:
        return summaries[0]
    return {str(s.get("fleet", i)): s for i, s in enumerate(summaries)}
