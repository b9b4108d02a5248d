"""Every backend make_step_cost builds prices the extra query tokens of multi-token decode steps."""

from __future__ import annotations

import pytest

from twinfer.models import load_model
from twinfer.models.step import StepShape
from twinfer.perf import make_step_cost


@pytest.mark.parametrize("hardware", ["h100", "groq-tsp-v1"])  # a GPU (roofline) and an LPU (cycle model)
def test_a_two_token_decode_step_costs_more_than_one_token_and_less_than_twice_the_batch(hardware):
    cost = make_step_cost(load_model("llama-3-8b"), hardware)
    one = cost.step_time_s(StepShape.decode([1000] * 8))
    # the same 8 sequences verifying one draft each: 16 query tokens, contexts one token longer
    two = cost.step_time_s(StepShape.decode([1001] * 8, tokens_per_seq=2))
    # 16 sequences of one token each: the same 16 tokens through every projection, twice the KV to read
    wide = cost.step_time_s(StepShape.decode([1001] * 16))
    assert one < two < wide
