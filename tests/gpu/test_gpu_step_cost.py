"""GpuStepCost: monotonicity, memory arithmetic by hand, the step-cost protocol, errors."""

from __future__ import annotations

import pytest

from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu import GpuStepCost
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision
from twinfer.perf import StepCostModel, make_step_cost


@pytest.fixture
def llama70b_tp8() -> GpuStepCost:
    """Llama-3-70B on 8 x H100, bf16."""
    return GpuStepCost(load_model("llama-3-70b"), "h100", tp=8)


def test_implements_protocol_and_factory(llama70b_tp8):
    """GpuStepCost is a StepCostModel, and make_step_cost builds one for a GPU preset."""
    assert isinstance(llama70b_tp8, StepCostModel)
    made = make_step_cost(load_model("llama-3-8b"), "h100", tp=1)
    assert isinstance(made, GpuStepCost)


def test_more_prefill_tokens_never_faster(llama70b_tp8):
    """Prefill time is non-decreasing in prompt length and in batch size."""
    times = [llama70b_tp8.step_time_s(StepShape.prefill([n])) for n in range(1, 8193, 97)]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    batch = [llama70b_tp8.step_time_s(StepShape.prefill([512] * b)) for b in range(1, 33)]
    assert all(b >= a for a, b in zip(batch, batch[1:], strict=False))


def test_longer_context_decode_never_faster(llama70b_tp8):
    """Decode time is non-decreasing in context length and in batch size."""
    ctx = [llama70b_tp8.step_time_s(StepShape.decode([c] * 16)) for c in range(1, 32768, 511)]
    assert all(b >= a for a, b in zip(ctx, ctx[1:], strict=False))
    seqs = [llama70b_tp8.step_time_s(StepShape.decode([2048] * b)) for b in range(1, 257, 5)]
    assert all(b >= a for a, b in zip(seqs, seqs[1:], strict=False))


def test_small_decode_is_bounded_by_weight_reads():
    """Batch-1 decode of Llama-3-8B bf16 on one H100 is at least 16 GB / 3.35 TB/s and at most 2x that."""
    cost = GpuStepCost(load_model("llama-3-8b"), "h100")
    spec = load_model("llama-3-8b")
    floor = spec.param_count() * 2 / 3.35e12
    t = cost.step_time_s(StepShape.decode([1024]))
    assert floor < t < 2 * floor


def test_large_prefill_is_bounded_by_flops():
    """An 8k-token Llama-3-8B prefill is at least 2 x params x tokens / 989 TF, and within 2x of it."""
    spec = load_model("llama-3-8b")
    cost = GpuStepCost(spec, "h100")
    floor = 2 * spec.param_count() * 8192 / 989e12
    t = cost.step_time_s(StepShape.prefill([8192]))
    assert floor < t < 2 * floor


def test_tensor_parallel_speeds_up_and_adds_all_reduce(llama70b_tp8):
    """TP=8 is faster than TP=4 for a big prefill, and its breakdown has 2 all-reduces per layer."""
    tp4 = GpuStepCost(load_model("llama-3-70b"), "h100", tp=4)
    shape = StepShape.prefill([2048] * 4)
    assert llama70b_tp8.step_time_s(shape) < tp4.step_time_s(shape)
    ops = {o.name: o for o in llama70b_tp8.op_times(shape)}
    assert ops["all_reduce"].repeat == 2 * 80


def test_cached_step_time_equals_breakdown_sum(llama70b_tp8):
    """The fast path (cache + attention closed form) equals the op-by-op sum, mixed batches included."""
    shape = StepShape.prefill([700, 300], cached_lens=[0, 1000]) + StepShape.decode([100, 5000, 20000])
    by_ops = sum(o.total_s for o in llama70b_tp8.op_times(shape))
    assert llama70b_tp8.step_time_s(shape) == pytest.approx(by_ops, rel=1e-9)
    # A fresh, uncached instance gives the same value as the one whose caches are now warm.
    fresh = GpuStepCost(load_model("llama-3-70b"), "h100", tp=8)
    assert fresh.step_time_s(shape) == llama70b_tp8.step_time_s(shape)


def test_memory_arithmetic_by_hand(llama70b_tp8):
    """KV capacity = (0.9 x 80 GB - weights/8 - workspace) / (327,680 B / 8), workspace between 1 and 4 GB."""
    spec = load_model("llama-3-70b")
    weights_per_gpu = spec.param_count() * 2 / 8
    kv_per_token_per_gpu = 327_680 / 8
    res = llama70b_tp8.resources()
    hi = (0.9 * 80e9 - weights_per_gpu - 1.0 * 2**30) / kv_per_token_per_gpu
    lo = (0.9 * 80e9 - weights_per_gpu - 4e9) / kv_per_token_per_gpu
    assert lo < res.kv_capacity_tokens <= hi
    assert res.num_devices == 8 and res.hardware == "h100-sxm"
    assert res.price_per_hour_usd == pytest.approx(8 * 2.99)
    assert res.power_max_w == 8 * 700


