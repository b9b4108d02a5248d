"""Executor handlers of the mixture-of-experts and latent-attention ops (see :mod:`twinfer.lpu.executor`).

``router`` and ``moe_experts`` run numerically with :mod:`twinfer.lpu.moe_kernels`.
``mla_attention`` (DeepSeek's multi-head latent attention) is compiled and
costed by the cycle model but not executed: numeric MLA is left to issue 12
(the 2026 AI factory), so running it raises a ConfigError saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinfer.errors import ConfigError
from twinfer.lpu import moe_kernels as MK
from twinfer.lpu.ir import weight_key

#: The message every refusal to execute MLA carries.
MLA_NOT_EXECUTED = (
    "DeepSeek multi-head latent attention (MLA) is compiled and costed on the LPU but the numpy executor "
    "does not run it yet; numeric MLA is planned with issue 12 (the 2026 AI factory). Use `twinfer compile` "
    "for its latency, or run a grouped-query model (llama, mistral, qwen2, mixtral)"
)


def weight_keys(op: str, attrs: dict[str, Any]) -> list[str]:
    """Placement names of the weight shards a router or moe_experts instruction reads."""
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
    from twinfer.lpu import kernels as K

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
    raise ConfigError(MLA_NOT_EXECUTED)


MOE_HANDLERS: dict[str, Callable[..., Any]] = {
    "router": _op_router,
    "moe_experts": _op_moe_experts,
    "mla_attention": _op_mla_attention,
}
