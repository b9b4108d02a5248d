"""Bad scenario files (`twinfer simulate FILE`): every field broken every way gets one clean error."""

from __future__ import annotations

import copy
import math

import pytest
from fuzz_bases import base_scenario
from fuzz_harness import MISSING, assert_clean_error, field_cases, invoke, set_path, write_yaml

MIXED = "fleets.0.pools.mixed"
#: Numeric fields of the scenario schema and their kind (see fuzz_harness.BAD_BY_KIND).
NUMERIC_FIELDS = {
    "workload.num_requests": "pos_int",
    "workload.arrivals.rate_per_s": "pos_num",
    "workload.prompt_tokens.value": "pos_int",
    "workload.output_tokens.value": "pos_int",
    "slo.ttft_s": "pos_num",
    "slo.tpot_s": "pos_num",
    "slo.attainment": "fraction",
    f"{MIXED}.count": "pos_int",
    f"{MIXED}.tp": "pos_int",
    f"{MIXED}.pp": "pos_int",
    f"{MIXED}.batching.token_budget": "pos_int",
    f"{MIXED}.batching.max_batch_seqs": "pos_int",
    f"{MIXED}.batching.block_tokens": "pos_int",
    f"{MIXED}.price_per_hour_usd": "nonneg",
    f"{MIXED}.power_idle_w": "nonneg",
    f"{MIXED}.power_max_w": "nonneg",
    "fleets.1.kv_link.count": "pos_int",
}
#: (dotted path, bad value, what the message must name) for names, enums, booleans and structure.
OTHER_CASES = [
    ("model", "no-such-model", "no-such-model"),
    ("model", 42, "model"),
    (f"{MIXED}.hardware", "no-such-chip", "no-such-chip"),
    (f"{MIXED}.hardware", 7, "hardware"),
    (f"{MIXED}.precision", "fp3", "precision"),
    (f"{MIXED}.batching.policy", "greedy", "policy"),
    (f"{MIXED}.batching.kv_policy", "evict", "kv_policy"),
    ("fleets.0.router", "random", "router"),
    ("fleets.1.kv_link.name", "no-such-link", "no-such-link"),
    ("fleets.1.kv_link.layerwise", "maybe", "layerwise"),
    ("workload.arrivals.kind", "burst", "kind"),
    ("workload.prompt_tokens.kind", "normal", "kind"),
    ("workload.arrivals.cv", 2.0, "cv"),
    ("fleets", [], "fleets"),
    ("fleets", "agg", "fleets"),
    ("fleets.0.pools", {"mixed": {"hardware": "h100"}, "decode": {"hardware": "h100"}}, "pools"),
    ("slo", [1, 2], "slo"),
    ("workload", "lots", "workload"),
    ("fleets.1.name", "agg", "unique"),
    (f"{MIXED}.colour", "red", "colour"),
    ("model", MISSING, "model"),
    ("workload", MISSING, "workload"),
    ("fleets", MISSING, "fleets"),
    ("fleets.0.name", MISSING, "name"),
    (f"{MIXED}.hardware", MISSING, "hardware"),
    ("workload.arrivals.rate_per_s", MISSING, "rate_per_s"),
    ("workload.prompt_tokens.value", MISSING, "value"),
    (f"{MIXED}.speculative", "fast", "speculative"),
    (f"{MIXED}.speculative", {"k": 3}, "acceptance"),
    (f"{MIXED}.speculative", {"k": -1, "acceptance": 0.7}, "speculative.k"),
    (f"{MIXED}.speculative", {"k": 2.5, "acceptance": 0.7}, "speculative.k"),
    (f"{MIXED}.speculative", {"k": 1_000_000_000, "acceptance": 0.7}, "limit"),
    (f"{MIXED}.speculative", {"k": 2, "acceptance": "high"}, "acceptance"),
    (f"{MIXED}.speculative", {"k": 2, "acceptance": [0.5, math.nan]}, "acceptance"),
    (f"{MIXED}.speculative", {"method": "medusa", "k": 2, "acceptance": 0.5}, "medusa"),
    (f"{MIXED}.speculative", {"method": "draft", "draft_model": 5, "k": 2, "acceptance": 0.5}, "draft_model"),
    (f"{MIXED}.speculative", {"method": "draft", "draft_model": "no-such-draft", "k": 2, "acceptance": 0.5},
     "no-such-draft"),
    # contradictions refused rather than ignored: heads with a draft model, MTP on a model without an MTP module,
    # a tier twice in one offload chain, a prefix cache on requests without prefix block ids (synthetic here)
    (f"{MIXED}.speculative", {"method": "eagle", "draft_model": "llama-3.1-8b", "k": 2, "acceptance": 0.5},
     "pools.mixed.speculative.draft_model"),
    (f"{MIXED}.speculative", {"method": "mtp", "k": 2, "acceptance": 0.5}, "pools.mixed.speculative.method"),
    ("fleets.0.prefix_cache", {"tiers": ["h100-host-dram", "h100-host-dram"]}, "prefix_cache.tiers: 'h100-host-dram'"),
    ("fleets.0.prefix_cache", True, "fleets[0] (agg).prefix_cache"),
]
#: Sizes that would not fit in memory or time: refused before anything is allocated, with the limit.
SIZE_CASES = [
    ("workload.num_requests", 1_000_000_000_000, "num_requests"),
    (f"{MIXED}.count", 3_000_000, "count"),
]


