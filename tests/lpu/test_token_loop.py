"""The per-token costs outside the layer chain, counted by hand on a small system."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from twinfer.lpu.plan import make_plan
from twinfer.lpu.step_cost import LPU_DEFAULT_PRECISION
from twinfer.lpu.system import System
from twinfer.lpu.token_loop import token_loop_costs
from twinfer.models import load_model


def test_loop_costs_by_hand(tsp):
    model = load_model("llama-2-7b")
    chip = replace(tsp, params=replace(tsp.params, sampling_ops_per_logit=4, stage_sync_cycles=100,
                                       host_loop_s=1e-4))
    plan = make_plan(model, chip, LPU_DEFAULT_PRECISION, chips=72, batch=1, ctx=128, tokens=1)
    system = System(chip, 72)
    c = token_loop_costs(chip, system, plan, vocab=32000, seqs=1, tokens_in=1, decode=True)
    fixed_vxm, fixed_sxm = 20 + 4 + 46, 20 + 4 + 46
    # 32,000 logits = 100 vectors x 4 ops / 16 ALUs = 25 cycles; a log2(320) -> 9-step shift tree.
    assert c.sampling_cycles == 25 + fixed_vxm + 9 * (1 + fixed_sxm)
    # The last stage's first chip (64) sits in another node of the same rack: 2 hops of 0.5 us,
    # then 4 bytes serialised on a 14 GB/s link (1 cycle) + 10 deskew.
    hop = math.ceil(0.5e-6 * 900e6)
    assert c.token_return_cycles == 2 * hop + 1 + 10
    assert c.sync_cycles == 100 * len(plan.stages)
    assert c.host_s == pytest.approx(20e-6 + 1e-4 + 8 / 24e9)
    pre = token_loop_costs(chip, system, plan, vocab=32000, seqs=1, tokens_in=550, decode=False)
    assert pre.token_return_cycles == 0
