"""The written page: self-contained, deterministic, and its data block agrees with the files."""

from __future__ import annotations

import json
import re
from pathlib import Path

from twinfer.report.html_format import resolve_pointer
from twinfer.report.html_report import write_report


def _data_block(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="twinfer-data">(.*?)</script>', html, re.S)
    assert m, "no twinfer-data block"
    return json.loads(m.group(1))


def test_page_is_self_contained(sim_dir: Path, tmp_path: Path) -> None:
    html = write_report(sim_dir, tmp_path / "r.html").read_text()
    assert not re.search(r"<script[^>]+src=", html)  # no external scripts
    assert not re.search(r"<link[^>]+href=", html)  # no external stylesheets
    assert "plotly.js v" in html  # the library itself is inlined


def test_same_inputs_give_byte_identical_pages(sim_dir: Path, tmp_path: Path) -> None:
    a = write_report(sim_dir, tmp_path / "a.html").read_bytes()
    b = write_report(sim_dir, tmp_path / "b.html").read_bytes()
    assert a == b


def test_data_block_numbers_are_the_summary_values(sim_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((sim_dir / "summary.json").read_text())
    data = _data_block(write_report(sim_dir, tmp_path / "r.html").read_text())
    assert data["kind"] == "simulation"
    assert data["sections"]["overview"]["fleets"] == [f["fleet"] for f in summary["fleets"]]
    paths = {n["path"] for n in data["numbers"]}
    for i, fleet in enumerate(summary["fleets"]):
        for key, value in fleet.items():  # every scalar number of every fleet is shown somewhere
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert f"/fleets/{i}/{key}" in paths, key
    for n in data["numbers"]:  # every number comes from the results (nothing recomputed from presets)
        assert n["src"] == "summary.json"
        assert resolve_pointer(summary, n["path"]) == n["value"]


def test_fleet_names_are_escaped(sim_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((sim_dir / "summary.json").read_text())
    summary["fleets"][0]["fleet"] = "<img src=x onerror=alert(1)>"
    (sim_dir / "summary.json").write_text(json.dumps(summary))
    html = write_report(sim_dir, tmp_path / "r.html").read_text()
    assert "<img src=x" not in html


def test_sections_without_data_say_so(sim_dir: Path, tmp_path: Path) -> None:
    (sim_dir / "requests.parquet").unlink()
    (sim_dir / "series.json").unlink()
    summary = json.loads((sim_dir / "summary.json").read_text())
    del summary["inputs"]
    (sim_dir / "summary.json").write_text(json.dumps(summary))
    html = write_report(sim_dir, tmp_path / "r.html").read_text()
    assert "No per-request Parquet found" in html
    assert "No sampled pool series" in html
    # named but not described by the results: the page says so instead of filling in today's presets
    assert "The results name hardware they do not describe (h100, groq-tsp-v1)" in html
    assert "do not record the hardware kind of" in html and "installed preset" not in html


def test_an_lpu_pool_without_a_recorded_partition_is_reported_missing_not_recompiled(sim_dir: Path,
                                                                                     tmp_path: Path) -> None:
    summary = json.loads((sim_dir / "summary.json").read_text())
    summary["fleets"][1]["pools"] = {"decode": {"role": "decode", "hardware": "groq-tsp-v1", "kind": "lpu"}}
    summary["inputs"].pop("fleets")  # as written by a version that recorded no partitions
    (sim_dir / "summary.json").write_text(json.dumps(summary))
    html = write_report(sim_dir, tmp_path / "r.html").read_text()
    assert "the results do not record the LPU partition; rerun" in html
    assert {n["src"] for n in _data_block(html)["numbers"]} == {"summary.json"}


def test_lpu_partition_recorded_in_summary_is_shown_as_recorded(sim_dir: Path, tmp_path: Path) -> None:
    summary = json.loads((sim_dir / "summary.json").read_text())
    part = {"chips_used": 8, "tp": 2, "capacity_bytes": 230686720,
            "stages": [{"index": s, "chips": [2 * s, 2 * s + 1], "first_block": 3 * s, "last_block": 3 * s + 2,
                        "bytes_per_chip": 200_000_000 - s} for s in range(4)]}
    summary["fleets"][1]["pools"] = {"decode": {"role": "decode", "hardware": "groq-tsp-v1", "kind": "lpu",
                                                "lpu_partition": part}}
    (sim_dir / "summary.json").write_text(json.dumps(summary))
    data = _data_block(write_report(sim_dir, tmp_path / "r.html").read_text())
    nums = {n["path"]: n["value"] for n in data["numbers"] if n["src"] == "summary.json"}
    assert nums["/fleets/1/pools/decode/lpu_partition/stages/3/bytes_per_chip"] == 199_999_997
    assert {n["src"] for n in data["numbers"]} == {"summary.json"}


def test_plan_page_cites_plan_and_sweep(plan_path: Path, tmp_path: Path) -> None:
    html = write_report(plan_path, tmp_path / "p.html").read_text()
    data = _data_block(html)
    plan = json.loads(plan_path.read_text())
    assert {n["src"] for n in data["numbers"]} == {"plan.json", "sweep"}
    for n in data["numbers"]:
        if n["src"] == "plan.json":
            assert resolve_pointer(plan, n["path"]) == n["value"]
    assert "cheapest of the feasible fleets (fixture)" in html
    assert data["sections"]["plan"] == {"recommended": "agg-h100-tp4x2", "pareto": plan["pareto"]}
    # Each candidate's price and its TTFT at the target rate ("2") are in the candidates table.
    paths = {n["path"] for n in data["numbers"]}
    for i in range(len(plan["candidates"])):
        assert {f"/candidates/{i}/price_per_hour_usd", f"/candidates/{i}/by_rate/2/ttft_s"} <= paths
    assert {"pareto-ttft_s", "pareto-tpot_s", "rate-goodput_rps_run", "rate-choice-price"} <= set(data["figures"])
    assert not [f for f in data["figures"] if f.startswith(("sweep-", "pareto-sweep"))]  # the plan draws those


def test_sweep_page_lists_failures(sweep_dir: Path, tmp_path: Path) -> None:
    html = write_report(sweep_dir, tmp_path / "s.html").read_text()
    data = _data_block(html)
    assert "CapacityError: model does not fit" in html
    assert data["sections"]["sweep-overview"] == {"rows": 9, "ok": 8, "failed": 1}
    assert {"sweep-rate-throughput_rps", "sweep-rate-goodput_rps", "pareto-sweep-fig"} <= set(data["figures"])


def test_nan_in_the_summary_is_shown_not_cited(sim_dir: Path, tmp_path: Path) -> None:
    """The simulator writes NaN for undefined statistics (e.g. TPOT of one-token runs)."""
    summary = json.loads((sim_dir / "summary.json").read_text())
    summary["fleets"][0]["tpot_p99_s"] = float("nan")
    (sim_dir / "summary.json").write_text(json.dumps(summary))
    series = json.loads((sim_dir / "series.json").read_text())
    series["colocated-h100"]["mixed"]["waiting"][3] = float("nan")
    (sim_dir / "series.json").write_text(json.dumps(series))
    html = write_report(sim_dir, tmp_path / "r.html").read_text()
    data = _data_block(html)
    assert "/fleets/0/tpot_p99_s" not in {n["path"] for n in data["numbers"]}
    assert "/fleets/1/tpot_p99_s" in {n["path"] for n in data["numbers"]}


def test_sweep_frontier_compares_scenarios_at_the_same_rate(tmp_path: Path) -> None:
    """Hand-counted: at rate 1, A (cost 1, lat 1) dominates B (2, 2); C (3, 3) is alone at rate 2."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"scenario_id": n, "status": "ok", "rate_per_s": rate, "cost_per_m_output_tok_usd": c, "ttft_p99_s": c,
             "params_json": json.dumps({"rate_per_s": rate, "name": n})}
            for n, rate, c in (("A", 1.0, 1.0), ("B", 1.0, 2.0), ("C", 2.0, 3.0))]
    (tmp_path / "sweep").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "sweep" / "part-000000.parquet")
    html = write_report(tmp_path / "sweep", tmp_path / "s.html").read_text()
    spec = json.loads(re.search(r'data-target="pareto-sweep-fig">(.*?)</script>', html, re.S).group(1))
    (front,) = [t for t in spec["data"] if t["name"] == "Pareto set"]
    assert front["x"] == [1.0, 3.0]


def test_sampled_utilisation_gets_its_own_chart(sim_dir: Path, tmp_path: Path) -> None:
    series = json.loads((sim_dir / "series.json").read_text())
    pool = series["colocated-h100"]["mixed"]
    pool["busy"] = [0.5] * len(pool["t_s"])
    (sim_dir / "series.json").write_text(json.dumps(series))
    html = write_report(sim_dir, tmp_path / "r.html").read_text()
    spec = json.loads(re.search(r'data-target="pool-util-0">(.*?)</script>', html, re.S).group(1))
    assert [t["name"] for t in spec["data"]] == ["mixed (h100) busy"]
    counts = json.loads(re.search(r'data-target="pool-series-0">(.*?)</script>', html, re.S).group(1))
    assert [t["name"] for t in counts["data"]] == ["mixed (h100) waiting", "mixed (h100) running"]
