"""AfdStepCost: the step by hand on a tiny instance, the plain GPU step as its limit, KV and price by group."""

from __future__ import annotations

import pytest

from twinfer.afd.config import AfdConfig, AttentionGroup, FfnGroup
from twinfer.afd.step_cost import AfdStepCost
from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu import GpuStepCost
from twinfer.hardware import get_hardware
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision


def test_step_time_by_hand(tiny_moe, links):
    """2 replicas, 2 micro-batches, a GPU FFN group of 2 ranks, fixed per-layer times: the closed form by hand."""
    cfg = AfdConfig(AttentionGroup("h100", replicas=2), FfnGroup("h100", ep=2), link="test-link", micro_batches=2)
    cost = AfdStepCost(tiny_moe, cfg, expert_imbalance=1.5, extra_hardware=links)
    cost.attention.crossing_layer_s = lambda shape: 4e-6  # type: ignore[method-assign]
    cost.attention.staying_layers_s = lambda shape: 10e-6  # type: ignore[method-assign]
    cost.attention.once_s = lambda shape: 1e-6  # type: ignore[method-assign]
    cost.ffn.layer_s = lambda tokens: 3e-6  # type: ignore[method-assign]
    # 8 decode sequences -> micro-batches of 4 tokens -> 2 tokens per replica. bf16: 2 bytes per element.
    # Sent by a replica: 2 tokens x top-2 x 64 x 2 B = 512 B. Received by the hottest FFN GPU:
    # 1.5 x (4 x 2 x 64 x 2 B) / 2 GPUs = 768 B, the larger: d = c = 1 us + 768 B / 1 GB/s = 1.768 us.
    # R = 4 + 1.768 + 3 + 1.768 = 10.536 us, T = 4 us, m*T = 8 us < R: cycle-bound over the 2 MoE layers:
    # R + (m-1) T + (L-1) R = 10.536 + 4 + 10.536 = 25.072 us; + dense layer 10 us + once 1 us = 36.072 us.
    shape = StepShape.decode([100] * 8)
    parts = cost.parts(shape)
    assert parts.dispatch_s == pytest.approx(1.768e-6)
    assert parts.combine_s == pytest.approx(1.768e-6)
    assert cost.step_time_s(shape) == pytest.approx(36.072e-6)


def test_fp8_models_dispatch_one_byte(tiny_moe, links):
    """With 8-bit weights the dispatch sends 1-byte elements and the combine returns bf16 (DeepEP's convention)."""
    cfg = AfdConfig(AttentionGroup("h100"), FfnGroup("groq3-lp30"), link="test-link", micro_batches=1)
    cost = AfdStepCost(tiny_moe, cfg, precision=Precision(weights="fp8"), extra_hardware=links)
    parts = cost.parts(StepShape.decode([50] * 4))
    # 4 tokens x 2 x 64: 512 B out (1 us + 0.512 us), 1,024 B back (1 us + 1.024 us); LPU side: the sender bounds.
    assert parts.dispatch_s == pytest.approx(1.512e-6)
    assert parts.combine_s == pytest.approx(2.024e-6)


def test_dense_afd_without_link_cost_is_the_plain_gpu_step(links):
    """Attention and FFN on one H100 each, an ideal link, one micro-batch: the same kernels as the plain step."""
    model = load_model("llama-3-8b")
    cfg = AfdConfig(AttentionGroup("h100"), FfnGroup("h100"), link="ideal", micro_batches=1)
    afd = AfdStepCost(model, cfg, extra_hardware=links)
    plain = GpuStepCost(model, "h100")
    for shape in (StepShape.decode([1000] * 16), StepShape.decode([30, 4000, 700])):
        assert afd.step_time_s(shape) == pytest.approx(plain.step_time_s(shape), rel=1e-9)


def test_micro_batches_pay_only_when_the_groups_balance():
    """Mixtral on 4 + 4 H100s: two micro-batches overlap attention with the experts at 512 sequences, but at 64 the
    experts are bound by reading their weights, which every micro-batch reads again, so splitting only adds time."""
    model = load_model("mixtral-8x7b")

    def step(seqs: int, m: int) -> float:
        cfg = AfdConfig(AttentionGroup("h100", replicas=4), FfnGroup("h100", ep=4), link="nvlink4", micro_batches=m)
        return AfdStepCost(model, cfg, max_batch_seqs=1024).step_time_s(StepShape.decode([2000] * seqs))

    assert step(512, 2) < step(512, 1)
    assert step(64, 2) > step(64, 1)


def test_kv_price_and_power_by_group(tiny_moe):
    """KV room comes from the attention replicas only; price and power add both groups."""
    cfg = AfdConfig(AttentionGroup("h100", replicas=3, tp=2), FfnGroup("h200", ep=2, tp=2))
    res = AfdStepCost(tiny_moe, cfg).resources()
    h100, h200 = get_hardware("h100"), get_hardware("h200")
    assert res.num_devices == 6 + 4
    assert res.hardware == "h100-sxm+h200"
    assert res.price_per_hour_usd == pytest.approx(6 * h100.price_per_hour_usd + 4 * h200.price_per_hour_usd)
    assert res.power_max_w == pytest.approx(6 * h100.power_max_w + 4 * h200.power_max_w)
    # Attention GPUs hold every weight but the 2 MoE layers' 8 routed experts (3 x 64 x 32 each), bf16, over tp=2.
    cost = AfdStepCost(tiny_moe, cfg)
    routed = 2 * 8 * 3 * 64 * 32
    assert cost.attention.memory.weight_bytes == (tiny_moe.param_count() - routed) * 2 / 2
    per_replica = int(cost.attention.memory.kv_free_bytes // cost.attention.memory.kv_bytes_per_token)
    assert res.kv_capacity_tokens == 3 * per_replica


def test_lpu_ffn_group_sizes_itself_and_refuses_too_few_chips():
    """DeepSeek-V3 fp8 experts need ~24 LP30 chips per MoE layer; one chip fewer than the fewest is refused."""
    model = load_model("deepseek-v3")
    cfg = AfdConfig(AttentionGroup("vr200", replicas=8), FfnGroup("groq3-lp30"))
    cost = AfdStepCost(model, cfg, precision=Precision(weights="fp8"))
    least = cost.ffn_devices
    # 58 MoE layers x 256 experts x 3 x 7168 x 2048 fp8 bytes = 654 GB over ~0.46 GB free per chip: 20-30 a layer.
    assert least % 58 == 0 and 20 <= least // 58 <= 30
    with pytest.raises(CapacityError, match=f"ffn.chips >= {least}"):
        AfdStepCost(model, AfdConfig(cfg.attention, FfnGroup("groq3-lp30", chips=least - 1)),
                    precision=Precision(weights="fp8"))


def test_bad_groups_are_refused(tiny_moe):
    with pytest.raises(ConfigError, match="attention.hardware"):
        AfdStepCost(tiny_moe, AfdConfig(AttentionGroup("groq3-lp30"), FfnGroup("h100")))
    with pytest.raises(ConfigError, match="ffn.chips"):
        AfdStepCost(tiny_moe, AfdConfig(AttentionGroup("h100"), FfnGroup("h100", chips=4)))
    with pytest.raises(ConfigError, match="not ep/tp"):
        AfdStepCost(tiny_moe, AfdConfig(AttentionGroup("h100"), FfnGroup("groq3-lp30", ep=4)))
