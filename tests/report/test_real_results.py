"""Reports of files written by the real simulator and sweep engine (not fixtures in an assumed shape)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from twinfer.cli import main
from twinfer.report.html_format import resolve_pointer
from twinfer.report.html_report import write_report

DATA = Path(__file__).resolve().parents[1] / "data" / "report"


def _data_block(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="twinfer-data">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def test_simulation_report_shows_every_summary_number_as_written(real_sim_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((real_sim_dir / "summary.json").read_text())
    assert main(["report", str(real_sim_dir), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    data = _data_block(html)
    cited = {n["path"]: n["value"] for n in data["numbers"] if n["src"] == "summary.json"}
    for path, value in cited.items():
        assert resolve_pointer(summary, path) == value, path
    for i, fleet in enumerate(summary["fleets"]):
        for key, value in fleet.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert f"/fleets/{i}/{key}" in cited, key
    assert {s["name"] for s in data["sources"]} == {"summary.json", "series.json", "requests.parquet"}
    # CDFs from the per-request Parquet, one queue chart per fleet from series.json, cost bars.
    figs = set(data["figures"])
    assert {"cdf-ttft", "cdf-tpot", "cdf-e2e", "cdf-kv-transfer", "bar-cost_per_m_output_tok_usd"} <= figs
    assert {f"pool-series-{i}" for i in range(len(summary["fleets"]))} <= figs
    assert "lpu: mixed on groq-tsp-v1" in html  # the LPU pool gets its section (partition or a reason)


def test_sweep_report_cites_the_parquet_rows(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "sweep"
    assert main(["sweep", str(DATA / "tiny-sweep.yaml"), "--out", str(out), "--workers", "1"]) == 0  # failed scenarios are recorded as rows; the sweep itself succeeds
    page = write_report(out, tmp_path / "s.html")
    html = page.read_text()
    data = _data_block(html)
    rows = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert data["sections"]["sweep-overview"] == {"rows": 4, "ok": 2, "failed": 2}
    assert "llama-3.1-405b does not fit" in html  # failures listed with their error
    sweep_cells = [n for n in data["numbers"] if n["src"] == "sweep"]
    assert sweep_cells
    for n in sweep_cells:
        assert resolve_pointer(rows, n["path"]) == n["value"]
    assert {"sweep-rate-throughput_rps", "sweep-rate-goodput_rps", "pareto-sweep-fig"} <= set(data["figures"])


@pytest.mark.parametrize("bad", ["summary.json", "series.json"])
def test_corrupt_results_file_is_a_one_line_error(real_sim_dir: Path, tmp_path: Path, bad: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(real_sim_dir, copy)
    (copy / bad).write_text("{truncated")
    assert main(["report", str(copy), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert bad in err and "Traceback" not in err


def test_recorded_inputs_make_the_report_stand_alone(real_sim_dir: Path, tmp_path: Path) -> None:
    """With the ``inputs`` block (as `twinfer simulate` should write it), nothing is filled in from presets."""
    import shutil

    from twinfer.hardware import get_hardware
    from twinfer.report.html_inputs_doc import inputs_document
    from twinfer.sim import load_scenario
    from twinfer.sim.run import build_scenario_workload, load_scenario_model

    scen = load_scenario(DATA / "tiny-scenario.yaml")
    inputs = inputs_document(scen, load_scenario_model(scen), build_scenario_workload(scen, 0))
    copy = tmp_path / "copy"
    shutil.copytree(real_sim_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["inputs"] = inputs
    (copy / "summary.json").write_text(json.dumps(summary))
    html = write_report(copy, tmp_path / "r.html").read_text()
    data = _data_block(html)
    assert "installed preset" not in html and "do not record the LPU partition" not in html
    cited = {n["path"]: n["value"] for n in data["numbers"]}
    assert {n["src"] for n in data["numbers"]} == {"summary.json"}
    # The H100's memory bandwidth is shown as recorded, next to its source.
    h100 = get_hardware("h100")
    assert cited[f"/inputs/hardware/{h100.name}/mem_bw_bytes_per_s"] == h100.mem_bw_bytes_per_s
    assert h100.sources["mem_bw_bytes_per_s"] in html.replace("&#x27;", "'")
    # The LPU fleet's partition: used chips = tensor split x stages, each chip within its SRAM.
    part = inputs["fleets"]["lpu"]["pools"]["mixed"]["lpu_partition"]
    assert cited["/inputs/fleets/lpu/pools/mixed/lpu_partition/chips_used"] == part["tp"] * len(part["stages"])
    assert all(st["bytes_per_chip"] <= part["capacity_bytes"] for st in part["stages"])
    assert any(f.startswith("lpu-sram-") for f in data["figures"])