def test_kv_heads_replicated_beyond_their_count():
    """Llama-3-8B has 8 KV heads: at TP=16 or 32 each GPU still holds one head, so per-GPU KV is 1/8, not 1/tp."""
    spec = load_model("llama-3-8b")
    one_head = 1 * 128 * 2 * 32 * 2  # heads x head_dim x (K, V) x layers x bf16 bytes = 16,384 B per token
    for tp in (8, 16, 32):
        assert GpuStepCost(spec, "h100", tp=tp).memory.kv_bytes_per_token == one_head


def test_does_not_fit_raises_capacity_error_with_gb():
    """Llama-3-70B bf16 (141 GB) on one H100 raises CapacityError saying how many GB are missing."""
    with pytest.raises(CapacityError, match=r"by \d+\.\d GB.*--tp"):
        GpuStepCost(load_model("llama-3-70b"), "h100", tp=1)


def test_fp8_halves_weights_and_fits():
    """FP8 weights: Llama-3-70B fits on 2 x H100 and the per-GPU weights are params / 2 bytes."""
    spec = load_model("llama-3-70b")
    cost = GpuStepCost(spec, "h100", tp=2, precision=Precision(weights="fp8", kv_cache="fp8"))
    assert cost.memory.weight_bytes == pytest.approx(spec.param_count() / 2)
    assert cost.resources().kv_capacity_tokens > 0


def test_lpu_and_bad_tp_are_config_errors():
    """An LPU preset or a TP that does not divide the heads is a ConfigError."""
    with pytest.raises(ConfigError, match="LPU"):
        GpuStepCost(load_model("llama-3-8b"), "groq-tsp-v1")
    with pytest.raises(ConfigError, match="tp=3"):
        GpuStepCost(load_model("llama-3-8b"), "h100", tp=3)


def test_moe_and_mla_models_run():
    """Mixtral (MoE) and DeepSeek-V3 (MLA + MoE) produce positive, finite step times."""
    spec = load_model("mixtral-8x7b")
    mix = GpuStepCost(spec, "h100", tp=2)
    # Roofline floor per GPU of 1,032 tokens: 2 x active params x tokens / tp at 989 TF, or all
    # weights (every expert is touched by 1,032 tokens) / tp at 3.35 TB/s. Expert GEMMs of ~258
    # rows each run far from peak and their weight loads do not overlap, so allow up to 3x.
    floor = max(2 * spec.active_param_count() * 1032 / 2 / 989e12, spec.param_count() * 2 / 2 / 3.35e12)
    assert floor < mix.step_time_s(StepShape.prefill([1024]) + StepShape.decode([512] * 8)) < 3 * floor
    ds = GpuStepCost(load_model("deepseek-v3"), "h200", tp=8, precision=Precision(weights="fp8"))
    shape = StepShape.prefill([512]) + StepShape.decode([4096] * 4)
    assert ds.step_time_s(shape) == pytest.approx(sum(o.total_s for o in ds.op_times(shape)), rel=1e-9)


def test_decode_run_affine_reproduces_step_time_along_the_ramp() -> None:
    # The simulator applies decode runs in closed form from this ramp; any drift from
    # step_time_s would make fast and plain simulation paths disagree.
    import random

    from twinfer.gpu.step_cost import GpuStepCost
    from twinfer.hardware import get_hardware
    from twinfer.models import StepShape, load_model

    def decode(n: int, ctx: int) -> StepShape:
        return StepShape.decode([ctx // n] * (n - 1) + [ctx - (ctx // n) * (n - 1)])

    from twinfer.models.ops import Precision

    crossings = 0
    for model, gpu, tp in (("llama-3-70b", "h100", 4), ("mixtral-8x7b", "h200", 2), ("deepseek-v3", "h200", 8)):
        # GQA decode attention is memory-bound throughout; MLA's absorbed attention starts
        # compute-bound at short contexts and turns memory-bound: ramps that end.
        cost = GpuStepCost(load_model(model), get_hardware(gpu), tp=tp, precision=Precision(weights="fp8"))
        rng = random.Random(0)
        for _ in range(300):
            n = rng.randint(1, 256)
            ctx = n * int(2 ** rng.uniform(0, 13))
            dt0, slope, valid = cost.decode_run_affine(n, ctx)
            assert dt0 == cost.step_time_s(decode(n, ctx))  # the first step bit for bit
            assert slope >= 0.0
            for j in sorted({1, 7, 100, valid - 1} & set(range(1, min(valid, 2000)))):
                assert dt0 + slope * j == pytest.approx(cost.step_time_s(decode(n, ctx + j * n)), rel=1e-12)
            if valid < 2000:  # the other roofline term takes over: the next step leaves the ramp
                crossings += 1
                assert dt0 + slope * valid < cost.step_time_s(decode(n, ctx + valid * n)) * (1 - 1e-12)
    assert 10 < crossings < 900
