"""Pass 3, place: give every weight shard, KV-cache shard and activation workspace a home in MEM.

Weights used by the MXM are spread over consecutive MEM slices of one
hemisphere (P1 floorplan: 44 slices west, 44 east, each beside its two MXM
planes), always the emptier one so both pairs of planes are fed; weights
are read through bank 0 while KV cache and activations are written through
bank 1. Activation workspace is the peak of live activation bytes on the
chip, walking its instructions in program order, with rows capped at the
chip's resident rows (longer prompts stream through in chunks). A tensor
larger than what is left of its hemisphere spills its tail into the other
hemisphere: it is then recorded as two placements, ``name#0`` and ``name#1``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

from twinfer.errors import CapacityError
from twinfer.lpu.chip import Chip
from twinfer.lpu.ir import Instr, Placement, Program, weight_key
from twinfer.units import dtype_bytes


def _instr_needs(ins: Instr, prog: Program, wb: float, ab: float) -> list[tuple[str, str, float]]:
    """(placement name, kind, bytes) of the weights and KV shard one instruction reads."""
    w = ins.attr("weight")
    if ins.op == "matmul":
        r0, r1 = ins.attr("rows")
        c0, c1 = ins.attr("cols")
        return [(weight_key(w, (r0, r1), (c0, c1)),
                 "weight", (r1 - r0) * (c1 - c0) * wb + (2 * (r1 - r0) if ins.attr("bias") else 0))]
    if ins.op == "embed":
        a, b = ins.attr("cols")
        vocab = ins.attr("vocab", 0)
        return [(weight_key(w, (0, vocab), (a, b)), "weight", vocab * (b - a) * wb)]
    if ins.op == "rmsnorm":
        return [(w, "weight", 2 * ins.attr("shape")[1])]
    if ins.op == "attention":
        return [(f"kv.L{ins.attr('layer')}", "kv",
                 prog.batch * prog.seq_len * 2 * ins.attr("kv_heads") * ins.attr("head_dim") * ab)]
    if ins.op == "router":
        e, h = ins.attr("num_experts"), ins.attr("hidden")
        bias = [(ins.attr("bias"), "weight", 4 * e)] if ins.attr("bias") else []
        return [(weight_key(w, (0, e), (0, h)), "weight", e * h * wb), *bias]
    if ins.op == "moe_experts":
        h, (i0, i1) = ins.attr("hidden"), ins.attr("inter")
        gate, up, down = ins.attr("names")
        out = []
        for e in range(*ins.attr("experts")):
            for name, rows, cols in ((gate, (i0, i1), (0, h)), (up, (i0, i1), (0, h)), (down, (0, h), (i0, i1))):
                out.append((weight_key(name.format(e=e), rows, cols), "weight", (i1 - i0) * h * wb))
        return out
    if ins.op == "mla_attention":
        (r0, r1), (c0, c1) = ins.attr("rows"), ins.attr("cols")
        latent = ins.attr("kv_lora_rank") + ins.attr("qk_rope_head_dim")
        return [(weight_key(w, (r0, r1), (c0, c1)), "weight", (r1 - r0) * (c1 - c0) * wb),
                (ins.attr("norm"), "weight", 2 * ins.attr("kv_lora_rank")),
                (f"kv.L{ins.attr('layer')}", "kv", prog.batch * prog.seq_len * latent * ab)]
    return []


def _needs(prog: Program, chip: Chip) -> dict[int, list[tuple[str, str, int]]]:
    """Per chip: (tensor, kind, bytes) of weights, KV shards and the activation workspace."""
    wb = dtype_bytes(prog.weight_dtype)
    ab = dtype_bytes(prog.activation_dtype)
    out: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    live: dict[int, dict[str, int]] = defaultdict(dict)
    last_use: dict[tuple[int, str], int] = {}
    for ins in prog.instrs:
        for t in ins.inputs:
            last_use[(ins.chip, t)] = ins.index
    peak: dict[int, int] = defaultdict(int)
    cur: dict[int, int] = defaultdict(int)
    cap_rows = chip.params.activation_rows_resident
    for ins in prog.instrs:
        c = ins.chip
        for key, kind, nbytes in _instr_needs(ins, prog, wb, ab):
            if (c, key) not in seen:
                seen.add((c, key))
                out[c].append((key, kind, int(nbytes)))
        # activation liveness (program order is a valid execution order on each chip)
        rows, width = ins.attr("shape", (0, 0))
        for t in ins.outputs:
            size = int(min(rows, cap_rows) * width * ab)
            live[c][t] = size
            cur[c] += size
        peak[c] = max(peak[c], cur[c])
        for t in ins.inputs:
            if last_use.get((c, t)) == ins.index and t in live[c]:
                cur[c] -= live[c].pop(t)
    for c, p in peak.items():
        out[c].append(("activations", "activation", p))
    return out


def place(prog: Program, chip: Chip) -> Program:
    """``prog`` with placements and SRAM use per chip; CapacityError if a chip overflows."""
    spec = chip.spec
    half = spec.mem_slices // 2
    sb = chip.slice_bytes
    placements: list[Placement] = []
    used = [0] * prog.chips
    hemi_bytes = half * sb
    for c, items in sorted(_needs(prog, chip).items()):
        used[c] = sum(n for _, _, n in items)
        if used[c] > chip.usable_sram_bytes:
            raise CapacityError(
                f"chip {c} of {prog.model} needs {used[c] / 2**20:.1f} MiB of SRAM but has "
                f"{chip.usable_sram_bytes / 2**20:.1f} MiB usable; use more chips or smaller dtypes"
            )
        fill = [0, 0]  # bytes used in the west / east hemisphere
        for tensor, kind, nbytes in items:
            side = 0 if fill[0] <= fill[1] else 1  # the emptier hemisphere keeps both MXM pairs fed
            # A tensor larger than what is left of its hemisphere spills its tail into the other one.
            if fill[side] >= hemi_bytes:
                side = 1 - side
            first_part = min(nbytes, hemi_bytes - fill[side])
            parts = [(side, first_part, tensor)]
            if first_part < nbytes:
                parts = [(side, first_part, tensor + "#0"), (1 - side, nbytes - first_part, tensor + "#1")]
            for sd, n, name in parts:
                first = sd * half + fill[sd] // sb
                count = max(1, math.ceil((fill[sd] % sb + n) / sb))
                placements.append(Placement(tensor=name, chip=c, kind=kind, num_bytes=n, slice_first=first,
                                            slice_count=count, bank=0 if kind == "weight" else 1))
                fill[sd] += n
    return replace(prog, placements=tuple(placements), sram_bytes_per_chip=tuple(used))
