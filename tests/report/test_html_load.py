"""Detecting and reading what `twinfer report` is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinfer.errors import DataError
from twinfer.report.html_load import load_results


def test_simulation_folder_summary_file_and_parquet_file_all_mean_the_simulation(sim_dir: Path) -> None:
    for given in (sim_dir, sim_dir / "summary.json", sim_dir / "requests.parquet"):
        res = load_results(given)
        assert res.kind == "simulation"
    assert len(res.requests["ttft_s"]) == 800  # two fleets of 400 requests
    assert [f.name for f in res.files] == ["summary.json", "series.json", "requests.parquet"]
    assert set(res.series) == {"colocated-h100", "h100-prefill-tsp-decode"}


def test_sweep_rows_come_in_part_file_order(sweep_dir: Path) -> None:
    res = load_results(sweep_dir)
    assert res.kind == "sweep"
    assert [r["sweep_index"] for r in res.rows] == list(range(9))
    assert res.rows[-1]["status"] == "error" and res.rows[-1].get("throughput_rps") is None


def test_plan_json_brings_its_sweep(plan_path: Path) -> None:
    for given in (plan_path, plan_path.parent):
        res = load_results(given)
        assert res.kind == "plan" and res.sweep is not None and len(res.sweep.rows) == 9
        assert res.sweep.files[0].name == "results/part-000000.parquet"


def test_user_mistakes_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_results(tmp_path / "missing")
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(DataError, match="not a twinfer summary"):
        load_results(tmp_path / "x.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Parquet"):
        load_results(tmp_path / "empty")


def test_a_scenario_written_twice_is_one_row(sweep_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "sweep-copy"
    shutil.copytree(sweep_dir, copy)
    parts = sorted(copy.glob("part-*.parquet"))
    shutil.copy(parts[0], copy / "part-999999.parquet")  # what two sweeps sharing a folder once left behind
    res = load_results(copy)
    assert sorted(r["sweep_index"] for r in res.rows) == list(range(9))
