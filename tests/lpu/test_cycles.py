"""Cycle report: critical path, attribution and MXM utilisation on hand-countable programs."""

from __future__ import annotations

from twinfer.lpu.cycles import attribute, critical_path, mxm_macs, report
from twinfer.lpu.passes import compile_step
from twinfer.lpu.system import System
from twinfer.models.ops import Precision

INT8 = Precision(weights="int8", activations="fp16", kv_cache="fp16")


def test_attribution_sums_to_the_schedule_length(tsp, tiny_model):
    prog = compile_step(tiny_model, System(tsp, 1), phase="decode", batch=2, seq_len=10, precision=INT8).program
    parts = attribute(prog, tsp)
    assert sum(parts.values()) == prog.schedule_cycles
    path = critical_path(prog)
    assert path[-1].end_cycle == prog.schedule_cycles and path[0].start_cycle == 0
    # On one chip a decode step is a dependency chain: every matmul lies on the critical path.
    assert sum(1 for i in path if i.op == "matmul") == sum(1 for i in prog.instrs if i.op == "matmul")


def test_mxm_macs_count_the_useful_work(tsp, tiny_model):
    prog = compile_step(tiny_model, System(tsp, 1), phase="decode", batch=1, seq_len=4, precision=INT8).program
    m = tiny_model
    per_layer = m.hidden_size * (m.q_dim + 2 * m.kv_dim) + m.q_dim * m.hidden_size + 3 * m.hidden_size * m.intermediate_size
    attention = 2 * m.num_attention_heads * 4 * m.head_dim  # q.K over 4 keys and p.V, one query row
    expected = m.num_layers * (per_layer + attention) + m.hidden_size * m.vocab_size
    assert mxm_macs(prog) == expected
    rep = report(prog, tsp)
    peak_macs_per_cycle = 737e12 / 2 / 900e6
    assert abs(rep.mxm_utilisation - expected / (peak_macs_per_cycle * prog.schedule_cycles)) < 1e-12


def test_multi_chip_report_counts_stages_and_hops(tiny_model):
    from compiler_helpers import make_tiny_chip

    chip = make_tiny_chip()
    prog = compile_step(tiny_model, System(chip, 8), phase="decode", batch=1, seq_len=8, precision=INT8).program
    rep = report(prog, chip)
    assert rep.pipeline_stages == 4 and rep.tp == 2 and rep.chips_used == 8
    # Three stage hand-offs (one across racks: 3 hops; two inside a rack: 2 hops) lie on the path at least.
    assert rep.c2c_hops_on_path >= 2 + 3 + 2
    assert dict(rep.attribution_cycles)["c2c hops (flight)"] >= 7 * chip.hop_latency_cycles
