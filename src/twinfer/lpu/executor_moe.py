"""Executor handlers of the mixture-of-experts and latent-attention ops (see :mod:`twinfer.lpu.executor`).

``router`` and ``moe_experts`` run with :mod:`twinfer.lpu.moe_kernels`,
``mla_attention`` with :mod:`twinfer.lpu.mla_kernels`; its KV cache entry per
(chip, layer) holds the latent [B, 1, S, kv_lora_rank] and the rotated shared
key [B, 1, S, qk_rope_head_dim] (every chip of a head split keeps its copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from twinfer.lpu import kernels as K
from twinfer.lpu import mla_kernels as ML
from twinfer.lpu import moe_kernels as MK
from twinfer.lpu.ir import weight_key
from twinfer.lpu.reference import _scaling_dict


def weight_keys(op: str, attrs: dict[str, Any]) -> list[str]:
    """Placement names of the weight shards a router, moe_experts or mla_attention instruction reads."""
    if op == "mla_attention":
        return [weight_key(attrs["weight"], tuple(attrs["rows"]), tuple(attrs["cols"]))]
    if op == "router":
        return [weight_key(attrs["weight"], (0, attrs["num_experts"]), (0, attrs["hidden"]))]
    h, inter = attrs["hidden"], tuple(attrs["inter"])
    gate, up, down = attrs["names"]
    keys = []
    for e in range(*attrs["experts"]):
        keys += [weight_key(gate.format(e=e), inter, (0, h)), weight_key(up.format(e=e), inter, (0, h)),
                 weight_key(down.format(e=e), (0, h), inter)]
    return keys


def _op_router(ex: Any, ctx: Any, instr: Any, a: dict[str, Any], args: list[Any]) -> Any:
    e, h = int(a["num_experts"]), int(a["hidden"])
    gate = ex._shard(a["weight"], (0, e), (0, h), a.get("dtype", ctx.program.weight_dtype))
    bias = ex.store.vector(a["bias"]) if a.get("bias") else None
    return MK.route(K.matmul(args[0], gate), top_k=int(a["top_k"]), scoring=a["scoring"], bias=bias,
                    n_group=int(a["n_group"]), topk_group=int(a["topk_group"]),
                    norm_topk_prob=bool(a["norm_topk_prob"]), routed_scaling_factor=float(a["routed_scaling_factor"]))


def _op_moe_experts(ex: Any, ctx: Any, instr: Any, a: dict[str, Any], args: list[Any]) -> Any:
    h, inter = int(a["hidden"]), tuple(a["inter"])
    dtype = a.get("dtype", ctx.program.weight_dtype)
    gate, up, down = a["names"]
    shards = [(e, ex._shard(gate.format(e=e), inter, (0, h), dtype), ex._shard(up.format(e=e), inter, (0, h), dtype),
               ex._shard(down.format(e=e), (0, h), inter, dtype)) for e in range(*a["experts"])]
    return MK.experts(args[0], args[1], shards)


def _op_mla_attention(ex: Any, ctx: Any, instr: Any, a: dict[str, Any], args: list[Any]) -> Any:
    q, kva = args
    b = ctx.program.batch
    heads, kvr, nope = int(a["heads"]), int(a["kv_lora_rank"]), int(a["qk_nope_head_dim"])
    rope, v_dim = int(a["qk_rope_head_dim"]), int(a["v_head_dim"])
    t, past = q.shape[0] // b, ctx.past_len
    positions = np.tile(past + np.arange(t), b)
    scaling = _scaling_dict(a.get("rope_scaling"))
    inv = ex._inv_freq.get(rope, float(a["theta"]), scaling)
    qh, latent, k_rot = ML.mla_inputs(q, kva, ex.store.vector(a["norm"]), eps=float(a["eps"]), heads=heads,
                                      kv_lora_rank=kvr, nope=nope, rope=rope, positions=positions, inv_freq=inv,
                                      interleave=bool(a.get("rope_interleave", True)),
                                      attention_factor=K.rope_attention_factor(scaling))
    key = (instr.chip, int(a["layer"]), "mla", 0)
    lat_all, rot_all = ex.cache.append(key, latent.reshape(b, 1, t, kvr), k_rot.reshape(b, 1, t, rope))
    kv_b = ex._shard(a["weight"], tuple(a["rows"]), tuple(a["cols"]), a.get("dtype", ctx.program.weight_dtype))
    out = ML.mla_attention(qh.reshape(b, t, heads, nope + rope), lat_all[:, 0], rot_all[:, 0], kv_b, heads=heads,
                           nope=nope, v_dim=v_dim, scale=float(a["softmax_scale"]), past_len=past)
    return out.reshape(-1, heads * v_dim)


MOE_HANDLERS: dict[str, Callable[..., Any]] = {
    "router": _op_router,
    "moe_experts": _op_moe_experts,
    "mla_attention": _op_mla_attention,
}
