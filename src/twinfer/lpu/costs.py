"""Cycle cost of one instruction on its chip: a dispatch from semantic op to the chip model's formulas.

Costs depend only on the instruction's attrs (``shape``, ``rows``/``cols``,
heads) and the step (phase, batch, sequence length), so they are exact and
deterministic for the chip model in :mod:`twinfer.lpu.chip`. Transfers cost
their link serialisation here; the flight time (hops x per-hop latency) is
added by the schedule pass, which knows both ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinfer.lpu.chip import Chip
from twinfer.lpu.ir import Instr
from twinfer.units import dtype_bytes


@dataclass(frozen=True)
class StepInfo:
    """What of the step an op's cost depends on."""

    phase: str  # "prefill" or "decode"
    batch: int
    seq_len: int  # prompt length (prefill) or context length incl. the new token (decode)
    act_dtype: str  # activations and KV cache


def attention_geometry(ins: Instr, step: StepInfo) -> tuple[int, int]:
    """(query rows per sequence, keys attended per sequence) of an attention instruction.

    Prefill rows are ``batch`` x chunk length and attend over ``pos_offset`` earlier
    positions plus themselves; decode has one row per sequence over its context.
    """
    if step.phase == "decode":
        return 1, step.seq_len
    q_rows = ins.attr("shape")[0] // step.batch
    return q_rows, ins.attr("pos_offset", 0) + q_rows


def instr_cycles(ins: Instr, chip: Chip, step: StepInfo) -> int:
    """Cycles ``ins`` occupies its unit (for send/recv: its link direction)."""
    rows, width = ins.attr("shape", (0, 0))
    p = chip.params
    op = ins.op
    if op == "matmul":
        r0, r1 = ins.attr("rows")
        c0, c1 = ins.attr("cols")
        return chip.matmul_cycles(rows, c1 - c0, r1 - r0, ins.attr("dtype"), step.act_dtype)
    if op == "attention":
        q_rows, ctx = attention_geometry(ins, step)
        return chip.attention_cycles(batch=step.batch, q_rows=q_rows, ctx=ctx,
                                     heads=ins.attr("heads"), kv_heads=ins.attr("kv_heads"),
                                     head_dim=ins.attr("head_dim"), act_dtype=step.act_dtype)
    if op == "rmsnorm":
        return chip.vxm_cycles(rows * width, p.vxm_ops_rmsnorm)
    if op == "rope":
        return chip.vxm_cycles(rows * width, p.vxm_ops_rope)
    if op == "silu_mul":
        return chip.vxm_cycles(rows * width, p.vxm_ops_silu_mul)
    if op in ("add", "argmax"):
        return chip.vxm_cycles(rows * width, 1)
    if op in ("split", "concat", "last_rows"):
        return chip.sxm_cycles(rows * width)
    if op == "embed":
        return chip.mem_gather_cycles(rows, width)
    if op in ("send", "recv"):
        sync = p.cross_node_sync_cycles if ins.attr("cross_node_sync", False) else 0
        return chip.c2c_cycles(int(rows * width * dtype_bytes(step.act_dtype))) + sync
    raise ValueError(f"no cost for op {op!r}")
