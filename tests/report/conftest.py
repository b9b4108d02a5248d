"""Fixtures for report tests: results folders in the shapes the simulator and the planner write."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_factories import write_plan, write_sim_dir, write_sweep_dir


@pytest.fixture
def sim_dir(tmp_path: Path) -> Path:
    """A two-fleet simulation output folder (one aggregated H100 fleet, one H100 -> TSP disaggregated)."""
    return write_sim_dir(tmp_path / "sim")


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A sweep result folder with two part files and one failed scenario."""
    return write_sweep_dir(tmp_path / "sweep")


@pytest.fixture
def plan_path(tmp_path: Path) -> Path:
    """A plan JSON with its sweep beside it."""
    return write_plan(tmp_path / "plan")


@pytest.fixture(scope="session")
def real_sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``twinfer simulate tests/data/report/tiny-scenario.yaml --out DIR`` run by the real simulator."""
    from twinfer.cli import main

    out = tmp_path_factory.mktemp("real") / "sim"
    scenario = Path(__file__).resolve().parents[1] / "data" / "report" / "tiny-scenario.yaml"
    assert main(["simulate", str(scenario), "--out", str(out)]) == 0
    return out
