"""The planner end to end on a tiny case, against brute-force simulation of every configuration."""

from __future__ import annotations

import json

import pytest

from twinfer.plan.planner import make_jobs, prune, run_plan, scenario_for
from twinfer.plan.runner import run_scenario
from twinfer.plan.space import parse_plan

#: Llama-3.1-8B on H100s at 15 and 30 req/s of 2,000-4,000-token prompts with a 6.5 ms TPOT SLO: a TP1
#: GPU cannot decode that fast at those contexts even when idle (16 GB of bf16 weights / 3.35 TB/s is
#: already 4.8 ms a step), and one TP1 instance cannot prefill ~50k tokens/s, so both kinds of bound
#: have something to prune, while TP2/TP4 fleets leave feasible ones (checked by brute force below).
TINY = {
    "name": "tiny",
    "model": "llama-3.1-8b",
    "workload": {"num_requests": 40, "prompt_tokens": {"kind": "uniform", "low": 2000, "high": 4000},
                 "output_tokens": {"kind": "uniform", "low": 8, "high": 24}},
    "target_rate_per_s": 30,
    "rates_per_s": [15],
    "slo": {"ttft_s": 1.0, "tpot_s": 0.0065, "percentile": 90},
    "objective": "min_cost",
    "hardware": ["h100"],
    "search": {"modes": ["aggregated", "disaggregated"], "tp": [1, 2, 4], "max_instances_per_pool": 2,
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
    kinds = {why.split(":")[0] for why in report.reasons.values()}
    assert {"idle_latency", "prefill_throughput"} <= kinds, "the tiny case must exercise the bounds"
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
    assert entry["by_rate"]["30"]["slo_attainment"] == pytest.approx(summary["slo_attainment"])
    # Brute force, independent of the plan's bookkeeping: simulate every candidate cheaper than
    # the recommendation (pruned or not) at the target rate; none may meet the SLOs.
    ruled_out = 0
    for c in prune(spec).candidates:
        other = run_scenario(scenario_for(spec, c, spec.target_rate_per_s), spec.seed)
        if other["price_per_hour_usd"] < entry["price_per_hour_usd"]:
            ruled_out += 1
            assert not _feasible(other, spec.attainment), f"{c.key} is cheaper and feasible"
    assert ruled_out, "the tiny case must have cheaper candidates to rule out"
    stair = run_plan(parse_plan({**TINY, "search": {**TINY["search"], "strategy": "staircase"}}), tmp_path / "st")
    assert stair["recommended"]["key"] == key
    assert stair["search"]["simulated"] <= plan["search"]["simulated"]
    json.dumps(plan, allow_nan=False)


def test_jobs_carry_candidate_and_rate_columns(spec) -> None:
    report = prune(spec)
    jobs = make_jobs(spec, report.survivors)
    assert len({j.scenario_id for j in jobs}) == len(jobs)
    assert {j.params["candidate"] for j in jobs} == {c.key for c, _ in report.survivors}


def test_cli_plan_writes_json_and_parquet(tmp_path, capsys) -> None:
    import yaml

    from twinfer.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({**TINY, "search": {**TINY["search"], "strategy": "staircase"}}))
    assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["schema"] == "twinfer.plan/1" and [r["rate_per_s"] for r in plan["by_rate"]] == [15.0, 30.0]
    assert "Recommended" in printed and plan["recommended"]["key"] in printed
    assert list((tmp_path / "out" / "results").glob("part-*.parquet"))
    # a rerun resumes from the stored results and gives the same plan, byte for byte
    first = (tmp_path / "out" / "plan.json").read_bytes()
    assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    assert (tmp_path / "out" / "plan.json").read_bytes() == first


def test_trace_arrival_pattern_scales_the_trace_to_each_rate() -> None:
    from twinfer.plan.planner import workload_stats

    spec = parse_plan({**TINY, "workload": {"trace": "builtin:azure-conv-sample", "max_requests": 50},
                       "arrival_pattern": "trace", "rates_per_s": [2, 8]})
    for rate in (2.0, 8.0):
        stats = workload_stats(spec, rate)
        # the kept requests arrive at the asked mean rate: (n - 1) / (last - first) with the first at t=0
        assert stats.num_requests == 50
        assert (stats.num_requests - 1) / stats.last_arrival_s == pytest.approx(rate, rel=1e-9)


def test_cli_plan_in_which_every_simulation_fails_exits_1(tmp_path, capsys) -> None:
    import yaml

    from twinfer.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--runner", "fake_runner:fail"]) == 1
    assert "every simulation of the plan failed" in capsys.readouterr().err
