"""Turning simulated rows into a plan: feasibility, goodput on the rate grid, objectives, Pareto, JSON."""

from __future__ import annotations

import json

import pytest

from twinfer.plan.evaluate import evaluate, latency_percentile
from twinfer.plan.pruning import FleetCost, PruneReport
from twinfer.plan.space import Candidate, PoolChoice, parse_plan


def _spec(objective: str = "min_cost"):
    return parse_plan({"model": "llama-3-8b", "workload": {"num_requests": 10}, "target_rate_per_s": 2,
                       "rates_per_s": [1, 4], "slo": {"ttft_s": 1.0, "tpot_s": 0.05, "percentile": 90},
                       "objective": objective, "hardware": ["h100"]})


def _agg(n: int) -> Candidate:
    return Candidate("aggregated", (PoolChoice(role="mixed", hardware="h100", count=n),))


def _row(cand: Candidate, rate: float, att: float, ttft: float, status: str = "ok") -> dict:
    return {"candidate": cand.key, "rate_per_s": rate, "status": status, "error": None if status == "ok" else "boom",
            "slo_attainment": att, "ttft_p90_s": ttft, "tpot_p90_s": 0.02, "goodput_rps": rate * att}


@pytest.fixture
def setup():
    a, b, c = _agg(1), _agg(2), _agg(4)
    costs = {a.key: FleetCost(devices=1, price_per_hour_usd=3.0, power_max_w=700, power_idle_w=70, racks=1),
             b.key: FleetCost(devices=2, price_per_hour_usd=6.0, power_max_w=1400, power_idle_w=140, racks=1),
             c.key: FleetCost(devices=4, price_per_hour_usd=12.0, power_max_w=2800, power_idle_w=280, racks=1)}
    report = PruneReport(candidates=[a, b, c], costs=costs, survivors=[],
                         reasons={(a.key, 4.0): "decode_throughput: too slow"})
    rows = [
        _row(a, 1.0, 0.95, 0.5), _row(a, 2.0, 0.80, 3.0),           # a: feasible at 1 only
        _row(b, 1.0, 0.99, 0.3), _row(b, 2.0, 0.92, 0.7), _row(b, 4.0, 0.50, 5.0),  # b: feasible at 1, 2
        _row(c, 1.0, 1.00, 0.2), _row(c, 2.0, 0.99, 0.25), _row(c, 4.0, 0.95, 0.4),  # c: feasible everywhere
    ]
    return report, rows, (a, b, c)


def test_feasibility_goodput_and_min_cost_choice(setup) -> None:
    report, rows, (a, b, c) = setup
    plan = evaluate(_spec(), report, rows)
    by_key = {x["key"]: x for x in plan["candidates"]}
    assert [by_key[k.key]["goodput_rps"] for k in (a, b, c)] == [1.0, 2.0, 4.0]
    assert by_key[a.key]["by_rate"]["2"]["feasible"] is False
    assert by_key[a.key]["by_rate"]["4"]["pruned"] == "decode_throughput: too slow"
    assert plan["recommended"]["key"] == b.key  # the cheapest feasible at the target rate 2
    assert "$6.00/h" in plan["recommended"]["why"] and "92.0%" in plan["recommended"]["why"]
    assert "+100 %" in plan["recommended"]["why"]  # c costs twice as much
    assert [(r["rate_per_s"], r["recommended"]) for r in plan["by_rate"]] == [(1.0, a.key), (2.0, b.key), (4.0, c.key)]
    # at the target rate, c is faster but dearer than b: both on the cost/latency frontier
    assert plan["pareto"] == [b.key, c.key]
    json.dumps(plan, allow_nan=False)  # the report reads it as strict JSON


def test_goodput_per_dollar_prefers_the_fleet_that_scales(setup) -> None:
    report, rows, (a, b, c) = setup
    plan = evaluate(_spec("max_goodput_per_usd"), report, rows)
    # b: 2 req/s / $6 = 0.333; c: 4 / $12 = 0.333 -> tie broken by price -> b
    assert plan["recommended"]["key"] == b.key
    rows = [r for r in rows if r["candidate"] != c.key] + [_row(c, 1.0, 1, 0.1), _row(c, 2.0, 1, 0.1),
                                                                 _row(c, 4.0, 1, 0.1)]
    report.costs[c.key] = FleetCost(devices=4, price_per_hour_usd=10.0, power_max_w=2800, power_idle_w=1, racks=1)
    assert evaluate(_spec("max_goodput_per_usd"), report, rows)["recommended"]["key"] == c.key  # 0.4 > 0.333


def test_failed_runs_are_infeasible_and_no_choice_is_reported(setup) -> None:
    report, _, (a, b, c) = setup
    rows = [_row(x, 2.0, 0.0, 0.0, status="error") for x in (a, b, c)]
    plan = evaluate(_spec(), report, rows)
    assert plan["recommended"] is None and plan["search"]["failed"] == 3
    assert all(x["by_rate"]["2"]["error"] == "boom" for x in plan["candidates"])


def test_latency_percentile_rounds_up() -> None:
    assert [latency_percentile(p) for p in (50, 80, 90, 95, 99, 100)] == ["p50", "p90", "p90", "p99", "p99", "p99"]


def test_goodput_skips_rates_that_were_not_simulated(setup) -> None:
    report, rows, (a, b, c) = setup
    # the staircase search simulated c only at rate 4 (a cheaper fleet was the smallest feasible at 1 and 2)
    rows = [r for r in rows if r["candidate"] != c.key] + [_row(c, 4.0, 0.95, 0.4)]
    plan = evaluate(_spec(), report, rows)
    by_key = {x["key"]: x for x in plan["candidates"]}
    assert by_key[c.key]["goodput_rps"] == 4.0
    assert by_key[a.key]["goodput_rps"] == 1.0  # infeasible at 2 ends it, whatever comes after


def test_the_plan_names_its_hardware_file_only_when_it_has_one(setup) -> None:
    """`twinfer deploy` finds a plan's user chips through this key; plans without a file keep their JSON as it was."""
    from dataclasses import replace

    report, rows, _ = setup
    assert "hardware_file" not in evaluate(_spec(), report, rows)
    plan = evaluate(replace(_spec(), hardware_file="/abs/my_hw.toml"), report, rows)
    assert plan["hardware_file"] == "/abs/my_hw.toml"


def test_the_reason_counts_devices_in_words(setup) -> None:
    """At 1 req/s the 1-device fleet is the cheapest feasible: "on 1 device", and "on 2 devices" at 2 req/s."""
    report, rows, (a, b, _) = setup
    spec = parse_plan({"model": "llama-3-8b", "workload": {"num_requests": 10}, "target_rate_per_s": 1,
                       "rates_per_s": [1, 4], "slo": {"ttft_s": 1.0, "tpot_s": 0.05, "percentile": 90},
                       "objective": "min_cost", "hardware": ["h100"]})
    plan = evaluate(spec, report, rows)
    assert plan["recommended"]["key"] == a.key and "/h on 1 device," in plan["recommended"]["why"]
    assert "/h on 2 devices," in evaluate(_spec(), report, rows)["recommended"]["why"]
