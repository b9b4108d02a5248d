"""Plan files and the search space: checks, and the number of fleets counted by hand."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.plan.space import enumerate_candidates, instance_shapes, parse_plan

BASE = {"model": "llama-3-8b", "workload": {"num_requests": 10}, "target_rate_per_s": 2,
        "slo": {"ttft_s": 1, "tpot_s": 0.05}, "hardware": ["h100", "groq-tsp-v1"]}


def test_search_space_size_by_hand() -> None:
    spec = parse_plan({**BASE, "search": {"tp": [1, 2], "lpu_chips": [None], "max_batch_seqs": [None, 64],
                                          "max_instances_per_pool": 3}})
    shapes = instance_shapes(spec, {"h100": "gpu", "groq-tsp-v1": "lpu"})
    # h100: 2 TPs x 2 caps; LPU: 1 chip option x 2 caps
    assert len(shapes) == 6
    cands = enumerate_candidates(spec, shapes, {"h100": "gpu", "groq-tsp-v1": "lpu"})
    # aggregated: 6 shapes x 3 counts; disaggregated: 6 x 6 shape pairs x 3 x 3 counts
    assert len(cands) == 6 * 3 + 36 * 9
    assert len({c.key for c in cands}) == len(cands)
    assert cands[0].key == "agg[1x h100 tp1]"
    assert cands[-1].key == "disagg[3x groq-tsp-v1 c* b64 -> 3x groq-tsp-v1 c* b64]"


def test_rates_include_the_target_sorted() -> None:
    spec = parse_plan({**BASE, "rates_per_s": [8, 1]})
    assert spec.rates_per_s == (1.0, 2.0, 8.0) and spec.attainment == 0.9


@pytest.mark.parametrize("patch, needle", [
    ({"objective": "fastest"}, "objective"),
    ({"slo": {"ttft_s": 1}}, "slo needs"),
    ({"slo": {"ttft_s": 1, "tpot_s": 1, "percentile": 0}}, "percentile"),
    ({"limits": {"money": 1}}, "unknown limits"),
    ({"search": {"modes": ["split"]}}, "modes"),
    ({"hardwre": ["h100"]}, "unknown keys"),
    ({"target_rate_per_s": 0}, "> 0"),
    ({"arrival_pattern": "bursty"}, "arrival_pattern"),
    ({"arrival_pattern": "trace"}, "needs a workload with a trace"),
])
def test_bad_plans_say_what_is_wrong(patch, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_plan({**BASE, **patch})


def test_batching_variants_multiply_pool_types_and_reach_the_scenario() -> None:
    from twinfer.plan.planner import fleet_section

    spec = parse_plan({**BASE, "hardware": ["h100"], "search": {
        "tp": [1], "modes": ["aggregated"], "max_instances_per_pool": 2,
        "batching": [{"policy": "chunked", "token_budget": 512}, {"policy": "continuous"}]}})
    cands = enumerate_candidates(spec, instance_shapes(spec, {"h100": "gpu"}), {"h100": "gpu"})
    assert [c.key for c in cands] == ["agg[1x h100 tp1 chunked/512]", "agg[2x h100 tp1 chunked/512]",
                                      "agg[1x h100 tp1 continuous]", "agg[2x h100 tp1 continuous]"]
    assert fleet_section(spec, cands[0])["pools"]["mixed"]["batching"] == {"policy": "chunked", "token_budget": 512}
    assert fleet_section(spec, cands[3])["pools"]["mixed"]["batching"] == {"policy": "continuous"}
    with pytest.raises(ConfigError, match="max_batch_seqs"):
        parse_plan({**BASE, "search": {"batching": {"max_batch_seqs": 8}}})
