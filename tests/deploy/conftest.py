"""Plan and simulation documents, as `twinfer plan` and `twinfer simulate --out` write them."""

from __future__ import annotations

import json

import pytest


def _pool(role, hardware="h100", count=1, tp=4, chips=None, max_batch_seqs=None, token_budget=2048):
    return {"role": role, "hardware": hardware, "count": count, "tp": tp, "chips": chips,
            "max_batch_seqs": max_batch_seqs, "batching": {"policy": "chunked", "token_budget": token_budget}}


@pytest.fixture
def plan_dir(tmp_path):
    """A plan folder whose plan.json recommends an aggregated fleet and lists a disaggregated and a GPU->LPU one."""
    doc = {
        "schema": "twinfer.plan/1", "name": "t", "model": "llama-3-70b", "objective": "min_cost",
        "candidates": [
            {"key": "agg[2x h100 tp4]", "mode": "aggregated", "pools": [_pool("mixed", count=2, max_batch_seqs=128)]},
            {"key": "disagg[1x h100 tp4 -> 2x h200 tp8]", "mode": "disaggregated",
             "pools": [_pool("prefill"), _pool("decode", hardware="h200", count=2, tp=8)]},
            {"key": "disagg[1x h100 tp8 -> 1x groq-tsp-v1]", "mode": "disaggregated",
             "pools": [_pool("prefill", tp=8), _pool("decode", hardware="groq-tsp-v1", tp=1, chips=576)]},
        ],
        "recommended": {"key": "agg[2x h100 tp4]", "why": "cheapest"},
    }
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    return tmp_path


@pytest.fixture
def sim_dir(tmp_path):
    """A simulation folder whose summary.json records two fleets' pools (fp8 weights and KV on one)."""
    def pool(tp, count, weights="bf16", kv="bf16"):
        return {"hardware": "h100", "kind": "gpu", "count": count, "tp": tp, "pp": 1, "chips": None,
                "precision": {"weights": weights, "activations": "bf16", "kv_cache": kv},
                "batching": {"policy": "chunked", "token_budget": 4096, "max_batch_seqs": 64}, "engine": None}
    doc = {"scenario": "s", "seed": 0, "notes": [], "fleets": [{"fleet": "a"}, {"fleet": "b"}],
           "inputs": {"model": {"name": "llama-3-8b"},
                      "fleets": {"colocated": {"router": "least_outstanding", "kv_link": None,
                                               "pools": {"mixed": pool(1, 2, "fp8", "fp8")}},
                                 "split": {"router": "least_outstanding", "kv_link": {"name": "ib-ndr"},
                                           "pools": {"prefill": pool(2, 1), "decode": pool(1, 3)}}}}}
    out = tmp_path / "sim"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(doc))
    return out
