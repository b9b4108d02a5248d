"""Pass 4, schedule: a static start cycle, unit and stream slots for every instruction.

List scheduling in program order (a topological order): an instruction
starts when all its inputs are ready on its chip and its unit is free. A
``send`` and its ``recv`` are placed together: the transfer starts when the
sender's link and the receiver's link are both free (the receiver's shifted
by the flight time, hops x per-hop latency), so no link is ever contended at
run time — the compiler owns every link, as in P2. Streams are statically
partitioned among the units of a chip (P1: 32 east + 32 west streams), so
ops on different units never share a stream.
"""

from __future__ import annotations

from dataclasses import replace

from twinfer.lpu.ir import Instr, Program

#: Stream slots each unit reads and writes (static split of P1's 32 east + 32 west streams).
UNIT_STREAMS: dict[str, tuple[str, ...]] = {
    "MXM": tuple(f"E{i}" for i in range(16)) + tuple(f"W{i}" for i in range(16)),
    "VXM": tuple(f"E{i}" for i in range(16, 24)) + tuple(f"W{i}" for i in range(16, 24)),
    "SXM_W": tuple(f"W{i}" for i in range(24, 28)),
    "SXM_E": tuple(f"E{i}" for i in range(24, 28)),
    "MEM": ("E28", "E29", "W28", "W29"),
}


def unit_streams(unit: str) -> tuple[str, ...]:
    """Streams a unit uses (C2C links read MEM through their own port buffers: none)."""
    return UNIT_STREAMS.get(unit, ())


def schedule(prog: Program, hop_latency_cycles: int) -> Program:
    """``prog`` with every instruction's start/end cycles and streams, and the schedule length."""
    instrs = list(prog.instrs)
    recv_of: dict[int, int] = {}
    for ins in instrs:
        if ins.op == "recv":
            recv_of[ins.attr("pair")] = ins.index
    ready: dict[tuple[int, str], int] = {}
    free: dict[tuple[int, str], int] = {}
    out: list[Instr | None] = [None] * len(instrs)
    for ins in instrs:
        if ins.op == "recv":
            continue  # placed with its send
        start = free.get((ins.chip, ins.unit), 0)
        for t in ins.inputs:
            r = ready.get((ins.chip, t), 0)
            if r > start:
                start = r
        if ins.op == "send":
            rv = instrs[recv_of[ins.index]]
            flight = ins.attr("hops") * hop_latency_cycles
            rx_free = free.get((rv.chip, rv.unit), 0) - flight
            start = max(start, rx_free)
            end = start + ins.cycles
            out[ins.index] = ins.timed(start, end)
            out[rv.index] = rv.timed(start + flight, end + flight)
            free[(ins.chip, ins.unit)] = end
            free[(rv.chip, rv.unit)] = end + flight
            ready[(rv.chip, rv.outputs[0])] = end + flight
            continue
        end = start + ins.cycles
        out[ins.index] = ins.timed(start, end, unit_streams(ins.unit))
        free[(ins.chip, ins.unit)] = end
        for t in ins.outputs:
            ready[(ins.chip, t)] = end
    done = tuple(i for i in out if i is not None)
    length = max((i.end_cycle for i in done), default=0)
    return replace(prog, instrs=done, schedule_cycles=length)
