"""A compiled schedule as Chrome trace events (opens in Perfetto / chrome://tracing), like GroqView.

One process per chip, one thread (track) per functional unit; every
instruction is a complete ("X") event at its scheduled cycles converted to
whole nanoseconds (each end rounded once, the duration their difference),
written as microseconds with three decimals: back-to-back instructions share
their boundary exactly and never overlap. For systems of hundreds of chips, ``chips`` limits the trace
to the chips asked for. Building the events is pure; the CLI writes the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twinfer.lpu.ir import Program

_UNIT_ORDER = ("MEM", "MXM", "VXM", "SXM_W", "SXM_E")


def _tid(unit: str) -> int:
    if unit in _UNIT_ORDER:
        return _UNIT_ORDER.index(unit)
    if unit.startswith("C2C"):
        port, _, direction = unit[3:].partition(".")
        return 10 + 2 * int(port) + (1 if direction == "rx" else 0)
    return 99


def _ns_as_us(ns: int) -> float | int:
    """Whole nanoseconds as microseconds: an int when whole, else the float whose shortest repr (what
    json writes) is exactly the three-decimal value."""
    return ns // 1000 if ns % 1000 == 0 else ns / 1000


def trace_events(prog: Program, chips: Iterable[int] | None = None) -> dict[str, Any]:
    """The Chrome trace JSON object of ``prog``'s schedule (only ``chips`` when given)."""
    keep = set(chips) if chips is not None else None
    ns_per_cycle = 1e9 / prog.clock_hz if prog.clock_hz else 1e3
    events: list[dict[str, Any]] = []
    tracks: set[tuple[int, str]] = set()
    for ins in prog.instrs:
        if keep is not None and ins.chip not in keep:
            continue
        tracks.add((ins.chip, ins.unit))
        args: dict[str, Any] = {"index": ins.index, "cycles": ins.cycles, "start_cycle": ins.start_cycle,
                                "inputs": list(ins.inputs), "outputs": list(ins.outputs)}
        for key in ("weight", "role", "layer", "peer", "hops", "shape"):
            val = ins.attr(key)
            if val is not None:
                args[key] = list(val) if isinstance(val, tuple) else val
        start_ns = round(ins.start_cycle * ns_per_cycle)
        end_ns = round((ins.start_cycle + ins.cycles) * ns_per_cycle)
        events.append({
            "name": ins.attr("role") or ins.op, "cat": ins.op, "ph": "X", "pid": ins.chip, "tid": _tid(ins.unit),
            "ts": _ns_as_us(start_ns), "dur": _ns_as_us(end_ns - start_ns), "args": args,
        })
    meta: list[dict[str, Any]] = []
    for chip in sorted({c for c, _ in tracks}):
        meta.append({"name": "process_name", "ph": "M", "pid": chip, "tid": 0, "args": {"name": f"chip {chip}"}})
        meta.append({"name": "process_sort_index", "ph": "M", "pid": chip, "tid": 0, "args": {"sort_index": chip}})
    for chip, unit in sorted(tracks):
        meta.append({"name": "thread_name", "ph": "M", "pid": chip, "tid": _tid(unit), "args": {"name": unit}})
    return {
        "traceEvents": meta + events,
        "displayTimeUnit": "ns",
        "otherData": {"model": prog.model, "phase": prog.phase, "batch": prog.batch, "seq_len": prog.seq_len,
                      "schedule_cycles": prog.schedule_cycles, "clock_hz": prog.clock_hz},
    }
