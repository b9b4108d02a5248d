"""Lowering of the non-Llama parts of a layer: mixture-of-experts FFNs and DeepSeek's latent attention.

Like :mod:`twinfer.lpu.passes.lower`, everything is emitted on one logical
chip with a ``role`` the partition pass splits by. Weight names follow the
Hugging Face checkpoints: Mixtral's ``block_sparse_moe.gate`` and
``experts.{e}.w1/w3/w2`` (gate, up, down); DeepSeek-V3's ``mlp.gate`` (+
``e_score_correction_bias``), ``mlp.experts.{e}.gate_proj/up_proj/down_proj``
and ``mlp.shared_experts.*`` (the shared experts fused into one FFN of width
``n_shared x moe_intermediate_size``, as the checkpoint stores them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from twinfer.lpu.ir import Instr
from twinfer.models.spec import ModelSpec


class Emitter(Protocol):
    """What the lowering needs of :class:`twinfer.lpu.passes.lower.Emitter`."""

    def emit(self, op: str, chip: int, unit: str, inputs: tuple[str, ...], outputs: tuple[str, ...],
             cycles: int = -1, **attrs: Any) -> Instr: ...


@dataclass(frozen=True)
class MoeNames:
    """HF tensor names of one MoE layer: router, its bias, experts (``{e}`` = expert id), shared experts."""

    gate: str
    bias: str | None  # DeepSeek-V3's e_score_correction_bias
    experts: tuple[str, str, str]  # gate, up, down projections
    shared: tuple[str, str, str] | None  # DeepSeek's shared experts (gate, up, down), None for Mixtral


def moe_names(model: ModelSpec, li: int) -> MoeNames:
    """The tensor names of layer ``li``'s MoE block in a Mixtral or DeepSeek-V3 checkpoint."""
    p = f"model.layers.{li}."
    if model.architecture == "mixtral":
        base = p + "block_sparse_moe."
        w1, w3, w2 = (base + f"experts.{{e}}.{w}.weight" for w in ("w1", "w3", "w2"))
        return MoeNames(gate=base + "gate.weight", bias=None, experts=(w1, w3, w2), shared=None)
    base = p + "mlp."
    g, u, d = (base + f"experts.{{e}}.{w}_proj.weight" for w in ("gate", "up", "down"))
    sg, su, sd = (base + f"shared_experts.{w}_proj.weight" for w in ("gate", "up", "down"))
    return MoeNames(gate=base + "gate.weight", bias=base + "gate.e_score_correction_bias", experts=(g, u, d),
                    shared=(sg, su, sd))


def lower_moe_ffn(e: Emitter, model: ModelSpec, li: int, sfx: str, tokens: int, wd: str) -> None:
    """Router, routed experts, shared experts (DeepSeek) and their sum: ``L{li}.n2`` -> ``L{li}.d``."""
    moe = model.moe
    assert moe is not None
    h, b = model.hidden_size, li + 1
    names = moe_names(model, li)

    def t(name: str) -> str:
        return f"L{li}.{name}{sfx}"

    e.emit("router", 0, "MXM", (t("n2"),), (t("rw"),), weight=names.gate, bias=names.bias, dtype=wd,
           num_experts=moe.num_experts, top_k=moe.experts_per_token, scoring=moe.scoring, n_group=moe.n_group,
           topk_group=moe.topk_group, norm_topk_prob=moe.norm_topk_prob,
           routed_scaling_factor=moe.routed_scaling_factor, layer=li, hidden=h, role="router", block=b,
           shape=(tokens, moe.num_experts))
    shared = names.shared
    routed_out = t("ed") if shared else t("d")
    e.emit("moe_experts", 0, "MXM", (t("n2"), t("rw")), (routed_out,), layer=li, experts=(0, moe.num_experts),
           inter=(0, moe.expert_intermediate_size), names=names.experts, dtype=wd,
           num_experts=moe.num_experts, top_k=moe.experts_per_token, hidden=h, role="experts", block=b,
           shape=(tokens, h))
    if not shared:
        return
    width = moe.num_shared_experts * moe.expert_intermediate_size
    for role, name, out in (("shared_gate", shared[0], "sg"), ("shared_up", shared[1], "su")):
        e.emit("matmul", 0, "MXM", (t("n2"),), (t(out),), weight=name, rows=(0, width), cols=(0, h), dtype=wd,
               bias=None, role=role, block=b, shape=(tokens, width))
    e.emit("silu_mul", 0, "VXM", (t("sg"), t("su")), (t("ss"),), role="shared_silu", block=b, shape=(tokens, width))
    e.emit("matmul", 0, "MXM", (t("ss"),), (t("sd"),), weight=shared[2], rows=(0, h), cols=(0, width), dtype=wd,
           bias=None, inter=width, role="shared_down", block=b, shape=(tokens, h))
    e.emit("add", 0, "VXM", (t("sd"), t("ed")), (t("d"),), role="moe_combine", block=b, shape=(tokens, h))


