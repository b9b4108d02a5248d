"""Fleets with LPU pools get TPOT, goodput and $/M bands from reruns at the fastest and slowest LPU sets."""

from __future__ import annotations

import json
from pathlib import Path

from twinfer.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpu_prefill_lpu_decode.yaml"


def _run(tmp_path, capsys, *extra: str) -> dict:
    f = tmp_path / "s.yaml"
    f.write_text(EXAMPLE.read_text(encoding="utf-8").replace("max_requests: 500", "max_requests: 60"),
                 encoding="utf-8")
    assert main(["simulate", str(f), "--json", *extra]) == 0
    return {s["fleet"]: s for s in json.loads(capsys.readouterr().out)["fleets"]}


def test_lpu_fleet_has_bands_around_its_point_and_gpu_fleet_none(tmp_path, capsys):
    fleets = _run(tmp_path, capsys)
    lpu, gpu = fleets["h100-prefill-tsp-decode"], fleets["colocated-h100x4"]
    assert "tpot_p50_s_range" not in gpu
    for key in ("tpot_p50_s", "tpot_p99_s", "goodput_rps", "cost_per_m_output_tok_usd"):
        lo, hi = lpu[f"{key}_range"]
        assert lo <= lpu[key] <= hi, key
    # The consistent parameter sets differ in per-token cost, so the LPU decode TPOT band is not a point.
    lo, hi = lpu["tpot_p50_s_range"]
    assert hi > lo * 1.05


def test_no_bands_skips_the_reruns(tmp_path, capsys):
    fleets = _run(tmp_path, capsys, "--no-bands")
    assert "tpot_p50_s_range" not in fleets["h100-prefill-tsp-decode"]


def test_a_gpu_fleet_whose_draft_model_runs_on_lpu_chips_gets_a_band(tmp_path, capsys):
    """The drafter's time comes from the uncertain LPU model too; the GPU drafter's fleet stays a point."""
    body = """
model: llama-3-8b
workload: {num_requests: 40, arrivals: {kind: poisson, rate_per_s: 4},
           prompt_tokens: {kind: uniform, low: 100, high: 600}, output_tokens: {kind: uniform, low: 20, high: 120}}
fleets:
  - name: lpu-drafter
    pools: {mixed: {hardware: h100, speculative: {method: draft, draft_model: llama-3.1-8b, k: 3, acceptance: 0.7,
                                                  draft_devices: {hardware: groq-tsp-v1, precision: int8}}}}
  - name: gpu-drafter
    pools: {mixed: {hardware: h100, speculative: {method: draft, draft_model: llama-3.1-8b, k: 3, acceptance: 0.7,
                                                  draft_devices: {hardware: h100}}}}
"""
    f = tmp_path / "s.yaml"
    f.write_text(body, encoding="utf-8")
    assert main(["simulate", str(f), "--json"]) == 0
    fleets = {s["fleet"]: s for s in json.loads(capsys.readouterr().out)["fleets"]}
    lpu = fleets["lpu-drafter"]
    lo, hi = lpu["tpot_p50_s_range"]
    assert lo <= lpu["tpot_p50_s"] <= hi and hi > lo
    assert "tpot_p50_s_range" not in fleets["gpu-drafter"]
