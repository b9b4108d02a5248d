"""Golden schedules of hand-built tiny programs, counted by hand, and the verifier catching broken ones."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twinfer.lpu.costs import StepInfo, instr_cycles
from twinfer.lpu.ir import Instr, Program
from twinfer.lpu.passes.schedule import schedule
from twinfer.lpu.system import System
from twinfer.lpu.verify import ProgramError, verify_schedule

FIXED_MXM = 20 + 24 + 46  # N + d_MXM + transit
FIXED_VXM = 20 + 4 + 46
HOP = 450  # cycles per C2C hop (0.5 us at 900 MHz)


def _prog(instrs: list[Instr], chips: int = 1) -> Program:
    return Program(
        model="t",
        phase="decode",
        batch=1,
        seq_len=1,
        chips=chips,
        instrs=tuple(instrs),
        clock_hz=900e6,
    )


def _costed(ins: Instr, tsp, act_dtype: str = "int8") -> Instr:
    """Cost ``ins`` for a decode step with ``act_dtype`` activations (int8: the MXM runs in int8 mode)."""
    return replace(ins, cycles=instr_cycles(ins, tsp, StepInfo("decode", 1, 1, act_dtype)))


def _mm(i: int, chip: int, src: str, dst: str) -> Instr:
    return Instr(
        index=i,
        op="matmul",
        chip=chip,
        unit="MXM",
        inputs=(src,),
        outputs=(dst,),
        attrs=(
            ("weight", "w"),
            ("rows", (0, 320)),
            ("cols", (0, 320)),
            ("dtype", "int8"),
            ("shape", (1, 320)),
        ),
    )


def test_single_matmul_on_one_chip(tsp):
    p = schedule(_prog([_costed(_mm(0, 0, "x", "y"), tsp)]), HOP)
    # By hand: install one tile (40) + one vector (1) + N + d_MXM + transit.
    assert p.schedule_cycles == 40 + 1 + FIXED_MXM == 131
    assert (p.instrs[0].start_cycle, p.instrs[0].end_cycle) == (0, 131)
    verify_schedule(p, HOP)


def test_int8_weights_meeting_fp16_activations_run_in_fp16_mode(tsp):
    p = schedule(_prog([_costed(_mm(0, 0, "x", "y"), tsp, act_dtype="fp16")]), HOP)
    # By hand: fp16 mode installs the tile at mxm_wide_install_factor (2) x 40 cycles and streams
    # one vector at the fp16 rate, 737/188 -> 4 cycles; then N + d_MXM + transit.
    assert p.schedule_cycles == 2 * 40 + 4 + FIXED_MXM


def test_two_op_chain_waits_for_its_input(tsp):
    norm = Instr(
        index=1,
        op="rmsnorm",
        chip=0,
        unit="VXM",
        inputs=("y",),
        outputs=("z",),
        attrs=(("weight", "n"), ("eps", 1e-5), ("shape", (1, 320))),
    )
    p = schedule(_prog([_costed(_mm(0, 0, "x", "y"), tsp), _costed(norm, tsp)]), HOP)
    # rmsnorm of 320 values: 1 vector x 4 ops / 16 ALUs -> 1 cycle + fixed.
    assert p.instrs[1].start_cycle == 131
    assert p.schedule_cycles == 131 + 1 + FIXED_VXM
    verify_schedule(p, HOP)


def test_independent_ops_overlap_on_different_units_and_serialise_on_one(tsp):
    norm = Instr(
        index=1,
        op="rmsnorm",
        chip=0,
        unit="VXM",
        inputs=("x",),
        outputs=("z",),
        attrs=(("weight", "n"), ("eps", 1e-5), ("shape", (1, 320))),
    )
    par = schedule(_prog([_costed(_mm(0, 0, "x", "y"), tsp), _costed(norm, tsp)]), HOP)
    assert par.schedule_cycles == max(131, 1 + FIXED_VXM)
    ser = schedule(
        _prog([_costed(_mm(0, 0, "x", "y"), tsp), _costed(_mm(1, 0, "x", "y2"), tsp)]), HOP
    )
    assert ser.instrs[1].start_cycle == 131 and ser.schedule_cycles == 262


def test_transfer_between_nodes_pays_two_hops(tsp):
    system = System(tsp, 16)
    hops = system.hops(0, 9)
    assert hops == 2
    shape = (1, 1024)  # 1,024 fp16 values = 2,048 bytes
    send = Instr(
        index=1,
        op="send",
        chip=0,
        unit=f"C2C{system.port(0, 9)}.tx",
        inputs=("y",),
        outputs=(),
        attrs=(("peer", 9), ("tensor", "y"), ("hops", hops), ("shape", shape)),
    )
    recv = Instr(
        index=2,
        op="recv",
        chip=9,
        unit=f"C2C{system.port(9, 0)}.rx",
        inputs=(),
        outputs=("y",),
        attrs=(("peer", 0), ("tensor", "y"), ("hops", hops), ("pair", 1), ("shape", shape)),
    )
    use = Instr(
        index=3,
        op="add",
        chip=9,
        unit="VXM",
        inputs=("y", "y"),
        outputs=("s",),
        attrs=(("shape", shape),),
    )
    instrs = [_costed(_mm(0, 0, "x", "y"), tsp)] + [_costed(i, tsp, "fp16") for i in (send, recv, use)]
    p = schedule(_prog(instrs, chips=16), HOP)
    # send starts when the matmul ends (131) and serialises 2,048 B: ceil(2048 / 15.56) = 132 + 10 deskew.
    assert (p.instrs[1].start_cycle, p.instrs[1].end_cycle) == (131, 131 + 142)
    # recv: two hops of flight later.
    assert (p.instrs[2].start_cycle, p.instrs[2].end_cycle) == (131 + 900, 131 + 900 + 142)
    assert p.instrs[3].start_cycle == 131 + 900 + 142
    verify_schedule(p, HOP)


def test_verifier_rejects_overlap_and_early_start(tsp):
    ser = schedule(
        _prog([_costed(_mm(0, 0, "x", "y"), tsp), _costed(_mm(1, 0, "y", "y2"), tsp)]), HOP
    )
    early = replace(ser.instrs[1], start_cycle=100, end_cycle=100 + ser.instrs[1].cycles)
    broken = replace(ser, instrs=(ser.instrs[0], early))
    with pytest.raises(ProgramError):
        verify_schedule(broken, HOP)
