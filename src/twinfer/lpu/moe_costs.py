"""Cycle formulas of the MoE router, a chip's routed experts and MLA attention, shared by both cost paths.

The compiler prices instructions with them (:func:`twinfer.lpu.costs.instr_cycles`)
and the simulator's analytic estimate sums them along the same chain
(:class:`twinfer.lpu.step_cost.AnalyticLpu`), so the two cannot drift apart.
The load model (busy experts and routed rows on the busiest chip) is in
:mod:`twinfer.lpu.experts`.
"""

from __future__ import annotations

import math

from twinfer.lpu.chip import Chip
from twinfer.lpu.experts import expected_active_experts, routed_rows


def router_cycles(chip: Chip, rows: int, hidden: int, num_experts: int, top_k: int, wd: str, ad: str) -> int:
    """Gate GEMM on the MXM, then softmax/sigmoid and ``top_k`` max passes over the scores on the VXM.

    One VXM pass per pick is an assumption (a top-k by repeated arg-max).
    """
    return (chip.matmul_cycles(rows, hidden, num_experts, wd, ad)
            + chip.vxm_cycles(rows * num_experts, chip.params.vxm_ops_softmax + top_k))


def experts_cycles(chip: Chip, rows: int, hidden: int, num_experts: int, top_k: int, local_experts: int,
                   local_inter: int, wd: str, ad: str) -> int:
    """The busiest expert chip's slot: its busy experts, each over its share of the chip's routed rows.

    ``a = min(n, max(1, imbalance x n x (1 - (1 - k/E)^B)))`` of the chip's
    ``n`` experts run, each streaming ``ceil(R / a)`` of its routed rows
    ``R = min(B n, imbalance x B k n / E)`` through gate, up (MXM), SwiGLU
    (VXM), down (MXM) and the weighted accumulate (VXM).
    """
    p, n = chip.params, local_experts
    imb = p.moe_imbalance_factor
    busy = min(float(n), max(1.0, expected_active_experts(num_experts, top_k, rows, local_experts=n, imbalance=imb)))
    r = max(1, min(rows, math.ceil(routed_rows(num_experts, top_k, rows, local_experts=n, imbalance=imb) / busy)))
    one = (2 * chip.matmul_cycles(r, hidden, local_inter, wd, ad) + chip.vxm_cycles(r * local_inter, p.vxm_ops_silu_mul)
           + chip.matmul_cycles(r, local_inter, hidden, wd, ad) + chip.vxm_cycles(r * hidden, 2))
    return math.ceil(busy * one)


def mla_attention_cycles(chip: Chip, *, rows: int, heads: int, kv_lora_rank: int, qk_nope_head_dim: int,
                         qk_rope_head_dim: int, v_head_dim: int, batch: int, q_rows: int, ctx: int,
                         wd: str, ad: str) -> int:
    """MLA in the absorbed form (DeepSeek-V2 sec. 2.1.2) over ``heads`` heads of one chip.

    Rope on the q/k rope parts and the latent norm (VXM), q_nope x W_UK per
    head, attention over the cached latent + rope key (``kv_lora_rank +
    qk_rope_head_dim`` wide, one KV head), and the latent output x W_UV per head.
    """
    p, kvr, rope = chip.params, kv_lora_rank, qk_rope_head_dim
    vxm = chip.vxm_cycles(rows * kvr, p.vxm_ops_rmsnorm) + chip.vxm_cycles(rows * (heads + 1) * rope, p.vxm_ops_rope)
    absorb = (chip.matmul_cycles(rows, qk_nope_head_dim, heads * kvr, wd, ad)
              + chip.matmul_cycles(rows, kvr, heads * v_head_dim, wd, ad))
    attn = chip.attention_cycles(batch=batch, q_rows=q_rows, ctx=ctx, heads=heads, kv_heads=1,
                                 head_dim=kvr + rope, act_dtype=ad)
    return vxm + absorb + attn
