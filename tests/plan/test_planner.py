"""The planner end to end on a tiny case, against brute-force simulation of every configuration."""

from __future__ import annotations

import json

import pytest

from twinfer.plan.planner import make_jobs, prune, run_plan, scenario_for
from twinfer.plan.runner import run_scenario
from twinfer.plan.space import parse_plan

pytest.importorskip("twinfer.sim.scenario")

#: Llama-3.1-8B on H100s at 12 req/s of 1,500-token prompts with a 4 ms TPOT SLO: one TP1 GPU cannot
#: decode that fast even when idle (8B bf16 weights / 3.35 TB/s ~ 4.8 ms a step), and one instance
#: cannot prefill 18k tokens/s, so the bounds have something to prune.
TINY = {
    "name": "tiny",
    "model": "llama-3.1-8b",
    "workload": {"num_requests": 40, "prompt_tokens": {"kind": "uniform", "low": 1000, "high": 2000},
                 "output_tokens": {"kind": "uniform", "low": 8, "high": 24}},
    "target_rate_per_s": 12,
    "slo": {"ttft_s": 1.0, "tpot_s": 0.004, "percentile": 90},
    "objective": "min_cost",
    "hardware": ["h100"],
    "search": {"modes": ["aggregated", "disaggregated"], "tp": [1, 2], "max_instances_per_pool": 2,
               "strategy": "exhaustive"},
    "seed": 3,
}


def _feasible(summary: dict, attainment: float) -> bool:
    return summary["slo_attainment"] >= attainment


@pytest.fixture(scope="module")
def spec():
    return parse_plan(TINY)


def test_pruning_never_discards_a_feasible_configuration(spec) -> None:
    report = prune(spec)
    bound_pruned = [(key, rate) for (key, rate), why in report.reasons.items() if not why.startswith("memory")]
    assert bound_pruned, "the tiny case must exercise the bounds"
    assert report.survivors, "and leave something to simulate"
    by_key = {c.key: c for c in report.candidates}
    feasible_any = False
    for cand in report.candidates:  # brute force: simulate every configuration, pruned or not
        for rate in spec.rates_per_s:
            summary = run_scenario(scenario_for(spec, cand, rate), spec.seed)
            ok = _feasible(summary, spec.attainment)
            feasible_any |= ok
            if (cand.key, rate) in report.reasons:
                assert not ok, f"pruned {cand.key} at {rate}: {report.reasons[(cand.key, rate)]}, yet feasible"
    assert feasible_any
    assert len(by_key) == len(report.candidates)


def test_recommendation_meets_the_slos_and_staircase_agrees(spec, tmp_path) -> None:
    plan = run_plan(spec, tmp_path / "ex")
    assert plan["recommended"] is not None
    key = plan["recommended"]["key"]
    cand = next(c for c in prune(spec).candidates if c.key == key)
    summary = run_scenario(scenario_for(spec, cand, spec.target_rate_per_s), spec.seed)  # independent rerun
    assert summary["slo_attainment"] >= spec.attainment
    entry = next(c for c in plan["candidates"] if c["key"] == key)
    assert entry["by_rate"]["12"]["slo_attainment"] == pytest.approx(summary["slo_attainment"])
    # no cheaper fleet was found feasible
    cheaper = [c for c in plan["candidates"] if c["price_per_hour_usd"] < entry["price_per_hour_usd"]]
    assert not any(c["by_rate"]["12"]["feasible"] for c in cheaper)
    stair = run_plan(parse_plan({**TINY, "search": {**TINY["search"], "strategy": "staircase"}}), tmp_path / "st")
    assert stair["recommended"]["key"] == key
    assert stair["search"]["simulated"] <= plan["search"]["simulated"]
    json.dumps(plan, allow_nan=False)


def test_jobs_carry_candidate_and_rate_columns(spec) -> None:
    report = prune(spec)
    jobs = make_jobs(spec, report.survivors)
    assert len({j.scenario_id for j in jobs}) == len(jobs)
    assert {j.params["candidate"] for j in jobs} == {c.key for c, _ in report.survivors}
