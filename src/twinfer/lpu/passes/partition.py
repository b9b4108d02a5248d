"""Pass 2, partition: spread the lowered program over the chips of a :class:`~twinfer.lpu.plan.Plan`.

Within a stage of ``tp`` chips, each matmul is split Megatron-style: q, k,
v, gate and up by output rows (heads and FFN width), o and down by input
columns, whose partial sums are all-reduced over the stage's direct links
as a reduce-scatter (``split``, ``send``/``recv``, ``add``) followed by an
all-gather (``send``/``recv``, ``concat``). Norms and residual adds run
replicated on every chip of the stage. Between stages, each chip sends its
1/tp slice of the activations to its counterpart, and the next stage
all-gathers them. The embedding is split by hidden columns, the LM head by
vocabulary rows (gathered on the stage's first chip as ``logits``).
Every emitted instruction is costed by the chip model.
"""

from __future__ import annotations

from typing import Any

from twinfer.lpu.costs import StepInfo, instr_cycles
from twinfer.lpu.ir import Instr, Program
from twinfer.lpu.passes.lower import Emitter
from twinfer.lpu.passes.partition_moe import MOE_MLA_ROLES, rewrite_moe_mla
from twinfer.lpu.plan import Plan, kv_heads_local, split_bounds
from twinfer.lpu.system import System
from twinfer.models.spec import ModelSpec

_ROW_SPLIT = ("q", "k", "v", "gate", "up")
_REPLICATED = ("attn_norm", "mlp_norm", "residual", "final_norm", "last_rows", "chunk")


