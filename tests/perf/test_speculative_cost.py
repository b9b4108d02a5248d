"""A speculative pool's step cost: the target's verify step plus the drafter's proposals, and the drafter's memory.

References are counted by hand on linear fake backends, and the drafter's memory is checked by
conservation: what the draft model takes (weights, and its KV per token) is what the target loses.
"""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.perf.speculative import SpeculativeConfig
from twinfer.perf.speculative_cost import SpeculativeStepCost, draft_kv_capacity


class Linear:
    """Step time = fixed + per_token x tokens through the projections."""

    def __init__(self, fixed_s: float, per_token_s: float) -> None:
        self.fixed_s, self.per_token_s = fixed_s, per_token_s

    def step_time_s(self, shape: StepShape) -> float:
        return self.fixed_s + self.per_token_s * shape.total_tokens

    def resources(self) -> InstanceResources:
        return InstanceResources("fake", 1, 10_000, 64, 1.0, 100.0, 500.0)


TARGET, DRAFT = Linear(0.01, 0.001), Linear(0.002, 0.0001)
VERIFY = StepShape.decode([100, 200], tokens_per_seq=4)  # 2 sequences verifying k = 3 drafts


def test_a_draft_model_runs_k_decode_steps_before_the_verify():
    model = SpeculativeStepCost(TARGET, SpeculativeConfig.build("draft", 3, 0.7, "llama-3.1-8b"), DRAFT)
    # target: 10 ms + 8 tokens; drafter: 3 decode steps of 2 sequences, 2 ms + 2 tokens each
    assert model.step_time_s(VERIFY) == pytest.approx(0.010 + 0.008 + 3 * (0.002 + 0.0002))


def test_the_drafter_also_prefills_the_steps_prompt_chunks():
    model = SpeculativeStepCost(TARGET, SpeculativeConfig.build("draft", 2, 0.7, "llama-3.1-8b"), DRAFT)
    mixed = StepShape.prefill([50]) + StepShape.decode([100], tokens_per_seq=3)
    # target: 10 ms + 53 tokens; drafter: its first step with the 50-token chunk (51 tokens), then 1 token
    assert model.step_time_s(mixed) == pytest.approx(0.010 + 0.053 + (0.002 + 0.0051) + (0.002 + 0.0001))
    assert model.step_time_s(StepShape.prefill([50])) == pytest.approx(0.010 + 0.050 + 0.002 + 0.005)


def test_heads_cost_a_fraction_of_the_targets_plain_decode_step():
    heads = SpeculativeStepCost(TARGET, SpeculativeConfig.build("mtp", 3, 0.7), 1 / 10)
    # an MTP head: a tenth of the target's plain decode step (10 ms + 2 tokens) per proposal
    assert heads.step_time_s(VERIFY) == pytest.approx(0.018 + 3 * 0.1 * 0.012)
    assert heads.step_time_s(StepShape.prefill([50])) == pytest.approx(0.060)  # no decode members: no drafts


def test_the_draft_models_memory_comes_out_of_the_kv_cache():
    cap, kv_t, w, kv_d = 100_000, 320e3, 16e9, 128e3  # tokens, bytes per token, drafter bytes
    left = draft_kv_capacity(cap, kv_t, w, kv_d)
    # conservation: the drafter's weights plus both models' KV of the tokens left fill the target's KV memory
    assert left * (kv_t + kv_d) + w <= cap * kv_t < (left + 1) * (kv_t + kv_d) + w
    model = SpeculativeStepCost(TARGET, SpeculativeConfig.build("draft", 2, 0.7, "x"), DRAFT, kv_capacity_tokens=7)
    assert model.resources().kv_capacity_tokens == 7 and model.resources().max_batch_seqs == 64


def test_a_draft_model_that_does_not_fit_is_a_clear_error():
    with pytest.raises(ConfigError, match="do not fit"):
        draft_kv_capacity(1000, 320e3, 16e9, 128e3)


def test_a_drafter_on_its_own_devices_keeps_its_memory_and_adds_price_power_and_the_hand_off():
    """Target and drafter fakes: step = target + 3 drafter steps + two link transfers; resources add up."""
    from twinfer.hardware.specs import LinkSpec
    from twinfer.perf.speculative import SeparateDrafter

    own = InstanceResources("drafter", 2, 4_000, 32, 3.0, 40.0, 200.0)
    link = LinkSpec("test-link", bw_bytes_per_s=1e9, latency_s=2e-6)
    model = SpeculativeStepCost(TARGET, SpeculativeConfig.build("draft", 3, 0.7, "llama-3.1-8b"), DRAFT,
                                separate=SeparateDrafter(own, link))
    handoff = (2e-6 + 4 * 2 * 3 / 1e9) + (2e-6 + 4 * 2 * 4 / 1e9)  # drafts to the target, verified tokens back
    assert model.step_time_s(VERIFY) == pytest.approx(0.010 + 0.008 + 3 * (0.002 + 0.0002) + handoff)
    res = model.resources()
    # the target fake: 1 device, 10,000 tokens, batch 64, $1/h, 100/500 W
    assert (res.hardware, res.num_devices, res.kv_capacity_tokens, res.max_batch_seqs) == ("fake+drafter", 3, 4_000, 32)
    assert (res.price_per_hour_usd, res.power_idle_w, res.power_max_w) == (4.0, 140.0, 700.0)


def test_heads_cannot_run_on_other_devices():
    from twinfer.hardware.specs import LinkSpec
    from twinfer.perf.speculative import SeparateDrafter

    separate = SeparateDrafter(InstanceResources("d", 1, 1, 1, 0.0, 0.0, 0.0), LinkSpec("l", 1e9, 1e-6))
    with pytest.raises(ConfigError, match="only a draft model"):
        SpeculativeStepCost(TARGET, SpeculativeConfig.build("mtp", 3, 0.7), 1 / 10, separate=separate)
