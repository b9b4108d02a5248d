"""Numpy definitions of the mixture-of-experts ops: the router and a chip's routed experts.

Routers follow Hugging Face transformers 5: Mixtral's ``MixtralTopKRouter``
(softmax over the router logits in fp32, top-k, renormalise the k weights)
and DeepSeek-V3's ``DeepseekV3TopkRouter`` (sigmoid scores; experts chosen
by score + correction bias, within the ``topk_group`` groups whose two best
scores sum highest; weights are the uncorrected scores, renormalised when
``norm_topk_prob``, times ``routed_scaling_factor``). Both return a dense
``[tokens, E]`` matrix of combine weights, zero for experts not picked.
"""

from __future__ import annotations

import numpy as np

from twinfer.errors import ConfigError
from twinfer.lpu import kernels as K


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices [T, k] of the k largest entries per row (the lower index first among ties)."""
    return np.argsort(-scores, axis=-1, kind="stable")[:, :k]


def route(logits: np.ndarray, *, top_k: int, scoring: str, bias: np.ndarray | None = None, n_group: int = 1,
          topk_group: int = 1, norm_topk_prob: bool = True, routed_scaling_factor: float = 1.0) -> np.ndarray:
    """Combine weights [T, E] from router logits [T, E] (see the module docstring)."""
    logits = np.asarray(logits, dtype=np.float32)
    t, e = logits.shape
    if scoring == "softmax":
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        scores = z / z.sum(axis=-1, keepdims=True)
        choice = scores
    elif scoring == "sigmoid":
        scores = (np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))).astype(np.float32)
        choice = scores + (bias.astype(np.float32) if bias is not None else np.float32(0.0))
        if n_group > 1:
            grouped = choice.reshape(t, n_group, e // n_group)
            group_scores = np.sort(grouped, axis=-1)[..., -2:].sum(axis=-1)  # [T, n_group]
            keep = np.zeros((t, n_group), dtype=bool)
            np.put_along_axis(keep, _top(group_scores, topk_group), True, axis=-1)
            choice = np.where(np.repeat(keep, e // n_group, axis=-1), choice, np.float32(-np.inf))
    else:
        raise ConfigError(f"router scoring {scoring!r} is not supported; use softmax or sigmoid")
    idx = _top(choice, top_k)
    picked = np.take_along_axis(scores, idx, axis=-1)
    if norm_topk_prob:
        picked = picked / (picked.sum(axis=-1, keepdims=True) + (np.float32(1e-20) if scoring == "sigmoid" else 0))
    picked = (picked * np.float32(routed_scaling_factor)).astype(np.float32)
    out = np.zeros((t, e), dtype=np.float32)
    np.put_along_axis(out, idx, picked, axis=-1)
    return out


def experts(x: np.ndarray, weights: np.ndarray, shards: list[tuple[int, K.QuantWeight, K.QuantWeight, K.QuantWeight]]
            ) -> np.ndarray:
    """Sum over (expert e, gate, up, down shards) of ``weights[:, e] * down(silu(gate x) * up x)``.

    Only the token rows routed to an expert run through it (as HF does);
    the sum runs in the order the shards are given.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.zeros((x.shape[0], shards[0][3].shape[0] if shards else x.shape[1]), dtype=np.float32)
    for e, gate, up, down in shards:
        rows = np.nonzero(weights[:, e])[0]
        if rows.size == 0:
            continue
        xe = x[rows]
        y = K.matmul(K.silu_mul(K.matmul(xe, gate), K.matmul(xe, up)), down)
        out[rows] += y * weights[rows, e][:, None]
    return out
