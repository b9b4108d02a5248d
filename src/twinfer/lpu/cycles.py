"""The cycle model's report: latency of a compiled program, where its time goes, what it uses.

A compiled program's latency is its schedule length — exact for the chip
model and deterministic. :func:`critical_path` walks back from the last
instruction to the first through whichever predecessor (an input's producer,
a transfer's send, or the previous op on the same unit) ended exactly when
it started; :func:`attribute` sums that path by category, which is how
per-token time is explained (MXM compute, vector work, C2C serialisation,
C2C hops, fixed issue/pipeline latency).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from twinfer.lpu.chip import Chip
from twinfer.lpu.costs import StepInfo, attention_geometry
from twinfer.lpu.ir import Instr, Program


@dataclass(frozen=True)
class CycleReport:
    """Summary of one compiled step."""

    phase: str
    batch: int
    seq_len: int
    chips_used: int
    cycles: int
    latency_s: float
    sram_bytes_max: int
    sram_bytes_mean: float
    mxm_utilisation: float  # useful MACs / peak MACs of the chips used over the step
    attribution_cycles: tuple[tuple[str, int], ...]  # critical path by category
    pipeline_stages: int
    tp: int
    c2c_hops_on_path: int


def _fixed_part(ins: Instr, chip: Chip) -> int:
    p = chip.params
    d = {"MXM": p.d_mxm_cycles, "VXM": p.d_vxm_cycles, "MEM": p.d_mem_cycles}.get(ins.unit, p.d_sxm_cycles)
    if ins.op in ("send", "recv"):
        return p.c2c_deskew_cycles
    return min(ins.cycles, chip.fixed_cycles(d))


def critical_path(prog: Program) -> list[Instr]:
    """Instructions on the longest dependency/resource chain, first to last."""
    if not prog.instrs:
        return []
    producer: dict[tuple[int, str], Instr] = {}
    prev_on_unit: dict[int, Instr] = {}
    last: dict[tuple[int, str], Instr] = {}
    for ins in sorted(prog.instrs, key=lambda i: (i.start_cycle, i.index)):
        key = (ins.chip, ins.unit)
        if key in last:
            prev_on_unit[ins.index] = last[key]
        last[key] = ins
    for ins in prog.instrs:
        for t in ins.outputs:
            producer[(ins.chip, t)] = ins
    recv_of = {ins.attr("pair"): ins for ins in prog.instrs if ins.op == "recv"}
    cur = max(prog.instrs, key=lambda i: (i.end_cycle, -i.index))
    path = [cur]
    while cur.start_cycle > 0:
        cands: list[Instr] = []
        if cur.op == "recv":
            cands.append(prog.instrs[cur.attr("pair")])
        else:
            cands += [producer[(cur.chip, t)] for t in cur.inputs if (cur.chip, t) in producer]
        if cur.index in prev_on_unit:
            cands.append(prev_on_unit[cur.index])
        if cur.op == "recv":
            nxt = cands[0]
        else:
            tight = [c for c in cands if c.end_cycle == cur.start_cycle]
            if not tight and cur.op == "send" and cur.index in recv_of:
                # A send held back by its receiver's busy link: the path runs through the receiver's
                # previous transfer on that link, which ended exactly one flight after this send starts.
                rv = recv_of[cur.index]
                before = prev_on_unit.get(rv.index)
                if before is not None and before.end_cycle == rv.start_cycle:
                    tight = [before]
            if not tight:
                break
            nxt = max(tight, key=lambda i: i.index)
        path.append(nxt)
        cur = nxt
    return path[::-1]


def attribute(prog: Program, chip: Chip) -> dict[str, int]:
    """Cycles of the critical path by category; they sum to the schedule length."""
    out: dict[str, int] = defaultdict(int)
    path = critical_path(prog)
    t = 0
    for ins in path:
        if ins.op == "recv":
            # Reached through its send (which ended at t): the rest is the flight, hops x per-hop latency.
            out["c2c hops (flight)"] += ins.end_cycle - t
            t = ins.end_cycle
            continue
        if ins.start_cycle > t:
            out["waiting"] += ins.start_cycle - t
        fixed = _fixed_part(ins, chip)
        out["issue skew + unit delay + stream transit"] += fixed
        body = ins.cycles - fixed
        cat = {
            "matmul": "MXM matmul (weight install + streaming)", "attention": "MXM attention + softmax",
            "send": "C2C serialisation", "embed": "MEM embedding gather",
            "moe_experts": "MXM routed experts (busiest chip)", "router": "MXM router + VXM top-k",
            "mla_attention": "MXM attention + softmax",
        }.get(ins.op, "VXM vector ops" if ins.unit == "VXM" else "SXM layout")
        out[cat] += body
        t = ins.end_cycle
    if prog.schedule_cycles > t:
        out["waiting"] += prog.schedule_cycles - t
    return dict(out)


def mxm_macs(prog: Program) -> int:
    """Useful multiply-accumulates of all MXM instructions."""
    total = 0
    for ins in prog.instrs:
        if ins.op == "matmul":
            rows = ins.attr("shape")[0]
            r0, r1 = ins.attr("rows")
            c0, c1 = ins.attr("cols")
            total += rows * (r1 - r0) * (c1 - c0)
        elif ins.op == "attention":
            q_rows, ctx = attention_geometry(ins, StepInfo(prog.phase, prog.batch, prog.seq_len, ""))
            total += 2 * prog.batch * q_rows * ins.attr("heads") * ctx * ins.attr("head_dim")
        elif ins.op in ("router", "moe_experts", "mla_attention"):
            total += moe_mla_macs(ins, prog)
    return total


def moe_mla_macs(ins: Instr, prog: Program) -> int:
    """Useful MACs of a router, a chip's routed experts (routed rows only) or an MLA attention shard."""
    rows = ins.attr("shape")[0]
    if ins.op == "router":
        return rows * ins.attr("hidden") * ins.attr("num_experts")
    if ins.op == "moe_experts":
        e0, e1 = ins.attr("experts")
        i0, i1 = ins.attr("inter")
        routed = rows * ins.attr("top_k") * (e1 - e0) / ins.attr("num_experts")  # expected routed rows
        return int(routed * 3 * ins.attr("hidden") * (i1 - i0))
    heads, kvr = ins.attr("heads"), ins.attr("kv_lora_rank")
    q_rows, ctx = attention_geometry(ins, StepInfo(prog.phase, prog.batch, prog.seq_len, ""))
    absorb = rows * heads * kvr * (ins.attr("qk_nope_head_dim") + ins.attr("v_head_dim"))
    return absorb + prog.batch * q_rows * heads * ctx * (2 * kvr + ins.attr("qk_rope_head_dim"))


