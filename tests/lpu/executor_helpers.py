"""Factories for the executor tests: tiny random Hugging Face Llama models saved to disk.

Imported by tests/lpu/test_weights.py, test_executor.py and test_run_cli.py;
torch and transformers are imported inside the functions so a machine
without them skips those tests instead of failing at collection.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Llama-3.1-style rope scaling scaled down to a tiny context (HF config keys).
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}


def make_tiny_llama(
    folder: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    vocab: int = 128,
    tie: bool = False,
    seed: int = 0,
    rope_theta: float = 10000.0,
    rope_scaling: dict[str, Any] | None = None,
    save_dtype: str = "float32",
    attention_bias: bool = False,
    family: str = "llama",
    sliding_window: int | None = None,
    max_shard_size: str | None = None,
) -> Any:
    """Build a random ``LlamaForCausalLM``, round its weights to bf16 values, save it, return it.

    ``family`` "qwen2" or "mistral" builds that architecture instead (Qwen2
    always has q/k/v biases; Mistral takes ``sliding_window``). ``max_shard_size``
    (e.g. "40KB") saves sharded files with a ``model.safetensors.index.json``.

    ``initializer_range=0.3`` keeps greedy decoding from collapsing onto one
    token (see shared/reference/tooling-notes.md). Weights are rounded to
    bf16 so a bf16 program holds exactly the model's weights; the returned
    model computes in fp32. ``save_dtype="bfloat16"`` writes bf16 tensors.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    params = {"rope_type": "default", "rope_theta": rope_theta}
    if rope_scaling:
        params = {**rope_scaling, "rope_theta": rope_theta}
    extra: dict[str, Any] = {}
    if family == "llama":
        extra["attention_bias"] = attention_bias
    if family == "mistral":
        extra["sliding_window"] = sliding_window
    config_cls, model_cls = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    }[family]
    cfg = config_cls(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        max_position_embeddings=256,
        initializer_range=0.3,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tie,
        rope_parameters=params,
        **extra,
    )
    model = model_cls(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1 and p.shape[0] == hidden:
                p.add_(torch.randn_like(p) * 0.2)  # norm gains: not all ones, so they are tested
            p.copy_(p.to(torch.bfloat16).float())
    # A copy for bf16: .to() would also round the in-memory rotary buffers of the returned model.
    saved = copy.deepcopy(model).to(torch.bfloat16) if save_dtype == "bfloat16" else model
    shard = {"max_shard_size": max_shard_size} if max_shard_size else {}
    saved.save_pretrained(folder, safe_serialization=True, **shard)
    return model


def hf_greedy(
    model: Any, prompt: list[list[int]], new_tokens: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Greedy tokens [B, new_tokens] and per-step logits [B, vocab] from transformers with its KV cache."""
    torch = pytest.importorskip("torch")
    ids = torch.tensor(prompt)
    logits_steps = []
    tokens = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        step = out.logits[:, -1]
        for _ in range(new_tokens):
            logits_steps.append(step.numpy().copy())
            nxt = step.argmax(-1)
            tokens.append(nxt.numpy().copy())
            out = model(input_ids=nxt[:, None], past_key_values=past, use_cache=True)
            past = out.past_key_values
            step = out.logits[:, -1]
    return np.stack(tokens, axis=1), logits_steps


def greedy_margins(logits_steps: list[np.ndarray]) -> np.ndarray:
    """Gap between the best and second-best logit at every greedy step, [steps, B]."""
    top2 = [np.sort(s, axis=-1)[:, -2:] for s in logits_steps]
    return np.stack([t[:, 1] - t[:, 0] for t in top2])


def tiny_chip(sram_bytes: int):
    """A TSP v1 chip shrunk to ``sram_bytes`` of SRAM (none reserved), so a tiny model must be split."""
    import dataclasses

    from twinfer.hardware import get_hardware
    from twinfer.lpu.chip import make_chip, with_params

    spec = dataclasses.replace(get_hardware("groq-tsp-v1"), sram_bytes=sram_bytes)
    return with_params(make_chip(spec), reserved_sram_bytes=0)
