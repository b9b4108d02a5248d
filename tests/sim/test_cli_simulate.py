"""``twinfer simulate`` end to end on a tiny scenario with the real GPU backend."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from twinfer.cli import main

SCENARIO = """
model: llama-3-8b
workload:
  num_requests: 60
  arrivals: {kind: poisson, rate_per_s: 10}
  prompt_tokens: {kind: uniform, low: 100, high: 800}
  output_tokens: {kind: uniform, low: 1, high: 50}
slo: {ttft_s: 0.5, tpot_s: 0.05}
fleets:
  - name: colo
    pools: {mixed: {hardware: h100, count: 2}}
  - name: pd
    pools:
      prefill: {hardware: h100, count: 1}
      decode: {hardware: h200, count: 1, batching: {policy: continuous}}
    kv_link: {name: ib-ndr, count: 2, layerwise: true}
"""


def test_simulate_writes_parquet_summary_and_trace(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO)
    out = tmp_path / "out"
    rc = main(["simulate", str(f), "--seed", "3", "--out", str(out), "--trace", str(out / "tl.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "colo" in text and "pd" in text
    table = pq.read_table(out / "requests.parquet")
    assert table.num_rows == 120 and table.column_names[0] == "fleet"
    summary = json.loads((out / "summary.json").read_text())
    assert [s["fleet"] for s in summary["fleets"]] == ["colo", "pd"]
    assert all(s["completed"] == 60 for s in summary["fleets"])
    assert summary["fleets"][1]["kv_bytes_transferred"] > 0
    trace = json.loads((out / "tl.json").read_text())
    kinds = {e["name"].split()[0] for e in trace["traceEvents"] if e["ph"] == "X"}
    assert {"prefill", "decode", "KV"} <= kinds


def test_bad_scenario_is_one_clear_error(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(SCENARIO.replace("count: 2}", "count: 2, batching: {policy: fifo}}"))
    assert main(["simulate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "fifo" in err and "Traceback" not in err


def test_the_verdict_names_the_cheapest_fleet_meeting_the_slos_or_says_none_does() -> None:
    from twinfer.cli.simulate import verdict
    from twinfer.sim.scenario import SloConfig

    slo = SloConfig(ttft_s=1.0, tpot_s=0.05, attainment=0.9)
    fleets = [{"fleet": "a", "slo_attainment": 0.95, "cost_per_m_output_tok_usd": 9.0},
              {"fleet": "b", "slo_attainment": 0.91, "cost_per_m_output_tok_usd": 4.0},
              {"fleet": "c", "slo_attainment": 0.5, "cost_per_m_output_tok_usd": 1.0}]
    line = verdict(fleets, slo)
    assert "2 of 3 fleets meet" in line and "is b ($4.00/M)" in line
    none = verdict([{**f, "slo_attainment": 0.1 * i} for i, f in enumerate(fleets)], slo)
    assert none.startswith("verdict: no fleet meets the SLOs") and "c, meets them for 20%" in none


AUTOSCALED = """
model: llama-3-8b
workload:
  num_requests: 1500
  arrivals: {kind: diurnal, rate_per_s: 40, period_s: 60, peak_to_trough: 6, peak_at_s: 30}
  prompt_tokens: {kind: uniform, low: 2000, high: 4000}
  output_tokens: {kind: uniform, low: 10, high: 60}
slo: {ttft_s: 0.3, tpot_s: 0.05}
fleets:
  - name: auto
    pools: {mixed: {hardware: h100, count: 1}}
    autoscale: {interval_s: 5, reconfigure_delay_s: 5, patience_windows: 1, max_instances: {mixed: 3}}
"""


def test_an_autoscaled_fleet_prints_and_writes_its_comparison_with_the_static_peak(tmp_path, capsys):
    f = tmp_path / "a.yaml"
    f.write_text(AUTOSCALED)
    out = tmp_path / "out"
    assert main(["simulate", str(f), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "autoscaled vs the same fleet static at its peak" in text
    doc = json.loads((out / "summary.json").read_text())
    s = doc["fleets"][0]
    timeline = doc["autoscale"]["auto"]["timeline"]
    assert timeline[0] == {"t_s": 0.0, "mixed": 1, "paid": 1}
    assert max(p["mixed"] for p in timeline) == s["autoscale.static_instances"] == s["pool.mixed.instances"]
    assert s["autoscale.adds"] >= 1 and s["autoscale.static_instances"] > 1  # the load outgrows one instance
    # the paid steps integrate to the instance-hours (up to the run's end)
    paid = doc["autoscale"]["auto"]["paid"]
    end = max(s["duration_s"], paid[-1][0])
    hours = sum(n * (b - a) for (a, n), (b, _) in zip(paid, [*paid[1:], [end, 0]], strict=True)) / 3600
    assert abs(hours - s["autoscale.instance_hours"]) < 1e-12


def test_a_bad_autoscale_block_is_one_clear_error(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(AUTOSCALED.replace("patience_windows: 1", "patience_windows: 0"))
    assert main(["simulate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "autoscale.patience_windows" in err and "Traceback" not in err
