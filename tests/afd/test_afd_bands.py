"""LPU bands of AFD instances: the FFN group's chips at the band's extreme parameter sets, same chip count."""

from __future__ import annotations

from twinfer.afd.bands import afd_band_costs
from twinfer.afd.config import AfdConfig, AttentionGroup, FfnGroup
from twinfer.afd.step_cost import AfdStepCost
from twinfer.lpu.chip import param_names
from twinfer.lpu.microarch import microarch_for
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision


def test_fastest_and_slowest_sets_keep_the_instance_and_bracket_every_set():
    model = load_model("mixtral-8x7b")
    cost = AfdStepCost(model, AfdConfig(AttentionGroup("vr200", replicas=2), FfnGroup("groq3-lp30")),
                       precision=Precision(weights="fp8"))
    fast, slow = afd_band_costs(cost)
    assert fast.ffn_devices == slow.ffn_devices == cost.ffn_devices
    assert fast.resources() == slow.resources() == cost.resources()  # price, power and KV do not move
    shape = StepShape.decode([2048] * 64)
    sets = microarch_for(cost.ffn.chip.spec, param_names()).band_overrides()
    assert len(sets) >= 2
    assert fast.step_time_s(shape) < slow.step_time_s(shape)
    # Only the LPU side moves: the attention side's time is the same in both.
    assert fast.parts(shape).attention_s == slow.parts(shape).attention_s
    assert fast.parts(shape).ffn_s < slow.parts(shape).ffn_s


def test_no_band_without_lpu_chips():
    model = load_model("mixtral-8x7b")
    cost = AfdStepCost(model, AfdConfig(AttentionGroup("h100", replicas=2), FfnGroup("h100", ep=2)))
    assert afd_band_costs(cost) is None
