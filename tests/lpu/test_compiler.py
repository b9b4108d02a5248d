"""The pass pipeline on tiny models: partitions, placement, determinism, capacity errors."""

from __future__ import annotations

import pytest
from compiler_helpers import make_tiny_chip, make_tiny_model

from twinfer.errors import CapacityError
from twinfer.lpu.ir import Program
from twinfer.lpu.passes import PASS_NAMES, compile_step
from twinfer.lpu.plan import min_chips
from twinfer.lpu.system import System
from twinfer.models.ops import Precision

INT8 = Precision(weights="int8", activations="fp16", kv_cache="fp16")


def test_pass_order():
    assert PASS_NAMES == ("lower", "partition", "place", "schedule", "verify")


def test_one_chip_program_has_the_semantic_ops(tsp, tiny_model):
    prog = compile_step(
        tiny_model, System(tsp, 1), phase="prefill", batch=2, seq_len=5, precision=INT8
    ).program
    ops = [i.op for i in prog.instrs]
    # Per layer: 2 norms, q/k/v/o/gate/up/down matmuls, 2 ropes, attention, silu_mul, 2 residual adds.
    assert ops.count("matmul") == 7 * 2 + 1
    assert ops.count("attention") == 2 and ops.count("rope") == 4
    assert ops[0] == "embed" and "last_rows" in ops and prog.instrs[-1].outputs == ("logits",)
    names = {i.attr("weight") for i in prog.instrs if i.op == "matmul"}
    assert "model.layers.1.mlp.down_proj.weight" in names and "lm_head.weight" in names
    assert all(i.start_cycle >= 0 for i in prog.instrs) and prog.schedule_cycles > 0


def test_tensor_split_shards_cover_each_weight_exactly_once(tiny_model):
    chip = make_tiny_chip()
    res = compile_step(
        tiny_model, System(chip, 8), phase="decode", batch=1, seq_len=8, precision=INT8
    )
    prog = res.program
    assert res.plan.tp == 2 and len(res.plan.stages) == 4
    cover: dict[str, int] = {}
    for ins in prog.instrs:
        if ins.op == "matmul":
            r0, r1 = ins.attr("rows")
            c0, c1 = ins.attr("cols")
            cover[ins.attr("weight")] = cover.get(ins.attr("weight"), 0) + (r1 - r0) * (c1 - c0)
    m = tiny_model
    assert cover["model.layers.0.self_attn.q_proj.weight"] == m.hidden_size * m.q_dim
    assert cover["model.layers.1.mlp.down_proj.weight"] == m.hidden_size * m.intermediate_size
    assert cover["lm_head.weight"] == m.hidden_size * m.vocab_size
    # Pipeline hand-offs cross racks (4 chips per rack here): some transfer takes 3 hops.
    assert max(i.attr("hops", 0) for i in prog.instrs) == 3
    assert sum(1 for i in prog.instrs if i.op == "send") == sum(
        1 for i in prog.instrs if i.op == "recv"
    )


def test_kv_heads_replicate_when_the_split_exceeds_them():
    model = make_tiny_model(num_kv_heads=1)
    chip = make_tiny_chip(sram_bytes=1 << 20)
    prog = compile_step(
        model, System(chip, 2), phase="decode", batch=1, seq_len=4, precision=INT8
    ).program
    att = [i for i in prog.instrs if i.op == "attention" and i.attr("layer") == 0]
    assert [(i.attr("kv_heads"), i.attr("kv_head_offset"), i.attr("heads")) for i in att] == [
        (1, 0, 2),
        (1, 0, 2),
    ]


def test_compilation_is_deterministic_and_serialises_losslessly(tiny_model):
    chip = make_tiny_chip()
    a = compile_step(
        tiny_model, System(chip, 8), phase="prefill", batch=2, seq_len=3, precision=INT8
    ).program
    b = compile_step(
        tiny_model, System(chip, 8), phase="prefill", batch=2, seq_len=3, precision=INT8
    ).program
    assert a.to_json() == b.to_json()
    assert Program.from_json(a.to_json()) == a


def test_sram_use_fits_and_is_reported_per_chip(tiny_model):
    chip = make_tiny_chip()
    prog = compile_step(
        tiny_model, System(chip, 8), phase="decode", batch=1, seq_len=8, precision=INT8
    ).program
    assert len(prog.sram_bytes_per_chip) == 8
    assert 0 < max(prog.sram_bytes_per_chip) <= chip.usable_sram_bytes
    weights = sum(p.num_bytes for p in prog.placements if p.kind == "weight")
    m = tiny_model
    # All int8 matrices once, plus 16-bit norms replicated on each of the 2 chips of a stage.
    matrices = m.param_count() - (2 * m.num_layers + 1) * m.hidden_size
    norms = (2 * m.num_layers + 1) * m.hidden_size * 2 * 2
    assert weights == matrices + norms


def test_too_few_chips_names_the_minimum(tiny_model):
    chip = make_tiny_chip()
    need = min_chips(tiny_model, chip, INT8, batch=1, ctx=8, tokens=1).chips_used
    with pytest.raises(CapacityError, match=f"at least {need} chips"):
        compile_step(
            tiny_model, System(chip, need - 1), phase="decode", batch=1, seq_len=8, precision=INT8
        )
    ok = compile_step(
        tiny_model, System(chip, need), phase="decode", batch=1, seq_len=8, precision=INT8
    )
    assert ok.plan.chips_used == need


def test_chunked_prefill_pipelines_across_stages(tiny_model):
    chip = make_tiny_chip(sram_bytes=1 << 20)
    system = System(chip, 8)
    whole = compile_step(tiny_model, system, phase="prefill", batch=1, seq_len=1000, precision=INT8)
    chunked = compile_step(tiny_model, system, phase="prefill", batch=1, seq_len=1000, precision=INT8,
                           plan=whole.plan, prefill_chunk=400).program
    att = [i for i in chunked.instrs if i.op == "attention" and i.attr("layer") == 0 and i.chip == 2]
    assert [(i.attr("pos_offset"), i.attr("shape")[0]) for i in att] == [(0, 400), (400, 400), (800, 200)]
    rows = next(i for i in chunked.instrs if i.op == "last_rows")
    assert (rows.attr("batch"), rows.attr("seq_len")) == (1, 200)
    # Pipelining: the layer-1 stage (chips 4-5) starts on chunk 0 before the layer-0 stage (chips 2-3)
    # has finished all chunks.
    assert [s.first_block for s in whole.plan.stages] == [0, 1, 2, 3]
    layer1_start = min(i.start_cycle for i in chunked.instrs if i.chip in (4, 5) and i.op == "rmsnorm")
    layer0_end = max(i.end_cycle for i in chunked.instrs if i.chip in (2, 3))
    assert layer1_start < layer0_end
    assert chunked.schedule_cycles < whole.program.schedule_cycles
    assert chunked.get_meta("prefill_chunk") == 400


def test_chunking_applies_to_batch_one_prefill_only(tsp, tiny_model):
    prog = compile_step(tiny_model, System(tsp, 1), phase="prefill", batch=2, seq_len=8, precision=INT8,
                        prefill_chunk=4).program
    assert not any(i.attr("role") == "chunk" for i in prog.instrs)