class _Partitioner:
    """Rewrites one instruction at a time; remembers which chips hold a full copy of each tensor."""

    def __init__(self, model: ModelSpec, plan: Plan, system: System, step: StepInfo) -> None:
        self.model, self.plan, self.system = model, plan, system
        chip = system.chip
        self.e = Emitter(cost=lambda ins: instr_cycles(ins, chip, step))
        self.holders: dict[str, list[int]] = {"token_ids": []}
        self.pending: dict[int, Instr] = {}  # MoE router of a layer, emitted on its expert chips

    # ---- transfers ---------------------------------------------------------
    def transfer(self, src: int, dst: int, tensor: str, out: str, shape: tuple[int, int], **extra: Any) -> None:
        """A scheduled send on ``src`` and its matching recv on ``dst`` (``extra``: attrs of both)."""
        hops = self.system.hops(src, dst)
        snd = self.e.emit("send", src, f"C2C{self.system.port(src, dst)}.tx", (tensor,), (), peer=dst,
                          tensor=tensor, hops=hops, shape=shape, **extra)
        self.e.emit("recv", dst, f"C2C{self.system.port(dst, src)}.rx", (), (out,), peer=src, tensor=tensor,
                    hops=hops, pair=snd.index, shape=shape, **extra)

    def all_gather(self, group: tuple[int, ...], name: str, rows: int, width: int, prefix: str = "") -> None:
        """Chip i holds ``{prefix}{i}`` (its column chunk; prefix defaults to ``name.p``); afterwards every chip holds ``name`` whole."""
        tp = len(group)
        prefix = prefix or f"{name}.p"
        for i, src in enumerate(group):
            a, b = split_bounds(width, tp, i)
            for dst in group:
                if dst != src:
                    self.transfer(src, dst, f"{prefix}{i}", f"{prefix}{i}", (rows, b - a))
        for c in group:
            self.e.emit("concat", c, "SXM_E", tuple(f"{prefix}{i}" for i in range(tp)), (name,), axis=1,
                        shape=(rows, width))
        self.holders[name] = list(group)

    def all_reduce(self, group: tuple[int, ...], part: str, name: str, rows: int, width: int) -> None:
        """Every chip holds a partial sum ``part``; afterwards every chip holds the total ``name``.

        Inside a node: a direct reduce-scatter over the fully connected links, then an
        all-gather. A group wider than a node (whole nodes) reduces hierarchically: a
        reduce-scatter inside each node, an exchange of each chunk between the chips
        holding it in the other nodes (over the global ports), then an all-gather inside
        each node, so no chip talks to more than its node and its counterparts.
        """
        n = self.system.chips_per_node
        if n < 2 or len(group) <= n or len(group) % n:
            self._reduce_scatter(group, part, name, rows, width, out_prefix=f"{name}.p")
            self.all_gather(group, name, rows, width)
            return
        nodes = [group[i:i + n] for i in range(0, len(group), n)]
        for node in nodes:
            self._reduce_scatter(node, part, name, rows, width, out_prefix=f"{name}.ns")
        k = len(nodes)
        for j in range(n):
            a, b = split_bounds(width, n, j)
            holders = [node[j] for node in nodes]
            for i, src in enumerate(holders):
                for dst in holders:
                    if dst != src:
                        self.transfer(src, dst, f"{name}.ns{j}", f"{name}.ns{j}.x{i}", (rows, b - a),
                                      cross_node_sync=True)
            for i, c in enumerate(holders):
                acc = f"{name}.ns{j}"
                others = [o for o in range(k) if o != i]
                for o in others:
                    out = f"{name}.p{j}" if o == others[-1] else f"{name}.xacc{j}.{o}"
                    self.e.emit("add", c, "VXM", (acc, f"{name}.ns{j}.x{o}"), (out,), shape=(rows, b - a))
                    acc = out
        for node in nodes:
            self.all_gather(node, name, rows, width)
        self.holders[name] = list(group)

    def _reduce_scatter(self, group: tuple[int, ...], part: str, name: str, rows: int, width: int,
                        out_prefix: str) -> None:
        """Chip j of ``group`` ends with ``{out_prefix}{j}``: the group's sum of column chunk j of ``part``."""
        tp = len(group)
        for i, c in enumerate(group):
            for j in range(tp):
                a, b = split_bounds(width, tp, j)
                self.e.emit("split", c, "SXM_W", (part,), (f"{name}.rs{j}",), axis=1, start=a, stop=b,
                            shape=(rows, b - a))
            for j, dst in enumerate(group):
                if j != i:
                    a, b = split_bounds(width, tp, j)
                    self.transfer(c, dst, f"{name}.rs{j}", f"{name}.rs{j}.from{i}", (rows, b - a))
        for j, c in enumerate(group):
            a, b = split_bounds(width, tp, j)
            acc = f"{name}.rs{j}"
            for i in range(tp):
                if i != j:
                    out = f"{out_prefix}{j}" if i == max(k for k in range(tp) if k != j) else f"{name}.acc{j}.{i}"
                    self.e.emit("add", c, "VXM", (acc, f"{name}.rs{j}.from{i}"), (out,), shape=(rows, b - a))
                    acc = out

    def ensure(self, tensor: str, group: tuple[int, ...], rows: int, width: int) -> None:
        """Make ``tensor`` (held whole by another group) present whole on every chip of ``group``."""
        have = self.holders.get(tensor)
        if have is None or all(c in have for c in group):
            return
        src_group = tuple(have)
        tp = len(group)
        if len(src_group) == tp and tp > 1:
            # Each source chip sends its 1/tp column slice to its counterpart; the group all-gathers.
            for i, (s, d) in enumerate(zip(src_group, group, strict=True)):
                a, b = split_bounds(width, tp, i)
                self.e.emit("split", s, "SXM_W", (tensor,), (f"{tensor}.xs{i}",), axis=1, start=a, stop=b,
                            shape=(rows, b - a))
                self.transfer(s, d, f"{tensor}.xs{i}", f"{tensor}.xs{i}", (rows, b - a))
            self.all_gather(group, tensor, rows, width, prefix=f"{tensor}.xs")
            return
        for i, d in enumerate(group):
            if d not in have:
                self.transfer(have[i % len(have)], d, tensor, tensor, (rows, width))
        self.holders[tensor] = list(have) + [d for d in group if d not in have]

    # ---- per-role rewriting --------------------------------------------------
    def rewrite(self, ins: Instr) -> None:
        """Emit the partitioned form of one lowered instruction."""
        m = self.model
        role = ins.attr("role")
        stage = self.plan.stage_of_block(ins.attr("block"))
        group, tp = stage.chips, len(stage.chips)
        rows, width = ins.attr("shape")
        base = {k: v for k, v in ins.attrs if k not in ("shape", "rows", "cols", "kv_head_offset")}
        hd, nh = m.head_dim, m.num_attention_heads
        kvl = kv_heads_local(m, tp)
        if role == "embed":
            self.holders["token_ids"] = list(group)
            if tp == 1:
                self._emit_on(ins, group[0], shape=(rows, width), cols=(0, width))
                self.holders[ins.outputs[0]] = [group[0]]
                return
            for i, c in enumerate(group):
                a, b = split_bounds(width, tp, i)
                self.e.emit("embed", c, "MEM", ins.inputs, (f"{ins.outputs[0]}.p{i}",),
                            **{**base, "cols": (a, b), "shape": (rows, b - a)})
            self.all_gather(group, ins.outputs[0], rows, width)
            return
        for t in ins.inputs:
            if t in self.holders:
                self.ensure(t, group, rows if role != "last_rows" else ins.attr("batch") * ins.attr("seq_len"),
                            m.hidden_size)
        if role in _REPLICATED:
            for c in group:
                self._emit_on(ins, c)
            self.holders[ins.outputs[0]] = list(group)
            return
        if role in _ROW_SPLIT:
            for i, c in enumerate(group):
                if role in ("k", "v"):
                    off = i * kvl if m.num_kv_heads >= tp else (i * (nh // tp)) // (nh // m.num_kv_heads)
                    r = (off * hd, (off + kvl) * hd)
                elif role == "q":
                    r = (i * (nh // tp) * hd, (i + 1) * (nh // tp) * hd)
                else:
                    r = split_bounds(width, tp, i)
                self._emit_on(ins, c, rows=r, cols=ins.attr("cols"), shape=(rows, r[1] - r[0]))
            return
        if role in ("rope_q", "rope_k"):
            heads = nh // tp if role == "rope_q" else kvl
            for c in group:
                self._emit_on(ins, c, heads=heads, shape=(rows, heads * hd))
            return
        if role == "attention":
            for i, c in enumerate(group):
                off = i * kvl if m.num_kv_heads >= tp else (i * (nh // tp)) // (nh // m.num_kv_heads)
                self._emit_on(ins, c, heads=nh // tp, kv_heads=kvl, kv_head_offset=off,
                              shape=(rows, nh // tp * hd))
            return
        if role == "silu_mul":
            for i, c in enumerate(group):
                a, b = split_bounds(width, tp, i)
                self._emit_on(ins, c, shape=(rows, b - a))
            return
        if role in ("o", "down"):
            out = ins.outputs[0]
            for i, c in enumerate(group):
                if role == "o":
                    cols = (i * (nh // tp) * hd, (i + 1) * (nh // tp) * hd)
                else:
                    cols = split_bounds(m.intermediate_size, tp, i)
                self._emit_on(ins, c, rows=ins.attr("rows"), cols=cols, shape=(rows, width),
                              outputs=(out + ".part",) if tp > 1 else (out,))
            if tp > 1:
                self.all_reduce(group, out + ".part", out, rows, width)
            else:
                self.holders[out] = [group[0]]
            return
        if role == "lm_head":
            if tp == 1:
                self._emit_on(ins, group[0], shape=(rows, width))
                return
            for i, c in enumerate(group):
                r = split_bounds(width, tp, i)
                self._emit_on(ins, c, rows=r, shape=(rows, r[1] - r[0]), outputs=(f"logits.p{i}",))
            for i, c in enumerate(group[1:], start=1):
                r = split_bounds(width, tp, i)
                self.transfer(c, group[0], f"logits.p{i}", f"logits.p{i}", (rows, r[1] - r[0]))
            self.e.emit("concat", group[0], "SXM_E", tuple(f"logits.p{i}" for i in range(tp)), ("logits",),
                        axis=1, shape=(rows, width))
            return
        if role in MOE_MLA_ROLES:
            rewrite_moe_mla(self, ins, group, rows, width)
            return
        raise ValueError(f"partition: no rule for role {role!r} ({ins.op})")

    def _emit_on(self, ins: Instr, chip: int, outputs: tuple[str, ...] | None = None, **attrs: object) -> None:
        merged = dict(ins.attrs)
        merged.update(attrs)
        self.e.emit(ins.op, chip, ins.unit, ins.inputs, outputs if outputs is not None else ins.outputs, **merged)


def partition(prog: Program, model: ModelSpec, plan: Plan, system: System) -> Program:
    """The multi-chip program of the lowered ``prog`` under ``plan``, every instruction costed."""
    from dataclasses import replace

    step = StepInfo(prog.phase, prog.batch, prog.seq_len, prog.activation_dtype)
    p = _Partitioner(model, plan, system, step)
    for ins in prog.instrs:
        p.rewrite(ins)
    stages = tuple((s.first_block, s.last_block, s.chips[0], len(s.chips), s.bytes_per_chip) for s in plan.stages)
    out = replace(prog, chips=plan.num_chips, instrs=tuple(p.e.instrs), clock_hz=system.chip.spec.clock_hz)
    return out.with_meta(tp=plan.tp, stages=stages, chips_used=plan.chips_used, hardware=system.chip.spec.name)
