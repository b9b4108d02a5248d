"""Goodput never claims more SLO-meeting requests than the fleet served."""

from __future__ import annotations

import json

import pytest
import yaml

from twinfer.cli import main


def _summary(tmp_path, capsys, rate: float, count: int = 1) -> dict:
    scenario = {"name": "g", "model": "llama-3-8b",
                "workload": {"num_requests": 600, "arrivals": {"kind": "poisson", "rate_per_s": rate},
                             "prompt_tokens": {"kind": "fixed", "value": 500},
                             "output_tokens": {"kind": "fixed", "value": 50}},
                "slo": {"ttft_s": 2.0, "tpot_s": 0.2, "attainment": 0.9},
                "fleets": [{"name": "f", "pools": {"mixed": {"hardware": "h100", "count": count}}}]}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(scenario))
    assert main(["simulate", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["fleets"][0]


@pytest.mark.parametrize("rate", [1e6, 1e4, 500.0])
def test_an_overloaded_fleet_reports_no_more_goodput_than_it_served(tmp_path, capsys, rate) -> None:
    s = _summary(tmp_path, capsys, rate)
    assert 0 < s["slo_attainment"] < 0.9  # overloaded, yet some requests met the SLO: the premise
    met = round(s["slo_attainment"] * s["requests"])
    assert s["goodput_rps"] <= s["throughput_rps"]
    # SLO-meeting requests delivered per second of the run (the first arrival is within ~1/rate of t = 0)
    assert s["goodput_rps"] * s["duration_s"] <= met * 1.01
    assert s["goodput_rps"] < s["offered_rps"] * s["slo_attainment"]


def test_a_fleet_that_keeps_up_reports_offered_times_attainment(tmp_path, capsys) -> None:
    s = _summary(tmp_path, capsys, rate=2.0, count=2)
    assert s["slo_attainment"] >= 0.9
    assert s["goodput_rps"] == pytest.approx(s["offered_rps"] * s["slo_attainment"])
