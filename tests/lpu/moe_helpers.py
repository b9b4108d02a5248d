"""Factories for the MoE tests: a tiny random Hugging Face Mixtral saved to disk, tiny MoE/MLA specs.

torch and transformers are imported inside the functions, so a machine
without them skips those tests instead of failing at collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from twinfer.models.spec import MlaShape, ModelSpec, MoeShape


def make_tiny_mixtral(folder: Path, *, layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2,
                      intermediate: int = 96, experts: int = 4, top_k: int = 2, vocab: int = 128,
                      seed: int = 0) -> Any:
    """Build a random ``MixtralForCausalLM`` with bf16-valued weights, save it as safetensors, return it.

    ``initializer_range=0.3`` (as for the tiny Llamas) keeps greedy decoding
    from collapsing; norm gains get noise so they are tested too.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.MixtralConfig(
        hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
        num_local_experts=experts, num_experts_per_tok=top_k, max_position_embeddings=256,
        initializer_range=0.3, rms_norm_eps=1e-6, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )  # fmt: skip
    model = transformers.MixtralForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1 and p.shape[0] == hidden:
                p.add_(torch.randn_like(p) * 0.2)
            p.copy_(p.to(torch.bfloat16).float())
    model.save_pretrained(folder, safe_serialization=True)
    return model


def tiny_moe_spec(*, experts: int = 8, top_k: int = 2, shared: int = 0, mla: bool = False,
                  first_dense: int = 0, layers: int = 2) -> ModelSpec:
    """A small Mixtral-shaped (or, with ``mla``/``shared``, DeepSeek-shaped) spec for compiler tests."""
    moe = MoeShape(num_experts=experts, experts_per_token=top_k, expert_intermediate_size=96,
                   num_shared_experts=shared, first_dense_layers=first_dense,
                   scoring="sigmoid" if mla else "softmax", n_group=2 if mla else 1, topk_group=1,
                   routed_scaling_factor=2.5 if mla else 1.0)
    shape = MlaShape(q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
    return ModelSpec(
        name="tiny-deepseek" if mla else "tiny-mixtral", architecture="deepseek_v3" if mla else "mixtral",
        hidden_size=64, num_layers=layers, num_attention_heads=4, num_kv_heads=4 if mla else 2,
        head_dim=24 if mla else 16, intermediate_size=128, vocab_size=128, max_position_embeddings=256,
        attention="mla" if mla else "gqa", mla=shape if mla else None, moe=moe,
    )  # fmt: skip


def make_tiny_deepseek_v3(folder: Path, *, layers: int = 3, seed: int = 0, rope_interleave: bool = True,
                          rope_parameters: dict[str, Any] | None = None) -> Any:
    """A random ``DeepseekV3ForCausalLM`` (MLA with q LoRA, 1 dense + MoE layers with a shared expert,
    sigmoid group-limited routing), bf16-valued weights and a random score-correction bias, saved to disk."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.DeepseekV3Config(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=128, n_routed_experts=8, num_experts_per_tok=2,
        n_group=2, topk_group=1, n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=48, kv_lora_rank=32,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, max_position_embeddings=256,
        routed_scaling_factor=2.5, initializer_range=0.3, rms_norm_eps=1e-6, rope_interleave=rope_interleave,
        rope_parameters=rope_parameters or {"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=False,
    )  # fmt: skip
    model = transformers.DeepseekV3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.add_(torch.randn_like(p) * 0.2)
            p.copy_(p.to(torch.bfloat16).float())
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_((torch.randn_like(buf) * 0.1).to(torch.bfloat16).float())
    model.save_pretrained(folder, safe_serialization=True)
    return model
