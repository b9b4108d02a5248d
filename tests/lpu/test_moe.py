"""MoE on the LPU: expected active experts (vs Monte Carlo), expert placement, routers (vs transformers),
and the compiled program's dispatch/combine over C2C and its cycle costs (vs the chip's primitives)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from executor_helpers import tiny_chip
from moe_helpers import tiny_moe_spec

from twinfer.errors import CapacityError, ConfigError
from twinfer.lpu import moe_kernels as MK
from twinfer.lpu.chip import with_params
from twinfer.lpu.costs import StepInfo, instr_cycles
from twinfer.lpu.experts import (
    choose_expert_layout,
    expected_active_experts,
    expert_shards,
    rows_per_active_expert,
)
from twinfer.lpu.passes import compile_step
from twinfer.lpu.system import System
from twinfer.models.ops import Precision

BF16 = Precision(weights="bf16", activations="fp16", kv_cache="fp16")


def _uniform_routes(rng: np.random.Generator, trials: int, tokens: int, experts: int, k: int) -> np.ndarray:
    """[trials, tokens, k] expert ids: each token picks k distinct experts uniformly."""
    return np.argsort(rng.random((trials, tokens, experts)), axis=-1)[..., :k]


@pytest.mark.parametrize(("experts", "k", "tokens"), [(8, 2, 1), (8, 2, 5), (64, 6, 16), (256, 8, 32)])
def test_expected_active_experts_matches_monte_carlo(experts, k, tokens):
    rng = np.random.default_rng(1)
    routes = _uniform_routes(rng, 3000, tokens, experts, k)
    hit = np.zeros((3000, experts), dtype=bool)
    np.put_along_axis(hit, routes.reshape(3000, -1), True, axis=1)
    distinct = hit.sum(axis=1)
    se = distinct.std() / math.sqrt(len(distinct)) + 1e-9
    assert abs(distinct.mean() - expected_active_experts(experts, k, tokens)) < 4 * se + 1e-6
    # a chip holding the first quarter of the experts
    local = hit[:, : experts // 4].sum(axis=1)
    got = expected_active_experts(experts, k, tokens, local_experts=experts // 4)
    assert abs(local.mean() - got) < 4 * (local.std() / math.sqrt(len(local))) + 1e-6
    # rows an active expert streams: routed slots of expert 0, given it is active
    slots = (routes == 0).sum(axis=(1, 2))
    active = slots > 0
    assert rows_per_active_expert(experts, k, tokens) == pytest.approx(slots[active].mean(), rel=0.05)


def test_imbalance_scales_the_hottest_chip_and_is_capped():
    base = expected_active_experts(64, 2, 4, local_experts=8)
    assert expected_active_experts(64, 2, 4, local_experts=8, imbalance=1.5) == pytest.approx(1.5 * base)
    assert expected_active_experts(8, 2, 1000, local_experts=4, imbalance=2.0) == 4.0  # never more than held
    assert expected_active_experts(256, 8, 1, imbalance=3.0) == 8.0  # never more than routed slots
    with pytest.raises(ConfigError, match=">= 1"):
        expected_active_experts(8, 2, 1, imbalance=0.9)


def test_expert_layout_rule_by_hand():
    # 4 MoE layers of 8 experts x 100 B, 250 B per chip. ep=4: 2 experts (200 B) per chip, one layer per
    # chip -> 16 chips; ep=8: 1 expert (100 B), two layers per chip -> 16 chips: a tie, the wider group wins.
    lay = choose_expert_layout(num_experts=8, expert_bytes=100, inter=96, tp=1, moe_layers=4,
                               capacity_bytes=250, workspace_bytes=0)
    assert (lay.ep, lay.layers_per_group, lay.chips_needed(4)) == (8, 2, 16)
    # an expert larger than a chip is split by its intermediate width over ep/E chips
    lay = choose_expert_layout(num_experts=8, expert_bytes=300, inter=96, tp=2, moe_layers=1,
                               capacity_bytes=250, workspace_bytes=0)
    assert (lay.ep, lay.shard_bytes) == (16, 150)
    with pytest.raises(CapacityError, match="do not fit"):
        choose_expert_layout(num_experts=2, expert_bytes=10**9, inter=8, tp=1, moe_layers=1,
                             capacity_bytes=100, workspace_bytes=0)


@pytest.mark.parametrize(("experts", "ep"), [(8, 1), (8, 4), (8, 8), (4, 8), (4, 12)])
def test_expert_shards_cover_every_expert_row_once(experts, ep):
    if ep > experts and ep % experts:
        pytest.skip("not a valid group width")
    seen = np.zeros((experts, 96), dtype=int)
    for i in range(ep):
        (e0, e1), (r0, r1) = expert_shards(experts, ep, i, 96)
        seen[e0:e1, r0:r1] += 1
    assert (seen == 1).all()


# ---- routers against transformers ----------------------------------------------------------
def test_softmax_router_matches_mixtral():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter

    cfg = transformers.MixtralConfig(hidden_size=32, num_local_experts=8, num_experts_per_tok=2)
    torch.manual_seed(0)
    router = MixtralTopKRouter(cfg)
    torch.nn.init.normal_(router.weight)
    x = torch.randn(40, 32)
    with torch.no_grad():
        logits, weights, idx = router(x)
    want = np.zeros((40, 8), np.float32)
    np.put_along_axis(want, idx.numpy(), weights.numpy(), axis=1)
    got = MK.route(logits.numpy(), top_k=2, scoring="softmax")
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_sigmoid_group_limited_router_matches_deepseek_v3():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3TopkRouter

    cfg = transformers.DeepseekV3Config(hidden_size=32, n_routed_experts=16, num_experts_per_tok=4, n_group=4,
                                        topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True)
    torch.manual_seed(0)
    router = DeepseekV3TopkRouter(cfg)
    torch.nn.init.normal_(router.weight)
    router.e_score_correction_bias.copy_(torch.randn(16) * 0.3)
    x = torch.randn(50, 32)
    with torch.no_grad():
        logits, weights, idx = router(x)
    want = np.zeros((50, 16), np.float32)
    np.put_along_axis(want, idx.numpy(), weights.numpy(), axis=1)
    got = MK.route(logits.numpy(), top_k=4, scoring="sigmoid", bias=router.e_score_correction_bias.numpy(),
                   n_group=4, topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5)
    np.testing.assert_allclose(got, want, atol=1e-5)


# ---- compiled programs ------------------------------------------------------------------------
def _moe_program(sram=200_000, chips=None, **kw):
    from twinfer.lpu.plan import make_plan

    spec = tiny_moe_spec(**kw)
    chip = tiny_chip(sram)
    plan = make_plan(spec, chip, BF16, chips=chips, batch=2, ctx=16, tokens=2)
    prog = compile_step(spec, System(chip, plan.num_chips), phase="decode", batch=2, seq_len=16, precision=BF16,
                        plan=plan).program
    return spec, chip, plan, prog


def test_experts_live_on_expert_chips_and_tokens_travel_over_c2c():
    spec, chip, plan, prog = _moe_program()
    stage_chips = {c for s in plan.stages for c in s.chips}
    expert_chips = {c for g in plan.expert_groups for c in g.chips}
    assert stage_chips.isdisjoint(expert_chips) and plan.chips_used == len(stage_chips | expert_chips)
    runs = [i for i in prog.instrs if i.op == "moe_experts"]
    assert {i.chip for i in runs} == expert_chips
    # every (layer, expert) is computed exactly once
    covered = sorted((i.attr("layer"), e) for i in runs for e in range(*i.attr("experts")))
    assert covered == [(li, e) for li in range(spec.num_layers) for e in range(8)]
    # dispatch: each expert chip receives the normalised activations [batch, hidden] from a stage chip;
    # combine: it sends [batch, hidden] back; both cost the C2C link model's serialisation
    for ins in runs:
        recvs = [i for i in prog.instrs if i.op == "recv" and i.chip == ins.chip
                 and i.outputs[0] == f"L{ins.attr('layer')}.n2"]
        assert len(recvs) == 1 and recvs[0].attr("peer") in stage_chips
        send = prog.instrs[recvs[0].attr("pair")]
        assert send.cycles == chip.c2c_cycles(2 * spec.hidden_size * 2)  # 2 rows x 64 fp16 values
        back = [i for i in prog.instrs if i.op == "send" and i.chip == ins.chip and i.inputs == ins.outputs]
        assert len(back) == 1 and back[0].attr("peer") in stage_chips


@pytest.mark.parametrize("chips", [None, 24])
def test_dispatch_and_combine_leaving_the_node_pay_the_cross_node_sync(chips):
    """A dispatch or combine between a stage chip and an expert chip of another node is a collective that
    leaves the node: it carries ``cross_node_sync_cycles``, one inside the node does not. On the tiny
    Mixtral-shaped model (2 MoE layers) each layer's dispatch and combine sit on the critical path once,
    so the decode step grows by exactly 2 layers x 2 transfers x the sync when the experts lie outside."""
    sync = 300
    spec, chip, plan, _ = _moe_program(chips=chips)
    prog, synced = (compile_step(spec, System(with_params(chip, cross_node_sync_cycles=s), plan.num_chips),
                                 phase="decode", batch=2, seq_len=16, precision=BF16, plan=plan).program
                    for s in (0, sync))
    n = chip.spec.chips_per_node
    experts = {c for g in plan.expert_groups for c in g.chips}
    moves = [i for i in synced.instrs if i.op == "send" and (i.chip in experts or i.attr("peer") in experts)]
    assert len(moves) == 2 * spec.num_layers * len(plan.expert_groups[0].chips)
    assert all(i.attr("cross_node_sync", False) == (i.chip // n != i.attr("peer") // n) for i in moves)
    leaves = any(i.chip // n != i.attr("peer") // n for i in moves)
    assert leaves == (chips == 24)  # one stage chip + 4 expert chips fit node 0; 4 stages of 4 push them out
    assert synced.schedule_cycles - prog.schedule_cycles == (2 * spec.num_layers * sync if leaves else 0)


def test_moe_plan_given_chips_fits_and_reports_the_minimum():
    spec, _, plan, _ = _moe_program(chips=None)
    _, _, plan2, prog = _moe_program(chips=plan.chips_used + 3)
    assert plan2.num_chips == plan.chips_used + 3 and prog.schedule_cycles > 0
    with pytest.raises(CapacityError, match=f"--chips {plan.chips_used}"):
        _moe_program(chips=plan.chips_used - 1 if plan.chips_used > 2 else 1)


def test_expert_cycles_follow_the_closed_form_by_hand():
    """Busiest chip: a = min(n, max(1, imbalance*n*(1-(1-k/E)^B))) experts, each on its share of the chip's
    routed rows min(B*n, imbalance*B*k*n/E), priced by the chip's own matmul and vector costs."""
    spec, chip, plan, prog = _moe_program()
    ins = next(i for i in prog.instrs if i.op == "moe_experts")
    (e0, e1), (i0, i1) = ins.attr("experts"), ins.attr("inter")
    n, ir, h = e1 - e0, i1 - i0, spec.hidden_size
    step = StepInfo("decode", 2, 16, "fp16")

    def one_expert(rows):
        p = chip.params
        return (2 * chip.matmul_cycles(rows, h, ir, "bf16") + chip.vxm_cycles(rows * ir, p.vxm_ops_silu_mul)
                + chip.matmul_cycles(rows, ir, h, "bf16") + chip.vxm_cycles(rows * h, 2))

    for tokens, imb in ((2, 1.0), (2, 1.4), (40, 1.0), (40, 1.5), (400, 1.5)):
        c = with_params(chip, moe_imbalance_factor=imb)
        busy_frac = 1 - (1 - 2 / 8) ** tokens
        busy = min(n, max(1.0, imb * n * busy_frac))
        routed = min(tokens * n, imb * tokens * 2 * n / 8)  # the busiest chip's share of the B*k slots
        rows = min(tokens, math.ceil(routed / busy))
        got = instr_cycles(ins.with_attrs(shape=(tokens, h)), c, step)
        assert got == math.ceil(busy * one_expert(rows))


