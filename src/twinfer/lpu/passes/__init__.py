"""The LPU compiler: an ordered list of named passes over one :class:`~twinfer.lpu.ir.Program`.

``lower`` -> ``partition`` -> ``place`` -> ``schedule`` -> ``verify``; the
structural verifier runs after every pass, the placement verifier after
``place`` and the schedule verifier after ``schedule``. :func:`compile_step`
runs them all; :data:`PASS_NAMES` lists them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from twinfer.lpu.ir import Program
from twinfer.lpu.passes.lower import lower, step_tokens
from twinfer.lpu.passes.partition import partition
from twinfer.lpu.passes.place import place
from twinfer.lpu.passes.schedule import schedule
from twinfer.lpu.plan import Plan, make_plan
from twinfer.lpu.system import System
from twinfer.lpu.verify import verify_placement, verify_schedule, verify_structure
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec

PASS_NAMES = ("lower", "partition", "place", "schedule", "verify")


@dataclass(frozen=True)
class CompileResult:
    """A compiled program, the plan it follows, and the wall time each pass took (for benchmarks)."""

    program: Program
    plan: Plan
    pass_seconds: tuple[tuple[str, float], ...]


def compile_step(model: ModelSpec, system: System, *, phase: str, batch: int, seq_len: int,
                 precision: Precision | None = None, plan: Plan | None = None,
                 capacity_ctx: int | None = None, prefill_chunk: int | None = None,
                 verify_tokens: int = 1) -> CompileResult:
    """Compile one prefill, decode or verify step of ``model`` onto ``system``.

    ``plan`` reuses a partition (e.g. the decode plan for the prefill program);
    otherwise one is made for ``batch`` sequences of ``capacity_ctx`` tokens
    of KV cache (default ``seq_len``) over ``system.num_chips`` chips.
    ``prefill_chunk`` cuts a batch-1 prompt into chunks that pipeline across stages.
    A ``verify`` step checks ``verify_tokens`` positions per sequence (speculative decoding, see ``lower``).
    """
    prec = precision or Precision(weights="int8", activations="fp16", kv_cache="fp16")
    chip = system.chip
    hop = chip.hop_latency_cycles
    tokens = step_tokens(phase, batch, seq_len, verify_tokens)
    times: list[tuple[str, float]] = []

    def run(name: str, fn: Callable[[], Program]) -> Program:
        t0 = time.perf_counter()
        out = fn()
        times.append((name, time.perf_counter() - t0))
        return out

    prog = run("lower", lambda: lower(model, phase=phase, batch=batch, seq_len=seq_len, precision=prec,
                                          prefill_chunk=prefill_chunk, verify_tokens=verify_tokens))
    verify_structure(prog)
    if plan is None:
        plan = make_plan(model, chip, prec, chips=system.num_chips, batch=batch,
                         ctx=capacity_ctx or seq_len, tokens=tokens)
    prog = run("partition", lambda: partition(prog, model, plan, system))
    verify_structure(prog)
    if prefill_chunk and phase == "prefill" and batch == 1 and seq_len > prefill_chunk:
        prog = prog.with_meta(prefill_chunk=prefill_chunk)
    prog = run("place", lambda: place(prog, chip))
    verify_placement(prog, chip)
    prog = run("schedule", lambda: schedule(prog, hop))

    def final() -> Program:
        verify_structure(prog)
        verify_placement(prog, chip)
        verify_schedule(prog, hop)
        return prog

    prog = run("verify", final)
    return CompileResult(program=prog, plan=plan, pass_seconds=tuple(times))
