"""The FFN group: the LPU expert load by hand from uniform routing, and GPU experts priced as wide EP prices them."""

from __future__ import annotations

import pytest

from twinfer.afd.ffn import GpuFfnGroup, LpuFfnGroup
from twinfer.gpu.expert_parallel import ExpertParallelStepCost
from twinfer.hardware import get_hardware
from twinfer.models.ops import Precision


def test_lpu_experts_by_hand(tiny_moe):
    """One chip per MoE layer holds all 8 experts (64 wide in, 32 wide): 4 tokens top-2 keep 8 (1 - (6/8)^4) = 5.47
    experts busy (6 run) with 4 x 2 / 6 = 1.33 rows each (2 streamed); each runs gate, up, SiLU x up, down."""
    prec = Precision(weights="fp8", activations="fp8", kv_cache="bf16")
    group = LpuFfnGroup(tiny_moe, get_hardware("groq3-lp30"), chips=2, precision=prec, max_tokens=4)
    assert group.chips_per_layer == 1  # 2 MoE layers on 2 chips
    c = group.chip
    per_expert = (2 * c.matmul_cycles(2, 64, 32, "fp8", "fp8") + c.vxm_cycles(2 * 32, c.params.vxm_ops_silu_mul)
                  + c.matmul_cycles(2, 32, 64, "fp8", "fp8"))
    assert group.layer_s(4) == pytest.approx(6 * per_expert / c.spec.clock_hz)


def test_gpu_experts_are_priced_as_wide_ep_prices_its_hottest_rank(tiny_moe):
    ep = ExpertParallelStepCost(tiny_moe, "h100", ep=4, expert_imbalance=1.3)
    group = GpuFfnGroup(tiny_moe, get_hardware("h100"), ep=4, tp=1, precision=Precision(), expert_imbalance=1.3)
    experts = [o for o in ep.moe_op_times(96, 24) if o.name in ("moe_up_proj", "moe_act", "moe_down_proj")]
    assert group.layer_s(96) == pytest.approx(sum(o.time_s for o in experts))
