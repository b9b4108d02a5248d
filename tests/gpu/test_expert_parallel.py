"""Wide expert parallelism on GPUs: per-GPU memory by hand, the step against the plain model, the decode ramp."""

from __future__ import annotations

import pytest

from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu import GpuStepCost
from twinfer.gpu.all_to_all import dispatch_bytes_per_rank
from twinfer.gpu.expert_parallel import (
    ExpertParallelStepCost,
    ep_weight_bytes_per_gpu,
    replica_shape,
)
from twinfer.models import StepShape, load_model
from twinfer.models.hf_config import spec_from_config
from twinfer.models.ops import Precision

# A tiny DeepSeek-V3-shaped model: 3 layers (the first dense), MLA, 8 routed experts top-2, 1 shared expert.
TINY = {
    "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
    "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 4096, "q_lora_rank": 0, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8, "num_experts_per_tok": 2,
    "moe_intermediate_size": 32, "n_shared_experts": 1, "first_k_dense_replace": 1,
}

# Parameters counted by hand from TINY (h = 64, 4 heads):
ATTENTION = 64 * 4 * 16 + (64 * 24 + 16) + 16 * 4 * 16 + 4 * 8 * 64  # q, kv_a (+ its norm), kv_b, o = 8,720 per layer
EXPERT = 3 * 64 * 32  # gate, up, down of one expert = 6,144
ROUTER = 64 * 8 + 8  # gate matrix + DeepSeek-V3's per-expert bias = 520
NON_EXPERT = (3 * ATTENTION + (3 * 2 * 64 + 64) + 2 * 100 * 64  # attention, norms, embedding + lm_head
              + 3 * 64 * 128  # the one dense FFN layer
              + 2 * (EXPERT + ROUTER))  # the 2 MoE layers' shared expert and router
ROUTED_PER_LAYER = 8 * EXPERT


@pytest.fixture(scope="module")
def tiny():
    return spec_from_config(TINY, name="tiny-moe")


