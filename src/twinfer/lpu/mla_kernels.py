"""Numpy definition of DeepSeek's multi-head latent attention (MLA) for one shard of heads.

Follows Hugging Face transformers 5 ``DeepseekV3Attention``: the cache holds,
per token, the normalised KV latent (``kv_lora_rank`` values) and the shared
rotary key (``qk_rope_head_dim`` values, rotated); ``kv_b_proj`` expands the
latent into each head's no-rope key and value; queries are ``[no-rope | rope]``
per head; rotary pairs are interleaved ``(x0, x1), (x2, x3)...`` when
``rope_interleave`` (DeepSeek's layout) or HF's rotate-half otherwise.
The result equals the absorbed form the cycle model costs; this one is
simply the easiest to check. Shapes: B sequences, T new tokens, S cached.
"""

from __future__ import annotations

import numpy as np

from twinfer.lpu import kernels as K


def rope_interleaved(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """Rotate x [T, n, D] by position with interleaved pairs (HF ``apply_rotary_pos_emb_interleave``)."""
    freqs = np.asarray(positions, np.float32)[:, None] * inv_freq[None, :]  # [T, D/2]
    cos, sin = np.cos(freqs)[:, None, :], np.sin(freqs)[:, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(np.float32)


def rotate(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray, interleave: bool) -> np.ndarray:
    """Rotary embedding of x [T, n, D] in DeepSeek's interleaved or HF's rotate-half layout."""
    if interleave:
        return rope_interleaved(x, positions, inv_freq)
    t, n, d = x.shape
    return K.rope(x.reshape(t, n * d), positions, n, d, inv_freq).reshape(t, n, d)


def mla_inputs(q: np.ndarray, kva: np.ndarray, norm: np.ndarray, *, eps: float, heads: int, kv_lora_rank: int,
               nope: int, rope: int, positions: np.ndarray, inv_freq: np.ndarray, interleave: bool,
               attention_factor: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries [T, heads, nope+rope] (rope part rotated), the normalised latent [T, kv_lora_rank] and the
    rotated shared key [T, rope], from q [T, heads*(nope+rope)] and kv_a's output [T, kv_lora_rank + rope].
    ``attention_factor`` scales the rotated parts (YaRN's cos/sin scaling)."""
    f = np.float32(attention_factor)
    latent = K.rmsnorm(kva[:, :kv_lora_rank], norm, eps)
    k_rot = rotate(kva[:, kv_lora_rank:].reshape(-1, 1, rope), positions, inv_freq, interleave).reshape(-1, rope) * f
    qh = q.reshape(-1, heads, nope + rope)
    qh = np.concatenate([qh[..., :nope], rotate(qh[..., nope:], positions, inv_freq, interleave) * f], axis=-1)
    return qh, latent, k_rot.astype(np.float32)


def mla_attention(q: np.ndarray, latent: np.ndarray, k_rot: np.ndarray, kv_b: K.QuantWeight, *, heads: int,
                  nope: int, v_dim: int, scale: float, past_len: int) -> np.ndarray:
    """Causal MLA of new queries over the cache.

    q: [B, T, heads, nope + rope] (rope part already rotated); latent: [B, S, kv_lora_rank];
    k_rot: [B, S, rope] (rotated); kv_b: this shard's rows of kv_b_proj, [heads*(nope+v), kv_lora_rank].
    Returns [B, T, heads*v_dim].
    """
    b, t = q.shape[:2]
    s = latent.shape[1]
    kv = K.matmul(latent.reshape(b * s, -1), kv_b).reshape(b, s, heads, nope + v_dim)
    k_nope, v = kv[..., :nope], kv[..., nope:]
    k = np.concatenate([k_nope, np.broadcast_to(k_rot[:, :, None, :], (b, s, heads, k_rot.shape[-1]))], axis=-1)
    scores = np.einsum("bthd,bshd->bhts", q, k).astype(np.float32) * np.float32(scale)
    mask = np.arange(s)[None, :] > (past_len + np.arange(t))[:, None]
    scores = np.where(mask, np.float32(-np.inf), scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    out = np.einsum("bhts,bshd->bthd", p.astype(np.float32), v)
    return out.reshape(b, t, heads * v_dim).astype(np.float32)
