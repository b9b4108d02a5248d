"""AFD decode pools in plans: templates parse, pair with prefill types, and are simulated and priced."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.hardware import get_hardware
from twinfer.plan.planner import fleet_section, prune, run_plan, scenario_for
from twinfer.plan.runner import run_scenario
from twinfer.plan.space import parse_plan

AFD = {"attention": {"hardware": "h100", "count": 2}, "ffn": {"hardware": "h100", "ep": 2}, "link": "nvlink",
       "micro_batches": 2}
PLAN = {
    "name": "afd",
    "model": "mixtral-8x7b",
    "workload": {"num_requests": 30, "prompt_tokens": {"kind": "uniform", "low": 100, "high": 600},
                 "output_tokens": {"kind": "uniform", "low": 4, "high": 20}},
    "target_rate_per_s": 2,
    "slo": {"ttft_s": 2.0, "tpot_s": 0.2, "percentile": 90},
    "objective": "min_cost",
    "hardware": ["h100"],
    "search": {"modes": ["disaggregated"], "tp": [2], "max_instances_per_pool": 1, "strategy": "exhaustive",
               "afd_decode": [AFD]},
    "seed": 0,
}


def test_an_afd_template_becomes_a_candidate_with_its_pool_section():
    spec = parse_plan(PLAN)
    afd = [c for c in prune(spec).candidates if c.pools[-1].afd is not None]
    assert len(afd) == 1
    cand = afd[0]
    assert cand.key == "disagg[1x h100 tp2 -> 1x AFD(2x h100-sxm tp1 + h100-sxm ep2 m2)]"
    assert fleet_section(spec, cand)["pools"]["decode"] == {
        "count": 1, "attention": {"hardware": "h100-sxm", "count": 2, "tp": 1}, "ffn": {"hardware": "h100-sxm", "ep": 2},
        "micro_batches": 2, "link": "nvlink4"}


def test_the_planner_simulates_and_prices_the_afd_candidate(tmp_path):
    spec = parse_plan(PLAN)
    plan = run_plan(spec, tmp_path / "out")
    entry = next(c for c in plan["candidates"] if "AFD" in c["key"])
    h100 = get_hardware("h100").price_per_hour_usd
    assert entry["devices"] == 2 + 4 and entry["price_per_hour_usd"] == pytest.approx(6 * h100)
    assert entry["pools"][-1]["afd"].startswith("attention 2x h100-sxm tp1 + ffn")
    run = entry["by_rate"]["2"]
    assert run["pruned"] is None and run["slo_attainment"] is not None  # simulated, not skipped
    cand = next(c for c in prune(spec).candidates if c.key == entry["key"])
    rerun = run_scenario(scenario_for(spec, cand, 2.0), spec.seed)
    assert rerun["mode"] == "AFD" and rerun["slo_attainment"] == pytest.approx(run["slo_attainment"])


def test_bad_templates_say_where():
    bad = {**PLAN, "search": {**PLAN["search"], "afd_decode": [{**AFD, "engine": "vllm"}]}}
    with pytest.raises(ConfigError, match=r"search\.afd_decode\[0\]: an AFD decode pool takes attention"):
        parse_plan(bad)
    bad = {**PLAN, "search": {**PLAN["search"], "afd_decode": [{"attention": {"hardware": "h100"}}]}}
    with pytest.raises(ConfigError, match=r"search\.afd_decode\[0\]\.ffn"):
        parse_plan(bad)


def test_a_count_in_a_template_is_refused_naming_the_key_that_decides_it():
    bad = {**PLAN, "search": {**PLAN["search"], "afd_decode": [{**AFD, "count": 2}]}}
    with pytest.raises(ConfigError, match=r"search\.afd_decode\[0\]\.count: .*search\.max_instances_per_pool.*"
                                          r"remove it"):
        parse_plan(bad)


def test_templates_without_disaggregated_fleets_are_refused_not_ignored():
    bad = {**PLAN, "search": {**PLAN["search"], "modes": ["aggregated"]}}
    with pytest.raises(ConfigError, match=r"search\.afd_decode: .*add disaggregated to search\.modes"):
        parse_plan(bad)
    assert parse_plan({**bad, "search": {**bad["search"], "afd_decode": []}}).afd_decode == ()
