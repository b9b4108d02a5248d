"""Valid base documents of the fuzz suite: each case breaks one of them in exactly one place."""

from __future__ import annotations

from typing import Any


def base_scenario() -> dict[str, Any]:
    """A small valid scenario: one aggregated and one disaggregated fleet, a synthetic workload."""
    return {
        "name": "fuzz",
        "model": "llama-3-8b",
        "workload": {
            "num_requests": 40,
            "arrivals": {"kind": "poisson", "rate_per_s": 5.0},
            "prompt_tokens": {"kind": "fixed", "value": 100},
            "output_tokens": {"kind": "fixed", "value": 20},
        },
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1, "attainment": 0.9},
        "fleets": [
            {"name": "agg", "router": "least_outstanding", "pools": {"mixed": {
                "hardware": "h100", "count": 1, "tp": 1, "pp": 1, "precision": "bf16",
                "batching": {"policy": "chunked", "token_budget": 2048, "max_batch_seqs": 64,
                             "kv_policy": "reserve", "block_tokens": 16},
                "price_per_hour_usd": 2.0, "power_idle_w": 100.0, "power_max_w": 700.0}}},
            {"name": "disagg", "pools": {"prefill": {"hardware": "h100", "count": 1},
                                         "decode": {"hardware": "h100", "count": 1}},
             "kv_link": {"name": "ib-ndr", "count": 1, "layerwise": False}},
        ],
    }


def base_plan() -> dict[str, Any]:
    """A small valid plan over H100s (checked with --dry-run)."""
    return {
        "name": "fuzz-plan",
        "model": "llama-3-8b",
        "workload": {"trace": "builtin:azure-conv-sample", "max_requests": 50},
        "target_rate_per_s": 2.0,
        "rates_per_s": [1.0, 2.0],
        "slo": {"ttft_s": 1.0, "tpot_s": 0.05, "percentile": 90},
        "objective": "min_cost",
        "hardware": ["h100"],
        "limits": {"budget_per_hour_usd": 100.0, "racks": 1},
        "search": {"modes": ["aggregated"], "tp": [1], "max_instances_per_pool": 2, "strategy": "staircase"},
        "seed": 0,
    }


def base_hardware() -> dict[str, Any]:
    """A valid user hardware file (YAML layout of presets.toml): one GPU and one link."""
    return {
        "gpu": {"fuzz-gpu": {
            "memory_bytes": 80e9, "mem_bw_bytes_per_s": 3.35e12, "peak_flops_per_s": {"bf16": 989e12},
            "scale_up_link": "nvlink4", "num_sms": 132, "l2_bytes": 50e6, "power_idle_w": 70.0,
            "power_max_w": 700.0, "price_per_hour_usd": 2.0}},
        "link": {"fuzz-link": {"bw_bytes_per_s": 25e9, "latency_s": 8e-6, "links_per_node": 8}},
    }
