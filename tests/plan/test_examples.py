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


def test_the_sweep_readme_queries_run_on_the_example_sweeps_columns(tmp_path: Path) -> None:
    """Every SQL statement in examples/sweeps/README.md runs against rows shaped like rate_by_fleet's."""
    import re

    from twinfer.plan.store import ResultStore, query
    from twinfer.plan.sweep import make_row

    jobs = expand(load_sweep(EXAMPLES / "sweeps" / "rate_by_fleet.yaml"))
    metrics = {"goodput_rps": 1.0, "ttft_p99_s": 0.5, "cost_per_m_output_tok_usd": 2.0,
               "price_per_hour_usd": 3.0, "slo_attainment": 0.95}
    store = ResultStore(tmp_path)
    store.prepare()
    store.write_part([make_row(j, {"status": "ok", "error": None, "wall_s": 0.0, "metrics": metrics})
                      for j in jobs])
    readme = (EXAMPLES / "sweeps" / "README.md").read_text()
    sql_block = re.search(r"```sql\n(.*?)```", readme, re.S).group(1)
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", sql_block).split(";") if s.strip()]
    assert len(statements) >= 4
    for sql in statements:
        names, rows = query(tmp_path, sql)
        assert names and (rows or "status = 'error'" in sql), sql  # no error rows were written
    _, rows = query(tmp_path, 'SELECT DISTINCT "fleets.0.pools.mixed.count" FROM results ORDER BY 1')
    assert rows == [(1,), (None,)]
