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
from twinfer.lpu.moe_costs import experts_cycles, mla_attention_cycles, router_cycles
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
    if op in ("router", "moe_experts", "mla_attention"):
        return moe_mla_cycles(ins, chip, step)
    raise ValueError(f"no cost for op {op!r}")


def moe_mla_cycles(ins: Instr, chip: Chip, step: StepInfo) -> int:
    """Cycles of the MoE router, a chip's routed experts, or MLA attention (formulas in :mod:`twinfer.lpu.moe_costs`)."""
    rows, _ = ins.attr("shape")
    wd, ad = ins.attr("dtype"), step.act_dtype
    if ins.op == "router":
        return router_cycles(chip, rows, ins.attr("hidden"), ins.attr("num_experts"), ins.attr("top_k"), wd, ad)
    if ins.op == "moe_experts":
        e0, e1 = ins.attr("experts")
        i0, i1 = ins.attr("inter")
        return experts_cycles(chip, rows, ins.attr("hidden"), ins.attr("num_experts"), ins.attr("top_k"),
                              e1 - e0, i1 - i0, wd, ad)
    q_rows, ctx = attention_geometry(ins, step)
    return mla_attention_cycles(chip, rows=rows, heads=ins.attr("heads"), kv_lora_rank=ins.attr("kv_lora_rank"),
                                qk_nope_head_dim=ins.attr("qk_nope_head_dim"),
                                qk_rope_head_dim=ins.attr("qk_rope_head_dim"), v_head_dim=ins.attr("v_head_dim"),
                                batch=step.batch, q_rows=q_rows, ctx=ctx, wd=wd, ad=ad)
