"""A plain reference forward of a Llama-family, Mixtral or DeepSeek-V3 model from its weights, with the LPU kernels.

:class:`ReferenceModel` computes the model straight from the weights with the
op definitions of :mod:`twinfer.lpu.kernels`, no compiler involved: it is the
yardstick the program executor is checked against, next to Hugging Face
transformers in the tests. :func:`greedy_generate` drives any step function
(reference or executor) through a greedy generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twinfer.lpu import kernels as K
from twinfer.lpu import mla_kernels as ML
from twinfer.lpu import moe_kernels as MK
from twinfer.lpu.passes.lower_moe import mla_softmax_scale, moe_names
from twinfer.lpu.weights import LM_HEAD_NAME, WeightStore
from twinfer.models.spec import ModelSpec


def _scaling_dict(value: Any) -> dict[str, Any] | None:
    """rope_scaling given as a dict, a tuple of (key, value) pairs, () or None -> dict or None."""
    if not value:
        return None
    data = dict(value)
    kind = data.get("rope_type") or data.get("type") or "default"
    return None if kind == "default" else data


@dataclass
class KVCache:
    """Keys and values per attention shard: key -> (k, v), each [batch, kv_heads, tokens, head_dim]."""

    entries: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def length(self, key: tuple[Any, ...]) -> int:
        """Tokens cached under ``key`` (0 when none)."""
        entry = self.entries.get(key)
        return 0 if entry is None else entry[0].shape[2]

    def append(
        self, key: tuple[Any, ...], k: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Append new k, v [B, K, T, D] and return the whole cached k, v."""
        if key in self.entries:
            k = np.concatenate([self.entries[key][0], k], axis=2)
            v = np.concatenate([self.entries[key][1], v], axis=2)
        self.entries[key] = (k, v)
        return k, v


def _heads_first(x: np.ndarray, batch: int, heads: int, head_dim: int) -> np.ndarray:
    """[B*T, heads*D] -> [B, heads, T, D]."""
    return x.reshape(batch, -1, heads, head_dim).transpose(0, 2, 1, 3)


class _InvFreqCache:
    """Rotary inverse frequencies per (head_dim, theta, scaling), computed once."""

    def __init__(self) -> None:
        self._table: dict[tuple[Any, ...], np.ndarray] = {}

    def get(self, head_dim: int, theta: float, scaling: dict[str, Any] | None) -> np.ndarray:
        key = (head_dim, theta, tuple(sorted((scaling or {}).items())))
        if key not in self._table:
            self._table[key] = K.rope_inv_freq(head_dim, theta, scaling)
        return self._table[key]


