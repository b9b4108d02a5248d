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


def workload_rng(seed: int) -> np.random.Generator:
    """The generator the simulator builds a scenario's workload with (the planner's bounds use the same).

    Kept equal to :func:`twinfer.sim.run.build_scenario_workload`'s ``default_rng(seed)``.
    """
    return np.random.default_rng(seed)


#: Step-cost models by their settings, kept for the life of a worker process: they are stateless and
#: pure (same settings -> same answers), so reusing them across scenarios only saves building them.
_COST_CACHE: dict[Any, Any] = {}


def run_scenario(scenario: dict[str, Any], seed: int, base_dir: str | None = None) -> dict[str, Any]:
    """Simulate every fleet of ``scenario`` with ``seed``; the summary (or summaries by fleet name)."""
    from pathlib import Path

    from twinfer.sim.run import build_scenario_workload, load_scenario_model, simulate_fleet
    from twinfer.sim.scenario import Scenario

    sc = Scenario.from_dict(scenario, where=str(scenario.get("name", "scenario")),
                            base_dir=Path(base_dir) if base_dir else None)
    workload = build_scenario_workload(sc, seed)
    model = load_scenario_model(sc)
    summaries = [simulate_fleet(sc, fleet, seed, workload=workload, model=model, cost_cache=_COST_CACHE).summary
                 for fleet in sc.fleets]
    if len(summaries) == 1:
        return summaries[0]
    return {str(s.get("fleet", i)): s for i, s in enumerate(summaries)}
