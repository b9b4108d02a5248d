"""The simulator's LPU backend on a given chip count: the layout keeps KV room for a full compiled batch."""

from __future__ import annotations

import pytest

from twinfer.errors import CapacityError
from twinfer.hardware import get_hardware
from twinfer.lpu.chip import make_chip
from twinfer.lpu.layout import search_layouts
from twinfer.lpu.plan import kv_capacity_tokens, make_plan
from twinfer.lpu.step_cost import LpuStepCost
from twinfer.models import load_model
from twinfer.models.ops import Precision

INT8 = Precision(weights="int8", activations="fp16", kv_cache="fp16")


def test_on_576_chips_llama_70b_keeps_room_for_its_batch_not_just_the_fastest_layout():
    """Weights alone, the fastest layout leaves 5k tokens of KV; the backend picks one holding 8 x 4,096."""
    model, tsp = load_model("llama-3.3-70b"), make_chip(get_hardware("groq-tsp-v1"))
    fastest, _ = search_layouts(model, tsp, INT8, chips=576, batch=1, ctx=1, tokens=8)
    cost = LpuStepCost(model, get_hardware("groq-tsp-v1"), chips=576, precision=INT8, max_batch_seqs=8)
    with pytest.raises(CapacityError):  # 8 x 8,192 tokens do not fit on 576 chips, so the context is halved
        make_plan(model, tsp, INT8, chips=576, batch=8, ctx=8192, tokens=8)
    assert cost.resources().kv_capacity_tokens >= 8 * 4096 > kv_capacity_tokens(model, tsp, fastest, INT8)
    assert cost.resources().num_devices == 576


def test_on_few_chips_the_context_halves_until_a_layout_holds_the_batch():
    """On the fewest chips that hold Llama-3-8B, the longest halving of 8,192 with room for 8 sequences."""
    model, spec = load_model("llama-3-8b"), get_hardware("groq-tsp-v1")
    tsp = make_chip(spec)
    fewest = make_plan(model, tsp, INT8, chips=None, batch=1, ctx=1, tokens=1).num_chips

    def fits(ctx: int) -> bool:
        try:
            make_plan(model, tsp, INT8, chips=fewest, batch=8, ctx=ctx, tokens=8)
            return True
        except CapacityError:
            return False

    longest = next(c for c in (8192 >> i for i in range(14)) if fits(c))
    assert longest < 8192
    cost = LpuStepCost(model, spec, chips=fewest, precision=INT8, max_batch_seqs=8)
    assert cost.resources().num_devices == fewest
    assert cost.resources().kv_capacity_tokens >= 8 * longest


def test_chips_that_only_hold_the_weights_still_give_a_backend():
    """No room for a token per sequence of a huge batch: the fastest layout for the weights alone is used."""
    model, spec = load_model("llama-3-8b"), get_hardware("groq-tsp-v1")
    tsp = make_chip(spec)
    fewest = make_plan(model, tsp, INT8, chips=None, batch=1, ctx=1, tokens=1).num_chips
    alone, _ = search_layouts(model, tsp, INT8, chips=fewest, batch=1, ctx=1, tokens=100_000)
    cost = LpuStepCost(model, spec, chips=fewest, precision=INT8, max_batch_seqs=100_000)
    assert cost.resources().kv_capacity_tokens == kv_capacity_tokens(model, tsp, alone, INT8) < 100_000


def test_the_chips_asked_for_are_paid_for_even_when_the_layout_leaves_some_idle():
    """Llama-3.1-8B on 300 TSP chips lays out on fewer; the system's price and idle power count all 300."""
    spec = get_hardware("groq-tsp-v1")
    cost = LpuStepCost(load_model("llama-3.1-8b"), spec, chips=300, precision=INT8)
    used = cost.plan.chips_used
    res = cost.resources()
    assert used < 300 and res.num_devices == 300
    assert res.price_per_hour_usd == pytest.approx(300 * spec.price_per_hour_usd)
    assert res.power_idle_w == pytest.approx(300 * spec.power_idle_w)
    assert res.power_max_w == pytest.approx(used * spec.power_max_w + (300 - used) * spec.power_idle_w)