# ---- reference forward ----------------------------------------------------------------
class ReferenceModel:
    """A Llama/Mistral/Qwen2/Mixtral/DeepSeek-V3 forward built directly from kernels and a WeightStore.

    Matmul weights (LM head included) are stored in ``dtype``; the embedding
    table in ``embed_dtype`` (default: same); norms and biases in fp32. The
    KV cache persists across calls: call :meth:`forward` with the prompt,
    then with one new token per sequence at a time.
    """

    def __init__(
        self,
        spec: ModelSpec,
        store: WeightStore,
        dtype: str = "bf16",
        embed_dtype: str | None = None,
    ):
        self.spec = spec
        self.store = store
        self.dtype = dtype
        self.embed_dtype = embed_dtype or dtype
        self.cache = KVCache()
        self._widened: dict[tuple[str, str], K.QuantWeight] = {}
        scaling = _scaling_dict(spec.rope_scaling)
        self.inv_freq = K.rope_inv_freq(spec.head_dim, spec.rope_theta, scaling)

    def _matrix(self, name: str, dtype: str) -> K.QuantWeight:
        key = (name, dtype)
        if key not in self._widened:
            self._widened[key] = self.store.matrix(name, dtype).widened()
        return self._widened[key]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        bias = self.store.vector(f"{name}.bias") if self.store.has(f"{name}.bias") else None
        return K.matmul(x, self._matrix(f"{name}.weight", self.dtype), bias)

    def forward(self, token_ids: np.ndarray) -> np.ndarray:
        """Logits [B, T, vocab] for new tokens [B, T], attending over the cache."""
        s = self.spec
        ids = np.asarray(token_ids, dtype=np.int64)
        b, t = ids.shape
        past = self.cache.length(("ref", 0))
        positions = np.tile(past + np.arange(t), b)  # [B*T], sequence-major rows
        h = K.embed(ids.reshape(-1), self._matrix("model.embed_tokens.weight", self.embed_dtype))
        for layer in range(s.num_layers):
            p = f"model.layers.{layer}"
            x = K.rmsnorm(h, self.store.vector(f"{p}.input_layernorm.weight"), s.rms_norm_eps)
            if s.mla is not None:
                h = K.add(h, self._mla(x, layer, b, t, past, positions))
            else:
                h = K.add(h, self._gqa(x, layer, b, t, past, positions))
            x = K.rmsnorm(
                h, self.store.vector(f"{p}.post_attention_layernorm.weight"), s.rms_norm_eps
            )
            if s.moe is not None and layer >= s.moe.first_dense_layers:
                h = K.add(h, self._moe(x, layer))
                continue
            act = K.silu_mul(
                self._linear(x, f"{p}.mlp.gate_proj"), self._linear(x, f"{p}.mlp.up_proj")
            )
            h = K.add(h, self._linear(act, f"{p}.mlp.down_proj"))
        h = K.rmsnorm(h, self.store.vector("model.norm.weight"), s.rms_norm_eps)
        logits = K.matmul(h, self._matrix(LM_HEAD_NAME, self.dtype))
        return logits.reshape(b, t, -1)

    def _gqa(self, x: np.ndarray, layer: int, b: int, t: int, past: int, positions: np.ndarray) -> np.ndarray:
        """Grouped-query attention of layer ``layer`` through o_proj: [B*T, hidden]."""
        s, p = self.spec, f"model.layers.{layer}"
        q = K.rope(
            self._linear(x, f"{p}.self_attn.q_proj"),
            positions,
            s.num_attention_heads,
            s.head_dim,
            self.inv_freq,
        )
        k = K.rope(
            self._linear(x, f"{p}.self_attn.k_proj"),
            positions,
            s.num_kv_heads,
            s.head_dim,
            self.inv_freq,
        )
        factor = np.float32(K.rope_attention_factor(_scaling_dict(s.rope_scaling)))  # YaRN scales cos/sin
        q, k = q * factor, k * factor
        v = self._linear(x, f"{p}.self_attn.v_proj")
        k_all, v_all = self.cache.append(
            ("ref", layer),
            _heads_first(k, b, s.num_kv_heads, s.head_dim),
            _heads_first(v, b, s.num_kv_heads, s.head_dim),
        )
        a = K.attention(
            q.reshape(b, t, -1), k_all, v_all,
            heads=s.num_attention_heads, kv_heads=s.num_kv_heads, head_dim=s.head_dim, past_len=past,
        )  # fmt: skip
        return self._linear(a.reshape(b * t, -1), f"{p}.self_attn.o_proj")

    def _mla(self, x: np.ndarray, layer: int, b: int, t: int, past: int, positions: np.ndarray) -> np.ndarray:
        """DeepSeek latent attention of layer ``layer`` through o_proj: [B*T, hidden]."""
        s, m, p = self.spec, self.spec.mla, f"model.layers.{layer}.self_attn"
        assert m is not None
        if m.q_lora_rank:
            qa = K.rmsnorm(self._linear(x, f"{p}.q_a_proj"), self.store.vector(f"{p}.q_a_layernorm.weight"),
                           s.rms_norm_eps)
            q = self._linear(qa, f"{p}.q_b_proj")
        else:
            q = self._linear(x, f"{p}.q_proj")
        scaling = _scaling_dict(s.rope_scaling)
        inv = K.rope_inv_freq(m.qk_rope_head_dim, s.rope_theta, scaling)
        heads, nope = s.num_attention_heads, m.qk_nope_head_dim
        qh, latent, k_rot = ML.mla_inputs(
            q, self._linear(x, f"{p}.kv_a_proj_with_mqa"), self.store.vector(f"{p}.kv_a_layernorm.weight"),
            eps=s.rms_norm_eps, heads=heads, kv_lora_rank=m.kv_lora_rank, nope=nope, rope=m.qk_rope_head_dim,
            positions=positions, inv_freq=inv, interleave=m.rope_interleave,
            attention_factor=K.rope_attention_factor(scaling))
        lat_all, rot_all = self.cache.append(("ref", layer), latent.reshape(b, 1, t, -1), k_rot.reshape(b, 1, t, -1))
        a = ML.mla_attention(qh.reshape(b, t, heads, -1), lat_all[:, 0], rot_all[:, 0],
                             self._matrix(f"{p}.kv_b_proj.weight", self.dtype), heads=heads, nope=nope,
                             v_dim=m.v_head_dim, scale=mla_softmax_scale(s), past_len=past)
        return self._linear(a.reshape(b * t, -1), f"{p}.o_proj")

    def _moe(self, x: np.ndarray, layer: int) -> np.ndarray:
        """Router, routed experts and shared experts of MoE layer ``layer``: [B*T, hidden]."""
        moe, names = self.spec.moe, moe_names(self.spec, layer)
        assert moe is not None
        bias = self.store.vector(names.bias) if names.bias else None
        weights = MK.route(K.matmul(x, self._matrix(names.gate, self.dtype)), top_k=moe.experts_per_token,
                           scoring=moe.scoring, bias=bias, n_group=moe.n_group, topk_group=moe.topk_group,
                           norm_topk_prob=moe.norm_topk_prob, routed_scaling_factor=moe.routed_scaling_factor)
        gate, up, down = names.experts
        shards = [(e, self._matrix(gate.format(e=e), self.dtype), self._matrix(up.format(e=e), self.dtype),
                   self._matrix(down.format(e=e), self.dtype)) for e in range(moe.num_experts)]
        out = MK.experts(x, weights, shards)
        if names.shared:
            sg, su, sd = (self._matrix(n, self.dtype) for n in names.shared)
            out = K.add(out, K.matmul(K.silu_mul(K.matmul(x, sg), K.matmul(x, su)), sd))
        return out


# ---- generation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Generation:
    """Greedy tokens [B, N] and the logits [B, vocab] that chose each of them."""

    tokens: np.ndarray
    logits: tuple[np.ndarray, ...]


def greedy_generate(
    step: Callable[[np.ndarray], np.ndarray], prompt: np.ndarray, max_new_tokens: int
) -> Generation:
    """Greedy decoding: ``step(ids [B, T]) -> last-row logits [B, vocab]`` is called on the prompt, then per token."""
    ids = np.asarray(prompt, dtype=np.int64)
    tokens, logits = [], []
    for i in range(max_new_tokens):
        last = step(ids)
        nxt = K.argmax(last)
        tokens.append(nxt)
        logits.append(last)
        if i + 1 < max_new_tokens:
            ids = nxt[:, None]
    b = ids.shape[0]
    out = np.stack(tokens, axis=1) if tokens else np.zeros((b, 0), dtype=np.int64)
    return Generation(tokens=out, logits=tuple(logits))
