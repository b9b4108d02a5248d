"""Verifiers run after every compiler pass: structure, placement, and the schedule.

A verifier raises :class:`ProgramError` naming the first broken invariant.
Structure: consecutive indices, known ops, one producer per tensor per chip
(single assignment), inputs produced earlier on the same chip, every send
matched by one recv. Placement: no chip over its usable SRAM, slices inside
the chip. Schedule: every instruction timed with ``end = start + cycles``,
every dependency respected (transfers include their flight time), no two
instructions on one unit or one stream of a chip at the same time.
"""

from __future__ import annotations

from collections import defaultdict

from twinfer.lpu.chip import Chip
from twinfer.lpu.ir import SEMANTIC_OPS, Program

#: Tensors a program receives from outside (the host) rather than computing.
PROGRAM_INPUTS = ("token_ids",)


class ProgramError(AssertionError):
    """A compiler pass produced a program that breaks an invariant (a compiler bug, not a user error)."""


def verify_structure(prog: Program) -> None:
    """Indices, ops, single assignment per chip, producers before consumers, matched transfers."""
    produced: set[tuple[int, str]] = set()
    sends: dict[int, tuple[int, int]] = {}
    for pos, ins in enumerate(prog.instrs):
        if ins.index != pos:
            raise ProgramError(f"instr at position {pos} has index {ins.index}")
        if ins.op not in SEMANTIC_OPS:
            raise ProgramError(f"instr {pos}: unknown op {ins.op!r}")
        if not 0 <= ins.chip < prog.chips:
            raise ProgramError(f"instr {pos}: chip {ins.chip} outside 0..{prog.chips - 1}")
        for t in ins.inputs:
            if (ins.chip, t) not in produced and t not in PROGRAM_INPUTS:
                raise ProgramError(f"instr {pos} ({ins.op} on chip {ins.chip}) reads {t!r} before it is produced")
        if ins.op == "send":
            sends[ins.index] = (ins.chip, ins.attr("peer"))
        if ins.op == "recv":
            pair = sends.pop(ins.attr("pair"), None)
            if pair != (ins.attr("peer"), ins.chip):
                raise ProgramError(f"recv {pos} on chip {ins.chip} has no matching send")
        for t in ins.outputs:
            if (ins.chip, t) in produced:
                raise ProgramError(f"instr {pos}: {t!r} assigned twice on chip {ins.chip}")
            produced.add((ins.chip, t))
    if sends:
        raise ProgramError(f"sends without a recv: {sorted(sends)[:5]}")


def verify_placement(prog: Program, chip: Chip) -> None:
    """No chip over its usable SRAM; placements inside the chip's slices and summing to the reported use."""
    total: dict[int, int] = defaultdict(int)
    for p in prog.placements:
        if p.slice_first < 0 or p.slice_first + p.slice_count > chip.spec.mem_slices:
            raise ProgramError(f"{p.tensor} on chip {p.chip} lies outside MEM slices")
        total[p.chip] += p.num_bytes
    for c, used in enumerate(prog.sram_bytes_per_chip):
        if used != total.get(c, 0):
            raise ProgramError(f"chip {c}: reported {used} bytes but placements sum to {total.get(c, 0)}")
        if used > chip.usable_sram_bytes:
            raise ProgramError(f"chip {c}: {used} bytes exceed {chip.usable_sram_bytes} usable")


def verify_schedule(prog: Program, hop_latency_cycles: int) -> None:
    """Timing, dependencies (with transfer flight) and exclusive use of units and streams."""
    ready: dict[tuple[int, str], int] = {}
    by_index = prog.instrs
    busy: dict[tuple[int, str], list[tuple[int, int, int]]] = defaultdict(list)
    groups: dict[tuple[int, str, tuple[str, ...]], list[tuple[int, int, int]]] = defaultdict(list)
    for ins in prog.instrs:
        if ins.start_cycle < 0 or ins.end_cycle != ins.start_cycle + ins.cycles or ins.cycles < 0:
            raise ProgramError(f"instr {ins.index} ({ins.op}) is not timed consistently")
        for t in ins.inputs:
            if ready.get((ins.chip, t), 0) > ins.start_cycle:
                raise ProgramError(f"instr {ins.index} ({ins.op}) starts before its input {t!r} is ready")
        if ins.op == "recv":
            snd = by_index[ins.attr("pair")]
            if ins.start_cycle != snd.start_cycle + snd.attr("hops") * hop_latency_cycles:
                raise ProgramError(f"recv {ins.index} does not arrive at send time + flight")
        for t in ins.outputs:
            ready[(ins.chip, t)] = ins.end_cycle
        if ins.cycles:
            span = (ins.start_cycle, ins.end_cycle, ins.index)
            busy[(ins.chip, ins.unit)].append(span)
            if ins.streams:
                groups[(ins.chip, ins.unit, ins.streams)].append(span)
    # Streams: spans of one (unit, stream set) are covered by the unit check; merge groups sharing a stream.
    users: dict[tuple[int, str], list[tuple[int, str, tuple[str, ...]]]] = defaultdict(list)
    for key in groups:
        for s in key[2]:
            users[(key[0], s)].append(key)
    for (c, s), keys in users.items():
        if len(keys) > 1:
            busy[(c, "stream:" + s)] = [span for k in keys for span in groups[k]]
    for (c, res), spans in busy.items():
        spans.sort()
        for (s0, e0, i0), (s1, _e1, i1) in zip(spans, spans[1:], strict=False):
            if s1 < e0:
                raise ProgramError(f"chip {c} {res}: instrs {i0} and {i1} overlap ({s0}-{e0} vs {s1})")
    length = max((i.end_cycle for i in prog.instrs), default=0)
    if prog.schedule_cycles != length:
        raise ProgramError(f"schedule length {prog.schedule_cycles} != last end cycle {length}")