def report(prog: Program, chip: Chip) -> CycleReport:
    """The cycle model's summary of a scheduled program."""
    used = [b for b in prog.sram_bytes_per_chip if b > 0]
    chips_used = int(prog.get_meta("chips_used", len(used)))
    key = "fp16" if prog.weight_dtype == "bf16" else prog.weight_dtype
    peak_ops = chip.spec.peak_ops_per_s.get(key, chip.spec.peak_ops_per_s.get("fp16", 0.0)) or 1.0
    macs_per_cycle = peak_ops / 2 / chip.spec.clock_hz
    util = mxm_macs(prog) / (chips_used * macs_per_cycle * max(1, prog.schedule_cycles))
    path = critical_path(prog)
    hops = sum(i.attr("hops", 0) for i in path if i.op == "recv")
    attr = attribute(prog, chip)
    return CycleReport(
        phase=prog.phase, batch=prog.batch, seq_len=prog.seq_len, chips_used=chips_used,
        cycles=prog.schedule_cycles, latency_s=prog.latency_s, sram_bytes_max=max(used, default=0),
        sram_bytes_mean=sum(used) / max(1, len(used)), mxm_utilisation=util,
        attribution_cycles=tuple(sorted(attr.items(), key=lambda kv: -kv[1])),
        pipeline_stages=len(prog.get_meta("stages", ())), tp=int(prog.get_meta("tp", 1)),
        c2c_hops_on_path=hops,
    )