def lower_mla_attention(e: Emitter, model: ModelSpec, li: int, sfx: str, tokens: int, pos: int, wd: str) -> None:
    """DeepSeek MLA from ``L{li}.n1`` to ``L{li}.o``: q (LoRA) and compressed KV projections, latent attention, o.

    Costed in the absorbed form (DeepSeek-V2 paper, sec. 2.1.2): the cache holds
    ``kv_lora_rank + qk_rope_head_dim`` values per token and layer.
    """
    m = model.mla
    assert m is not None
    h, nh, b = model.hidden_size, model.num_attention_heads, li + 1
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    p = f"model.layers.{li}.self_attn."

    def t(name: str) -> str:
        return f"L{li}.{name}{sfx}"

    def mm(role: str, src: str, dst: str, name: str, out_f: int, in_f: int) -> None:
        e.emit("matmul", 0, "MXM", (src,), (dst,), weight=p + name + ".weight", rows=(0, out_f), cols=(0, in_f),
               dtype=wd, bias=None, role=role, block=b, shape=(tokens, out_f))

    if m.q_lora_rank:
        mm("mla_q_a", t("n1"), t("qa"), "q_a_proj", m.q_lora_rank, h)
        e.emit("rmsnorm", 0, "VXM", (t("qa"),), (t("qan"),), weight=p + "q_a_layernorm.weight",
               eps=model.rms_norm_eps, role="mla_q_norm", block=b, shape=(tokens, m.q_lora_rank))
        mm("mla_q_b", t("qan"), t("q"), "q_b_proj", nh * qk, m.q_lora_rank)
    else:
        mm("mla_q_b", t("n1"), t("q"), "q_proj", nh * qk, h)
    mm("mla_kv_a", t("n1"), t("kva"), "kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, h)
    e.emit("mla_attention", 0, "MXM", (t("q"), t("kva")), (t("a"),), layer=li, heads=nh,
           kv_lora_rank=m.kv_lora_rank, qk_nope_head_dim=m.qk_nope_head_dim, qk_rope_head_dim=m.qk_rope_head_dim,
           v_head_dim=m.v_head_dim, weight=p + "kv_b_proj.weight", dtype=wd,
           rows=(0, nh * (m.qk_nope_head_dim + m.v_head_dim)), cols=(0, m.kv_lora_rank),
           norm=p + "kv_a_layernorm.weight", eps=model.rms_norm_eps, theta=model.rope_theta, pos_offset=pos,
           rope_scaling=tuple(model.rope_scaling) if model.rope_scaling else None,
           rope_interleave=m.rope_interleave, softmax_scale=mla_softmax_scale(model),
           role="mla_attention", block=b, shape=(tokens, nh * m.v_head_dim))
    mm("mla_o", t("a"), t("o"), "o_proj", h, nh * m.v_head_dim)


def mla_softmax_scale(model: ModelSpec) -> float:
    """qk_head_dim^-0.5, times mscale^2 under YaRN rope scaling with ``mscale_all_dim`` (HF ``yarn_apply_mscale``)."""
    m = model.mla
    assert m is not None
    scale = (m.qk_nope_head_dim + m.qk_rope_head_dim) ** -0.5
    rs = dict(model.rope_scaling)
    kind = rs.get("rope_type") or rs.get("type") or "default"
    all_dim, factor = float(rs.get("mscale_all_dim", 0) or 0), float(rs.get("factor", 1) or 1)  # type: ignore[arg-type]
    if kind != "default" and all_dim and factor > 1:
        mscale = 0.1 * all_dim * math.log(factor) + 1.0
        scale *= mscale * mscale
    return scale
