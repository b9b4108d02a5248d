"""Reading the fleet to deploy from plan.json and summary.json."""

from __future__ import annotations

import pytest

from twinfer.deploy import load_fleet
from twinfer.errors import ConfigError


def test_plan_gives_the_recommended_fleet(plan_dir):
    f = load_fleet(plan_dir)
    assert f.name == "agg[2x h100 tp4]" and f.model == "llama-3-70b" and f.mode == "aggregated"
    (p,) = f.pools
    assert (p.role, p.count, p.tp, p.max_num_seqs, p.max_num_batched_tokens, p.kind) == ("mixed", 2, 4, 128, 2048, "gpu")


def test_plan_fleet_by_key_and_lpu_pools_are_marked(plan_dir):
    f = load_fleet(plan_dir / "plan.json", "disagg[1x h100 tp8 -> 1x groq-tsp-v1]")
    assert [p.kind for p in f.pools] == ["gpu", "lpu"] and f.pools[1].chips == 576
    with pytest.raises(ConfigError, match="no candidate fleet 'nope'"):
        load_fleet(plan_dir, "nope")


def test_summary_needs_a_name_when_several_fleets_ran(sim_dir):
    with pytest.raises(ConfigError, match="pick one with --fleet NAME"):
        load_fleet(sim_dir)
    f = load_fleet(sim_dir, "colocated")
    (p,) = f.pools
    assert (f.model, p.weights_dtype, p.kv_cache_dtype, p.count, p.max_num_seqs) == ("llama-3-8b", "fp8", "fp8", 2, 64)
    assert load_fleet(sim_dir, "split").mode == "disaggregated"


def test_missing_or_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="no plan.json or summary.json"):
        load_fleet(tmp_path)
    (tmp_path / "plan.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        load_fleet(tmp_path)


def test_an_unset_sequence_cap_is_the_one_the_run_used(plan_dir, sim_dir):
    """Plans simulate with the roofline profile (256 sequences when the pool sets none); deploy keeps it."""
    f = load_fleet(plan_dir, "disagg[1x h100 tp4 -> 2x h200 tp8]")
    assert [p.max_num_seqs for p in f.pools] == [256, 256]


def test_a_summary_records_the_offload_tiers_of_each_prefix_cache(sim_dir):
    import json

    path = sim_dir / "summary.json"
    doc = json.loads(path.read_text())
    doc["inputs"]["fleets"]["split"]["prefix_cache"] = {"prefill": {"tiers": ["h100-host-dram"]}}
    doc["inputs"]["fleets"]["colocated"]["prefix_cache"] = {"mixed": {"blocks": 100, "tiers": []}}
    path.write_text(json.dumps(doc))
    assert load_fleet(sim_dir, "split").prefix_tiers == (("prefill", ("h100-host-dram",)),)
    assert load_fleet(sim_dir, "colocated").prefix_tiers == ()
