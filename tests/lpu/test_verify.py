"""The verifiers catch broken programs: bad structure, SRAM overflow, unit or stream conflicts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from twinfer.errors import CapacityError
from twinfer.lpu.ir import Instr, Placement, Program
from twinfer.lpu.passes import compile_step
from twinfer.lpu.passes.place import place
from twinfer.lpu.system import System
from twinfer.lpu.verify import ProgramError, verify_placement, verify_schedule, verify_structure


def _p(instrs, chips=2):
    return Program(model="t", phase="decode", batch=1, seq_len=1, chips=chips, instrs=tuple(instrs))


def test_read_before_write_and_double_assignment_are_rejected():
    with pytest.raises(ProgramError, match="before it is produced"):
        verify_structure(_p([Instr(index=0, op="add", chip=0, unit="VXM", inputs=("a", "b"), outputs=("c",))]))
    e = Instr(index=0, op="embed", chip=0, unit="MEM", inputs=("token_ids",), outputs=("x",))
    with pytest.raises(ProgramError, match="assigned twice"):
        verify_structure(_p([e, replace(e, index=1)]))


def test_unmatched_send_is_rejected():
    e = Instr(index=0, op="embed", chip=0, unit="MEM", inputs=("token_ids",), outputs=("x",))
    s = Instr(index=1, op="send", chip=0, unit="C2C0.tx", inputs=("x",), attrs=(("peer", 1), ("tensor", "x")))
    with pytest.raises(ProgramError, match="without a recv"):
        verify_structure(_p([e, s]))


def test_sram_overflow_is_caught(tsp, tiny_model):
    prog = compile_step(tiny_model, System(tsp, 1), phase="decode", batch=1, seq_len=4).program
    big = replace(prog, placements=(*prog.placements, Placement("huge", 0, "weight", 300 * 2**20, 0, 88, 0)),
                  sram_bytes_per_chip=(prog.sram_bytes_per_chip[0] + 300 * 2**20,))
    with pytest.raises(ProgramError):
        verify_placement(big, tsp)
    small = replace(tsp, params=replace(tsp.params, reserved_sram_bytes=int(tsp.spec.sram_bytes) - 1000))
    with pytest.raises(CapacityError, match="usable"):
        place(replace(prog, placements=(), sram_bytes_per_chip=()), small)


def test_two_units_sharing_a_stream_at_once_are_caught(tsp, tiny_model):
    prog = compile_step(tiny_model, System(tsp, 1), phase="decode", batch=1, seq_len=4).program
    verify_schedule(prog, tsp.hop_latency_cycles)
    # rope of k runs on the VXM while the v projection runs on the MXM.
    mxm, vxm = next((a, b) for a in prog.instrs for b in prog.instrs
                    if a.unit == "MXM" and b.unit == "VXM" and a.start_cycle <= b.start_cycle < a.end_cycle)
    clash = replace(vxm, streams=(*vxm.streams, mxm.streams[0]))
    bad = replace(prog, instrs=tuple(clash if i.index == vxm.index else i for i in prog.instrs))
    with pytest.raises(ProgramError, match="stream"):
        verify_schedule(bad, tsp.hop_latency_cycles)


def test_a_weight_larger_than_a_hemisphere_spills_into_the_other(tsp):
    # 20 x 320 rows x 20,000 cols of int8 = 128 MB > one hemisphere (44 x 2.5 MiB = 110 MiB).
    mm = Instr(index=0, op="matmul", chip=0, unit="MXM", inputs=("token_ids",), outputs=("y",),
               attrs=(("weight", "w"), ("rows", (0, 6400)), ("cols", (0, 20000)), ("dtype", "int8"),
                      ("bias", None), ("shape", (1, 6400))))
    prog = place(Program(model="t", phase="decode", batch=1, seq_len=1, chips=1, instrs=(mm,),
                         weight_dtype="int8"), tsp)
    parts = [p for p in prog.placements if p.kind == "weight"]
    assert [p.tensor for p in parts] == ["w[0:6400,0:20000]#0", "w[0:6400,0:20000]#1"]
    assert sum(p.num_bytes for p in parts) == 6400 * 20000
    assert parts[0].slice_first == 0 and parts[0].slice_count == 44 and parts[1].slice_first == 44
    verify_placement(prog, tsp)