@pytest.mark.timeout(60)
def test_an_explicit_null_means_the_default(tmp_path, capsys) -> None:
    import json

    doc = base_scenario()
    doc["fleets"][1]["kv_link"]["count"] = None
    doc["fleets"][0]["pools"]["mixed"]["count"] = None
    result = invoke(["simulate", str(write_yaml(tmp_path, doc)), "--json"])
    assert result.code == 0, result.err
    assert json.loads(result.out)["fleets"][0]["instances"] == 1


@pytest.mark.timeout(60)
def test_the_base_scenario_is_valid(tmp_path) -> None:
    result = invoke(["simulate", str(write_yaml(tmp_path, base_scenario())), "--json"])
    assert result.code == 0, result.err


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", field_cases(base_scenario(), NUMERIC_FIELDS), ids=lambda c: c[0])
def test_bad_numeric_field(case, tmp_path) -> None:
    _, doc, mention = case
    assert_clean_error(invoke(["simulate", str(write_yaml(tmp_path, doc))]), mention)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("path,value,mention", OTHER_CASES, ids=[f"{p}={v!r}"[:60] for p, v, _ in OTHER_CASES])
def test_bad_name_enum_or_structure(path, value, mention, tmp_path) -> None:
    doc = base_scenario()
    set_path(doc, path, value)
    assert_clean_error(invoke(["simulate", str(write_yaml(tmp_path, doc))]), mention)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("path,value,mention", SIZE_CASES, ids=[p for p, _, _ in SIZE_CASES])
def test_sizes_beyond_memory_are_refused_with_the_limit(path, value, mention, tmp_path) -> None:
    doc = base_scenario()
    set_path(doc, path, value)
    result = invoke(["simulate", str(write_yaml(tmp_path, doc))])
    assert_clean_error(result, mention)
    assert "limit" in result.message


@pytest.mark.timeout(20)
def test_a_synthetic_duration_beyond_memory_is_refused(tmp_path) -> None:
    doc = base_scenario()
    del doc["workload"]["num_requests"]
    doc["workload"]["duration_s"] = 1e8  # x 5 req/s = 5e8 requests
    result = invoke(["simulate", str(write_yaml(tmp_path, doc))])
    assert_clean_error(result, "duration_s")
    assert "10,000,000" in result.message  # the limit, MAX_REQUESTS


@pytest.mark.timeout(20)
def test_yaml_1e12_gets_a_hint(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(write_yaml(tmp_path, base_scenario()).read_text().replace("ttft_s: 1.0", "ttft_s: 1e3"))
    result = invoke(["simulate", str(path)])
    assert_clean_error(result, "ttft_s")
    assert "1.0e+03" in result.message


@pytest.mark.timeout(20)
@pytest.mark.parametrize("text,mention", [
    ("name: [unclosed\n", "YAML"), ("- just\n- a list\n", "mapping"), ("", "mapping"), ("\x00\x01", "YAML"),
], ids=["unclosed", "list", "empty", "binary"])
def test_malformed_files(text, mention, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert_clean_error(invoke(["simulate", str(path)]), mention)


def test_field_kinds_cover_every_bad_value() -> None:
    # Guards the generator itself: NaN and inf really are in the generated values.
    values = [v for _, doc, _ in field_cases(base_scenario(), {"slo.ttft_s": "pos_num"})
              for v in [doc["slo"]["ttft_s"]]]
    assert any(isinstance(v, float) and math.isnan(v) for v in values)
    assert math.inf in values
    assert copy.deepcopy(base_scenario()) == base_scenario()


@pytest.mark.timeout(30)
def test_absurd_nesting_is_one_line(tmp_path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    assert_clean_error(invoke(["simulate", str(path)]), "nested too deeply")


@pytest.mark.timeout(20)
def test_a_prefix_cache_on_a_jsonl_trace_without_ids_is_one_line(tmp_path) -> None:
    trace = tmp_path / "plain.jsonl"  # ids are optional in twinfer JSONL: found missing once read, before simulating
    trace.write_text("".join(f'{{"arrival_s": {t}, "prompt_tokens": 64, "output_tokens": 4}}\n' for t in range(3)))
    doc = base_scenario()
    doc["workload"] = {"trace": str(trace)}
    doc["fleets"][1]["prefix_cache"] = True
    assert_clean_error(invoke(["simulate", str(write_yaml(tmp_path, doc))]), "fleets[1] (disagg).prefix_cache")


@pytest.mark.timeout(20)
def test_kv_blocks_not_dividing_the_prefix_blocks_are_one_line_naming_the_key(tmp_path) -> None:
    """Mooncake prefix blocks of 512 tokens on KV blocks of 1024: refused at load, naming the fleet, pool and key."""
    doc = base_scenario()
    doc["workload"] = {"trace": "builtin:mooncake-conv-sample", "max_requests": 20}
    doc["fleets"][1]["prefix_cache"] = True
    doc["fleets"][1]["pools"]["prefill"]["batching"] = {"block_tokens": 1024}
    assert_clean_error(invoke(["simulate", str(write_yaml(tmp_path, doc))]),
                       "fleets[1] (disagg).pools.prefill.batching.block_tokens")
