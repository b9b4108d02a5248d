"""The shipped sweep and plan examples parse, and every scenario they make passes the simulator's schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinfer.plan.grid import expand, load_sweep
from twinfer.plan.planner import scenario_for
from twinfer.plan.space import enumerate_candidates, instance_shapes, load_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted((EXAMPLES / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_example_sweeps_expand_to_valid_scenarios(path: Path) -> None:
    from twinfer.sim.scenario import Scenario

    jobs = expand(load_sweep(path))
    assert jobs
    for job in jobs:
        Scenario.from_dict(job.scenario, where=f"{path.name}[{job.index}]", base_dir=Path(job.base_dir))


@pytest.mark.parametrize("path", sorted((EXAMPLES / "plans").glob("*.yaml")), ids=lambda p: p.name)
def test_example_plans_make_valid_scenarios(path: Path) -> None:
    from twinfer.hardware import get_hardware
    from twinfer.sim.scenario import Scenario

    spec = load_plan(path)
    kinds = {hw: get_hardware(hw).kind for hw in spec.hardware}
    cands = enumerate_candidates(spec, instance_shapes(spec, kinds), kinds)
    assert {c.mode for c in cands} == set(spec.modes)
    for cand in (cands[0], cands[-1]):  # one aggregated, one disaggregated
        Scenario.from_dict(scenario_for(spec, cand, spec.target_rate_per_s), where=path.name)
