"""ModelSpec parameter counts and KV sizes against published figures (independent sources)."""

from __future__ import annotations

import json

import pytest

from twinfer.errors import ConfigError, UnknownNameError
from twinfer.models import load_model, preset_names

# (preset, published total parameters, published active parameters or None, source)
PUBLISHED = [
    ("llama-2-7b", 6.74e9, None, "Llama 2 model card: 6.74B"),
    ("llama-2-70b", 68.98e9, None, "Llama 2 model card: 68.98B"),
    ("llama-3-8b", 8.03e9, None, "Meta-Llama-3-8B model card: 8.03B"),
    ("llama-3-70b", 70.6e9, None, "Meta-Llama-3-70B model card: 70.6B"),
    ("llama-3.1-405b", 405.0e9, None, "Llama 3.1 paper: 405B"),
    ("mixtral-8x7b", 46.7e9, 12.9e9, "Mistral AI, Mixtral of experts: 46.7B total, 12.9B active"),
    ("qwen2.5-72b", 72.7e9, None, "Qwen2.5-72B model card: 72.7B"),
    ("deepseek-v3", 671e9, 37e9, "DeepSeek-V3 technical report: 671B total, 37B activated"),
]


@pytest.mark.parametrize("name,total,active,source", PUBLISHED)
def test_parameter_counts_match_published(name: str, total: float, active: float | None, source: str) -> None:
    spec = load_model(name)
    assert spec.param_count() == pytest.approx(total, rel=0.01), source
    if active is None:
        assert spec.active_param_count() == spec.param_count()
    elif name == "deepseek-v3":
        # "37B" is rounded to two figures; the report gives no breakdown. We count both
        # embedding tables (as Mixtral's 12.9B does) and get 37.55B: allow 2%.
        assert spec.active_param_count() == pytest.approx(active, rel=0.02), source
    else:
        assert spec.active_param_count() == pytest.approx(active, rel=0.01), source


@pytest.mark.parametrize(
    "name,kv_bytes",
    [
        # shared/reference/gpu-and-serving.md: 2 x layers x kv_heads x head_dim x bytes
        ("llama-3-70b", 2 * 80 * 8 * 128 * 2),  # 327,680 B = 320 KiB
        ("llama-2-70b", 320 * 1024),
        ("llama-3-8b", 128 * 1024),
        ("llama-2-7b", 512 * 1024),
        ("deepseek-v3", 61 * (512 + 64) * 2),  # MLA latent + rope key, ~68.6 KiB
        ("kimi-k2", 61 * (512 + 64) * 2),  # same MLA shape as DeepSeek-V3: 70,272 B
    ],
)
def test_kv_bytes_per_token_matches_formula(name: str, kv_bytes: int) -> None:
    assert load_model(name).kv_bytes_per_token("bf16") == kv_bytes


def test_kimi_k2_parameters_match_published() -> None:
    """Kimi K2: "1.04 trillion total, 32 billion activated" (Kimi K2 technical report, arXiv 2507.20534).

    Both are rounded; Hugging Face's safetensors count of the FP8 checkpoint is
    1,026.5B (it also counts the ~0.06B FP8 block scales), so our total must be
    within 0.1 % of that and within 2 % of "1.04T". Active: we count both
    embedding tables (as for Mixtral's 12.9B), 2 x 163,840 x 7,168 = 2.35B, so
    allow 3 % on "32B".
    """
    spec = load_model("kimi-k2")
    assert spec.architecture == "deepseek_v3" and spec.moe is not None and spec.mla is not None
    assert (spec.moe.num_experts, spec.moe.experts_per_token, spec.moe.first_dense_layers) == (384, 8, 1)
    assert (spec.num_layers, spec.hidden_size, spec.vocab_size, spec.num_attention_heads) == (61, 7168, 163840, 64)
    assert spec.param_count() == pytest.approx(1026.5e9, rel=0.001)
    assert spec.param_count() == pytest.approx(1.04e12, rel=0.02)
    assert spec.active_param_count() == pytest.approx(32e9, rel=0.03)


def test_kv_bytes_scale_with_dtype() -> None:
    spec = load_model("llama-3-70b")
    assert spec.kv_bytes_per_token("fp8") == spec.kv_bytes_per_token("bf16") / 2


def test_every_preset_loads() -> None:
    names = preset_names()
    for required in ("llama-2-7b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-405b",
                     "mixtral-8x7b", "qwen2.5-72b", "deepseek-v3", "kimi-k2"):
        assert required in names
    for name in names:
        assert load_model(name).num_layers > 0


def test_config_folder_and_file_load(tmp_path) -> None:
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
           "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
           "vocab_size": 100, "max_position_embeddings": 128}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from_dir = load_model(str(tmp_path))
    from_file = load_model(str(tmp_path / "config.json"))
    assert from_dir.hidden_size == from_file.hidden_size == 64
    assert from_dir.head_dim == 16 and from_dir.num_kv_heads == 2


def test_missing_field_is_named(tmp_path) -> None:
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
           "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 128}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="intermediate_size"):
        load_model(str(tmp_path))


def test_unknown_architecture_is_clear(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ConfigError, match="unsupported architecture"):
        load_model(str(tmp_path))


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(UnknownNameError, match="llama-3-70b"):
        load_model("llama-9-1t")


def test_transformers5_rope_parameters_layout(tmp_path) -> None:
    # transformers 5 writes rope settings as one `rope_parameters` object.
    base = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
            "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 128}
    scaling = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64, "rope_type": "llama3"}
    (tmp_path / "config.json").write_text(json.dumps({**base, "rope_parameters": {"rope_theta": 5e5, **scaling}}))
    spec = load_model(str(tmp_path))
    assert spec.rope_theta == 5e5
    assert dict(spec.rope_scaling) == scaling


def test_mtp_layers_come_from_num_nextn_predict_layers():
    # The published configs: DeepSeek-V3 ships one MTP module (technical report sec. 2.2, D = 1); Kimi-K2 writes 0.
    assert load_model("deepseek-v3").mtp_layers == 1
    assert load_model("kimi-k2").mtp_layers == 0
    assert load_model("llama-3-8b").mtp_layers == 0  # no such key in a Llama config


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_a_bad_num_nextn_predict_layers_is_named(bad):
    from twinfer.models.hf_config import spec_from_config
    from twinfer.models.registry import preset_config

    with pytest.raises(ConfigError, match="num_nextn_predict_layers"):
        spec_from_config({**preset_config("deepseek-v3"), "num_nextn_predict_layers": bad}, "x")
