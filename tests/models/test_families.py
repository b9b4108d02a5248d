"""Gemma-2/3 and Phi-3/3.5: configs parse, parameter counts match the published figures and transformers."""

from __future__ import annotations

import math

import pytest

from twinfer.errors import ConfigError
from twinfer.models import load_model
from twinfer.models.hf_config import spec_from_config
from twinfer.models.registry import preset_config

#: Published parameter counts (models/presets/SOURCES.md): preset -> (billions, relative tolerance).
PUBLISHED = {
    "gemma-2-9b": (9.24, 0.002),
    "gemma-2-27b": (27.2, 0.002),
    "gemma-3-1b": (1.0, 0.001),
    "gemma-3-27b": (27.016, 0.001),  # Gemma 3 report: 1,416 M embedding + 25,600 M non-embedding (no vision)
    "phi-3-mini-4k": (3.82, 0.002),
    "phi-3-medium-4k": (14.0, 0.005),
    "phi-3.5-mini": (3.82, 0.002),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_the_published_figure(name):
    billions, tol = PUBLISHED[name]
    assert load_model(name).param_count() / 1e9 == pytest.approx(billions, rel=tol)


@pytest.mark.parametrize("name", ["gemma-2-9b", "gemma-3-1b", "phi-3-mini-4k", "phi-3.5-mini"])
def test_parameter_count_matches_transformers(name):
    """Count the parameters of the transformers model built from the same config (meta device, no weights)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = preset_config(name)
    config = transformers.AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    hf = sum(p.numel() for p in model.parameters())  # tied tables are one Parameter, counted once
    assert load_model(name).param_count() == hf


def test_gemma2_layers_alternate_and_cap_logits():
    m = load_model("gemma-2-9b")
    assert (m.num_layers, m.num_sliding_layers, m.sliding_window) == (42, 21, 4096)
    assert (m.attn_logit_softcap, m.final_logit_softcap) == (50.0, 30.0)
    assert m.tie_word_embeddings and m.sandwich_norms and not m.qk_norm
    assert m.head_dim == 256 and m.head_dim != m.hidden_size // m.num_attention_heads


def test_gemma3_has_five_local_layers_per_global_and_reads_text_config():
    m = load_model("gemma-3-27b")
    assert m.num_layers == 62 and m.num_layers - m.num_sliding_layers == 62 // 6
    assert m.sliding_window == 1024 and m.qk_norm and m.attn_logit_softcap is None
    assert m.vocab_size == 262208  # Gemma3TextConfig default: the sparse text_config leaves it out


def test_sliding_window_bounds_the_kv_of_local_layers():
    """Gemma-2-9B: 8 KV heads x 256 dims x K and V x 2 bytes = 8 KiB per layer and token."""
    m = load_model("gemma-2-9b")
    per_layer = 2 * 8 * 256 * 2
    assert m.kv_bytes_per_token() == 42 * per_layer  # no window credit
    assert m.kv_bytes_per_sequence(8192) == per_layer * (21 * 8192 + 21 * 4096)
    assert m.kv_bytes_per_sequence(1000) == per_layer * 42 * 1000  # inside the window nothing is saved
    assert m.kv_bytes_per_token(context_tokens=8192) == pytest.approx(per_layer * (21 + 21 * 0.5))


def test_phi3_longrope_fields_are_kept_and_checked():
    m = load_model("phi-3.5-mini")
    scaling = dict(m.rope_scaling)
    assert scaling["rope_type"] == "longrope" and scaling["original_max_position_embeddings"] == 4096
    assert len(scaling["long_factor"]) == m.head_dim // 2 == 48
    cfg = preset_config("phi-3.5-mini")
    cfg["rope_scaling"] = {**cfg["rope_scaling"], "long_factor": [1.0] * 10}
    with pytest.raises(ConfigError, match="long_factor must list head_dim / 2 = 48"):
        spec_from_config(cfg, "bad")


def test_phi3_is_full_attention_with_fused_projections():
    """Phi-3's checkpoint fuses qkv_proj and gate_up_proj: the same GEMM shapes as the op graph already uses."""
    m = load_model("phi-3-medium-4k")
    assert m.num_sliding_layers == 0 and m.num_kv_heads == 10 and not m.tie_word_embeddings
    assert m.attention_params() == 5120 * (5120 + 2 * 1280) + 5120 * 5120


def test_bad_softcap_is_a_clear_error():
    cfg = dict(preset_config("gemma-2-9b"), attn_logit_softcapping=-1)
    with pytest.raises(ConfigError, match="attn_logit_softcapping"):
        spec_from_config(cfg, "bad")


def test_lpu_refuses_gemma_with_a_clear_message():
    from twinfer.perf import make_step_cost

    with pytest.raises(ConfigError, match="virtual LPU does not model"):
        make_step_cost(load_model("gemma-2-9b"), "groq-tsp-v1")
    assert math.isfinite(make_step_cost(load_model("phi-3-mini-4k"), "groq-tsp-v1").resources().kv_capacity_tokens)
