"""Fixtures for the AFD tests: a tiny DeepSeek-shaped model and a link with round numbers."""

from __future__ import annotations

import pytest

from twinfer.hardware.loader import HardwareSet
from twinfer.hardware.specs import LinkSpec
from twinfer.models.hf_config import spec_from_config

# A tiny DeepSeek-V3-shaped model: 3 layers (the first dense), MLA, 8 routed experts top-2, 1 shared expert.
TINY_MOE = {
    "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
    "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 4096, "q_lora_rank": 0, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": 32, "n_shared_experts": 1, "first_k_dense_replace": 1,
}


@pytest.fixture(scope="module")
def tiny_moe():
    return spec_from_config(TINY_MOE, name="tiny-moe")


@pytest.fixture
def links():
    """A 1 GB/s, 1 us link and an ideal one (no latency, unbounded bandwidth)."""
    return HardwareSet(links={
        "test-link": LinkSpec("test-link", bw_bytes_per_s=1e9, latency_s=1e-6),
        "ideal": LinkSpec("ideal", bw_bytes_per_s=1e30, latency_s=0.0),
    })
