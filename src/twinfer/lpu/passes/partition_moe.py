"""Partition rules for mixture-of-experts FFNs and DeepSeek's latent attention (see lpu.experts for placement).

MLA: the low-rank ``q_a``/``kv_a`` projections (and the q norm) run replicated
on every chip of the stage; ``q_b``, the latent attention (with its slice of
``kv_b``) and ``o`` are split by heads, ``o``'s partial sums all-reduced as for
dense attention; every chip caches the whole latent (it is shared by all heads).

MoE: the stage's chips hold the normalised activations ``n2`` whole. Expert
chip ``j`` of the layer's group receives ``n2`` from stage chip ``j mod tp``
(dispatch), runs the router and its experts, and sends its weighted partial
sum back to that chip (combine); each stage chip adds what it received
(plus its column shard of the shared experts) and the stage all-reduces it.
A dispatch or combine between chips of different nodes is a collective that
leaves the node and pays ``cross_node_sync_cycles`` [U], as the exchange of
a hierarchical all-reduce does.
"""

from __future__ import annotations

from typing import Any, Protocol

from twinfer.lpu.experts import expert_shards
from twinfer.lpu.ir import Instr
from twinfer.lpu.plan import MoePlan, Plan, split_bounds
from twinfer.models.spec import ModelSpec


class _Partitioner(Protocol):
    """What these rules use of :class:`twinfer.lpu.passes.partition._Partitioner`."""

    model: ModelSpec
    plan: Plan
    system: Any  # the System (hops, nodes)
    e: Any  # the Emitter
    holders: dict[str, list[int]]
    pending: dict[int, Instr]

    def transfer(self, src: int, dst: int, tensor: str, out: str, shape: tuple[int, int], **extra: Any) -> None: ...

    def all_reduce(self, group: tuple[int, ...], part: str, name: str, rows: int, width: int) -> None: ...

    def _emit_on(self, ins: Instr, chip: int, outputs: tuple[str, ...] | None = None, **attrs: object) -> None: ...

#: Roles this module partitions.
MOE_MLA_ROLES = ("mla_q_a", "mla_kv_a", "mla_q_norm", "mla_q_b", "mla_attention", "mla_o", "router", "experts",
                 "shared_gate", "shared_up", "shared_silu", "shared_down", "moe_combine")


def rewrite_moe_mla(p: _Partitioner, ins: Instr, group: tuple[int, ...], rows: int, width: int) -> None:
    """Emit the partitioned form of one MoE or MLA instruction over the stage ``group``."""
    m, role, tp = p.model, ins.attr("role"), len(group)
    h = m.hidden_size
    if role in ("mla_q_a", "mla_kv_a", "mla_q_norm"):
        for c in group:
            p._emit_on(ins, c)
        return
    if role in ("mla_q_b", "mla_attention", "mla_o"):
        mla = m.mla
        assert mla is not None
        nh = m.num_attention_heads // tp
        for i, c in enumerate(group):
            if role == "mla_q_b":
                qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
                p._emit_on(ins, c, rows=(i * nh * qk, (i + 1) * nh * qk), shape=(rows, nh * qk))
            elif role == "mla_attention":
                kvb = mla.qk_nope_head_dim + mla.v_head_dim
                p._emit_on(ins, c, heads=nh, rows=(i * nh * kvb, (i + 1) * nh * kvb), shape=(rows, nh * mla.v_head_dim))
            else:
                cols = (i * nh * mla.v_head_dim, (i + 1) * nh * mla.v_head_dim)
                p._emit_on(ins, c, cols=cols, outputs=(ins.outputs[0] + ".part",) if tp > 1 else None)
        if role == "mla_o":
            _reduce(p, group, ins.outputs[0], rows, h)
        return
    if role == "router":
        p.pending[ins.attr("layer")] = ins  # emitted on each expert chip by the "experts" rule
        return
    if role == "experts":
        _experts(p, ins, group, rows)
        return
    if role in ("shared_gate", "shared_up", "shared_silu"):
        for i, c in enumerate(group):
            a, b = split_bounds(width, tp, i)
            if role == "shared_silu":
                p._emit_on(ins, c, shape=(rows, b - a))
            else:
                p._emit_on(ins, c, shape=(rows, b - a), rows=(a, b))
        return
    if role == "shared_down":
        for i, c in enumerate(group):
            p._emit_on(ins, c, cols=split_bounds(ins.attr("inter"), tp, i),
                       outputs=(ins.outputs[0] + ".part",) if tp > 1 else None)
        return
    if role == "moe_combine":
        sfx = ".part" if tp > 1 else ""
        for c in group:
            p.e.emit("add", c, "VXM", tuple(t + sfx for t in ins.inputs), (ins.outputs[0] + sfx,), **dict(ins.attrs))
        _reduce(p, group, ins.outputs[0], rows, h)
        return
    raise ValueError(f"partition: no MoE/MLA rule for role {role!r}")


def _reduce(p: _Partitioner, group: tuple[int, ...], out: str, rows: int, width: int) -> None:
    """All-reduce the stage's ``out.part`` partial sums into ``out`` (nothing to do on one chip)."""
    if len(group) > 1:
        p.all_reduce(group, out + ".part", out, rows, width)
    else:
        p.holders[out] = [group[0]]


def _experts(p: _Partitioner, ins: Instr, group: tuple[int, ...], rows: int) -> None:
    """Dispatch ``n2`` to the expert chips, route and run the experts there, combine on the stage."""
    m, tp = p.model, len(group)
    moe = m.moe
    assert moe is not None
    layer, h = ins.attr("layer"), m.hidden_size
    x, _ = ins.inputs
    router = p.pending.pop(layer)
    if not isinstance(p.plan, MoePlan):
        raise ValueError(f"partition: {m.name} has MoE layers but the plan places no experts (use make_plan)")
    chips = p.plan.expert_group_of_layer(layer).chips
    out, per_chip = ins.outputs[0], len(chips) // tp
    local = out + ".part" if tp > 1 else out
    received: dict[int, list[str]] = {c: [] for c in group}
    n = p.system.chips_per_node
    for j, ec in enumerate(chips):
        src = group[j % tp]
        sync = {"cross_node_sync": True} if src // n != ec // n else {}
        experts, inter = expert_shards(moe.num_experts, len(chips), j, moe.expert_intermediate_size)
        p.transfer(src, ec, x, x, (rows, h), **sync)
        p._emit_on(router, ec, shape=(rows, moe.num_experts))
        part = f"{out}.x{j}"
        p._emit_on(ins, ec, experts=experts, inter=inter, outputs=(part,))
        name = local if per_chip == 1 else part
        p.transfer(ec, src, part, name, (rows, h), **sync)
        received[src].append(name)
    if per_chip > 1:
        for c in group:
            acc = received[c][0]
            for k, part in enumerate(received[c][1:], start=1):
                nxt = local if k == per_chip - 1 else f"{out}.acc{k}"
                p.e.emit("add", c, "VXM", (acc, part), (nxt,), shape=(rows, h), role="combine",
                         block=ins.attr("block"))
                acc = nxt
    if moe.num_shared_experts == 0:
        _reduce(p, group, out, rows, h)