def test_per_gpu_memory_by_hand(tiny):
    """Each GPU holds every non-expert weight and ceil(8 / ep) experts per MoE layer; KV is its replica's, whole."""
    assert tiny.param_count() == NON_EXPERT + 2 * ROUTED_PER_LAYER  # the hand count covers the whole model
    for ep, mine in ((4, 2), (3, 3), (8, 1)):
        assert ep_weight_bytes_per_gpu(tiny, 1, ep, "bf16") == (NON_EXPERT + 2 * mine * EXPERT) * 2
    assert ep_weight_bytes_per_gpu(tiny, 2, 4, "fp8") == (NON_EXPERT + 2 * 2 * EXPERT) / 2
    cost = ExpertParallelStepCost(tiny, "h100", ep=4)
    assert cost.memory.weight_bytes == (NON_EXPERT + 2 * 2 * EXPERT) * 2
    assert cost.memory.kv_bytes_per_token == 3 * (16 + 8) * 2  # MLA latent + rope key, 3 layers, bf16
    res = cost.resources()
    assert res.num_devices == 4
    assert res.kv_capacity_tokens == 4 * int(cost.memory.kv_free_bytes // cost.memory.kv_bytes_per_token)


def test_deepseek_v3_kv_is_mla_sized():
    """DeepSeek-V3 caches 61 x (512 + 64) bf16 = 70,272 B per token, on every GPU of an EP replica."""
    cost = ExpertParallelStepCost(load_model("deepseek-v3"), "vr200", ep=8, precision=Precision(weights="fp8"))
    assert cost.memory.kv_bytes_per_token == 70_272


def test_replica_share_of_a_step():
    """13 decode sequences over 4 replicas: the busiest holds 4, with the average context rounded up."""
    shape = StepShape.decode([100] * 12 + [113])
    rep = replica_shape(shape, 4)
    assert (rep.decode_seqs, rep.decode_context_tokens) == (4, 404)  # ceil(1313 x 4 / 13)
    one_prompt = replica_shape(StepShape.prefill([500]), 4)
    assert (one_prompt.prefill_seqs, one_prompt.prefill_tokens) == (1, 500)  # a sequence is never split
    assert replica_shape(shape, 1) is shape


def test_one_rank_is_the_plain_model():
    """ep=1 prices exactly what GpuStepCost prices (same routed-expert GEMMs, no all-to-all)."""
    model = load_model("mixtral-8x7b")
    plain, ep1 = GpuStepCost(model, "h100", tp=2), ExpertParallelStepCost(model, "h100", tp=2, ep=1)
    for shape in (StepShape.decode([1000] * 32), StepShape.prefill([512, 300])):
        assert ep1.step_time_s(shape) == pytest.approx(plain.step_time_s(shape), rel=1e-12)
    assert ep1.memory.weight_bytes == plain.memory.weight_bytes


def test_dispatch_volume_and_imbalance_on_deepseek():
    """FP8 DeepSeek dispatches tokens x 8 x 7168 x 1 B x 7/8 per replica and combines in bf16 (2 B); imbalance 2 doubles both."""
    model, prec = load_model("deepseek-v3"), Precision(weights="fp8")
    shape = StepShape.decode([2048] * 64)
    even = {o.name: o for o in ExpertParallelStepCost(model, "vr200", ep=8, precision=prec).op_times(shape)}
    hot_cost = ExpertParallelStepCost(model, "vr200", ep=8, expert_imbalance=2.0, precision=prec)
    hot = {o.name: o for o in hot_cost.op_times(shape)}
    assert even["ep_dispatch"].bytes_moved == 8 * 8 * 7168 * 1 * 7 / 8  # 8 sequences per replica, fp8
    assert even["ep_combine"].bytes_moved == 8 * 8 * 7168 * 2 * 7 / 8  # bf16
    assert even["ep_combine"].bytes_moved == dispatch_bytes_per_rank(8, 8, 7168, 2, 8)
    assert hot["ep_dispatch"].bytes_moved == 2 * even["ep_dispatch"].bytes_moved
    assert hot["ep_combine"].bytes_moved == 2 * even["ep_combine"].bytes_moved
    fp4 = {o.name: o for o in ExpertParallelStepCost(model, "vr200", ep=8, precision=Precision(weights="fp4")).op_times(shape)}
    assert fp4["ep_dispatch"].bytes_moved == even["ep_dispatch"].bytes_moved  # fp4 weights: also an 8-bit dispatch
    bf16 = {o.name: o for o in ExpertParallelStepCost(model, "vr200", ep=8).op_times(shape)}
    assert bf16["ep_dispatch"].bytes_moved == even["ep_combine"].bytes_moved  # bf16 weights: bf16 both ways
    # Expert rows on the hottest rank: imbalance x 64 x 8 / 8 (token, expert) pairs, padded to whole rows per expert.
    per_row = 2 * 7168 * 2 * 2048  # up-projection FLOPs of one row (gate and up fused)
    for cost_ops, pairs in ((even, 64), (hot, 128)):
        rows = cost_ops["moe_up_proj"].flops / per_row
        assert pairs <= rows < pairs + 32  # at most one padded row per local expert (256 / 8 = 32 of them)
    assert hot_cost.step_time_s(shape) > ExpertParallelStepCost(model, "vr200", ep=8, precision=prec).step_time_s(shape)
    assert even["ep_dispatch"].repeat == model.num_moe_layers == 58


def test_wider_ep_reads_fewer_expert_weights_per_gpu():
    """At a small decode batch the step reads expert weights; spreading them over more GPUs shortens it."""
    model, prec = load_model("deepseek-v3"), Precision(weights="fp8")
    shape = StepShape.decode([2048] * 16)
    times = [ExpertParallelStepCost(model, "vr200", ep=ep, precision=prec).step_time_s(shape) for ep in (4, 8, 16)]
    assert times[0] > times[1] > times[2]


def test_decode_ramp_matches_the_steps():
    """decode_run_affine's dt0 is step_time_s bit for bit, and the ramp holds for an uneven split (13 over 4)."""
    cost = ExpertParallelStepCost(load_model("deepseek-v3"), "vr200", ep=4, precision=Precision(weights="fp8"))
    seqs, ctx = 13, 13 * 1000 + 7
    dt0, slope, valid = cost.decode_run_affine(seqs, ctx)
    assert dt0 == cost.step_time_s(StepShape(decode_seqs=seqs, decode_context_tokens=ctx))
    for j in range(1, min(valid, 50)):
        shape = StepShape(decode_seqs=seqs, decode_context_tokens=ctx + seqs * j)
        assert cost.step_time_s(shape) == pytest.approx(dt0 + slope * j, rel=1e-9)


def test_bad_layouts_are_clear_errors(tiny):
    """Dense models, imbalance below 1 and weights that do not fit name the fix."""
    with pytest.raises(ConfigError, match="MoE models only"):
        ExpertParallelStepCost(load_model("llama-3-8b"), "h100", ep=2)
    with pytest.raises(ConfigError, match=">= 1.0"):
        ExpertParallelStepCost(tiny, "h100", ep=2, expert_imbalance=0.5)
    with pytest.raises(ConfigError, match="set pp to 1"):
        ExpertParallelStepCost(tiny, "h100", ep=2, pp=2)
    with pytest.raises(CapacityError, match="larger --ep"):
        ExpertParallelStepCost(load_model("deepseek-v3"), "h100", ep=2, precision=Precision(weights="fp8"))


def test_more_ranks_than_experts_is_a_clear_error():
    """Mixtral has 8 routed experts: 16 EP ranks would leave ranks without a whole expert."""
    import pytest

    from twinfer.errors import ConfigError
    from twinfer.gpu.expert_parallel import ExpertParallelStepCost
    from twinfer.models import load_model

    with pytest.raises(ConfigError, match="ep <= 8"):
        ExpertParallelStepCost(load_model("mixtral-8x7b"), "h100", tp=1, ep=16)