def test_imbalance_lengthens_the_decode_step():
    from twinfer.lpu.plan import make_plan

    spec = tiny_moe_spec(experts=16, top_k=2)
    base = tiny_chip(400_000)
    lat = []
    for imb in (1.0, 2.0):
        chip = with_params(base, moe_imbalance_factor=imb)
        plan = make_plan(spec, chip, BF16, chips=None, batch=8, ctx=16, tokens=8)
        prog = compile_step(spec, System(chip, plan.num_chips), phase="decode", batch=8, seq_len=16,
                            precision=BF16, plan=plan).program
        lat.append(prog.schedule_cycles)
    assert lat[1] > lat[0]


def test_deepseek_shaped_model_compiles_with_mla_cache_of_latent_width():
    """MLA caches kv_lora_rank + qk_rope_head_dim values per token and layer (DeepSeek-V2 sec. 2.1)."""
    spec, chip, plan, prog = _moe_program(sram=300_000, shared=1, mla=True, first_dense=1, layers=3)
    kv = [p for p in prog.placements if p.kind == "kv"]
    assert {p.num_bytes for p in kv} == {2 * 16 * (32 + 8) * 2}  # batch x ctx x latent x fp16
    assert {p.tensor for p in kv} == {f"kv.L{li}" for li in range(3)}
    assert sum(i.op == "moe_experts" for i in prog.instrs) >= 2  # layers 1 and 2 are MoE
    assert any(i.op == "matmul" and "shared_experts" in i.attr("weight") for i in prog.instrs)
    assert any(i.op == "matmul" and i.attr("weight").endswith("mlp.gate_proj.weight") for i in prog.instrs)


def test_fp8_weights_take_one_byte():
    _, _, _, bf16 = _moe_program(sram=400_000)
    from twinfer.lpu.plan import make_plan

    spec, chip = tiny_moe_spec(), tiny_chip(400_000)
    fp8 = Precision(weights="fp8", activations="fp16", kv_cache="fp16")
    plan = make_plan(spec, chip, fp8, chips=None, batch=2, ctx=16, tokens=2)
    prog = compile_step(spec, System(chip, plan.num_chips), phase="decode", batch=2, seq_len=16, precision=fp8,
                        plan=plan).program
    experts = [p for p in prog.placements if ".experts." in p.tensor]
    assert experts and all(p.num_bytes == 96 * 64 for p in experts)  # 96 x 64 weights at 1 byte


def test_moe_mla_compile_is_deterministic():
    a = _moe_program(sram=300_000, shared=1, mla=True, first_dense=1, layers=3)[3]
    b = _moe_program(sram=300_000, shared=1, mla=True, first_dense=1, layers=3)[3]
    assert a.to_json() == b.to_json()
