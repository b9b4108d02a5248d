"""Speculative decoding math: expected tokens per verify step by hand and by Monte Carlo, seeded draws, timing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.perf.speculative import (
    SpeculativeConfig,
    check_drafter,
    draw_tokens_per_step,
    expected_tokens_per_step,
    speculative_timing,
    verify_shape,
    verify_steps_for,
)


def test_expected_tokens_by_hand():
    """p = 0.8, k = 4: 1 + .8 + .64 + .512 + .4096 = 3.3616 = (1 - .8^5) / (1 - .8); per position: 1 + .9 + .45 + .09."""
    iid = SpeculativeConfig.build("mtp", 4, 0.8)
    assert expected_tokens_per_step(iid) == pytest.approx(3.3616, abs=1e-12)
    assert expected_tokens_per_step(iid) == pytest.approx((1 - 0.8**5) / (1 - 0.8), abs=1e-12)
    assert expected_tokens_per_step(SpeculativeConfig.build("eagle", 3, [0.9, 0.5, 0.2])) == pytest.approx(2.44, abs=1e-12)
    assert expected_tokens_per_step(SpeculativeConfig.build("mtp", 5, 0.0)) == 1.0  # nothing accepted: plain decoding
    assert expected_tokens_per_step(SpeculativeConfig.build("mtp", 5, 1.0)) == 6.0  # all accepted: k + 1


@pytest.mark.parametrize("acceptance", [0.8, [0.95, 0.7, 0.4, 0.1]])
def test_draws_match_the_closed_form_within_their_standard_error(acceptance):
    """The mean of 200,000 seeded draws is within 5 standard errors of E[tokens]; the SE comes from the exact variance."""
    cfg = SpeculativeConfig.build("mtp", 4, acceptance)
    rates = list(cfg.acceptance)
    # P(exactly j accepted) = a_1 ... a_j (1 - a_{j+1}), with a_{k+1} = 0; the step yields j + 1 tokens.
    probs = [math.prod(rates[:j]) * (1 - (rates[j] if j < len(rates) else 0.0)) for j in range(len(rates) + 1)]
    assert sum(probs) == pytest.approx(1.0)
    mean = sum((j + 1) * p for j, p in enumerate(probs))
    var = sum((j + 1) ** 2 * p for j, p in enumerate(probs)) - mean**2
    n = 200_000
    draws = draw_tokens_per_step(cfg, np.random.default_rng(7), n)
    assert draws.min() >= 1 and draws.max() <= 5
    assert mean == pytest.approx(expected_tokens_per_step(cfg), abs=1e-12)
    assert abs(draws.mean() - mean) < 5 * math.sqrt(var / n)


def test_draws_are_deterministic_per_seed():
    cfg = SpeculativeConfig.build("mtp", 3, 0.6)
    a = draw_tokens_per_step(cfg, np.random.default_rng(3), 100)
    b = draw_tokens_per_step(cfg, np.random.default_rng(3), 100)
    assert np.array_equal(a, b)
    assert verify_steps_for(cfg, np.random.default_rng(3), 500) == verify_steps_for(cfg, np.random.default_rng(3), 500)


def test_verify_steps_per_request_at_the_extremes():
    """All accepted: ceil(n / (k + 1)) steps; none accepted: n steps; no output: none."""
    rng = np.random.default_rng(0)
    assert verify_steps_for(SpeculativeConfig.build("mtp", 4, 1.0), rng, 23) == 5
    assert verify_steps_for(SpeculativeConfig.build("mtp", 4, 0.0), rng, 23) == 23
    assert verify_steps_for(SpeculativeConfig.build("mtp", 4, 0.5), rng, 0) == 0


def test_verify_shape_is_a_decode_step_of_k_plus_1_rows():
    """Two sequences with 100 and 50 cached tokens verify 4 + 1 positions each: 10 rows over 160 tokens."""
    shape = verify_shape([100, 50], 4)
    assert (shape.decode_seqs, shape.decode_context_tokens, shape.decode_extra_tokens) == (2, 105 + 55, 8)
    assert shape.total_tokens == 10 and shape.prefill_tokens == 0


def test_a_gpu_verify_step_costs_about_one_decode_step_at_long_context():
    """Batch 16 at 2,048 cached tokens, k = 4: weights and KV are read once either way (memory-bound)."""
    from twinfer.models import load_model
    from twinfer.perf import make_step_cost

    target = make_step_cost(load_model("llama-3.1-8b"), "h100")
    t = speculative_timing(SpeculativeConfig.build("eagle", 4, 0.8), target, [2048] * 16, 1 / 32)
    assert t.plain_step_s < t.verify_step_s < 1.5 * t.plain_step_s


class LinearCost:
    """A step costing 1 ms + 0.1 ms per token (a stand-in target or drafter)."""

    def __init__(self, fixed_s: float, per_token_s: float) -> None:
        self.fixed_s, self.per_token_s = fixed_s, per_token_s

    def step_time_s(self, shape: StepShape) -> float:
        return self.fixed_s + self.per_token_s * shape.total_tokens

    def resources(self) -> InstanceResources:
        return InstanceResources("fake", 1, 10**6, 64, 1.0, 1.0, 1.0)


def test_timing_by_hand():
    """Batch 2, k = 3, p = 0.5: plain 1.2 ms; verify 1 + 0.8 = 1.8 ms; E[tokens] = 1.875.

    MTP heads at 1/10 of a step: draft 3 x 0.12 = 0.36 ms -> (0.36 + 1.8) / 1.875 = 1.152 ms per token.
    A draft model (0.2 + 0.01/token): 3 x 0.22 = 0.66 ms -> (0.66 + 1.8) / 1.875 = 1.312 ms.
    """
    target = LinearCost(1e-3, 1e-4)
    cfg = SpeculativeConfig.build("mtp", 3, 0.5)
    t = speculative_timing(cfg, target, [100, 200], 0.1)
    assert (t.plain_step_s, t.verify_step_s, t.tokens_per_step) == pytest.approx((1.2e-3, 1.8e-3, 1.875))
    assert t.time_per_token_s == pytest.approx(1.152e-3)
    assert t.speedup == pytest.approx(1.2 / 1.152)
    drafted = speculative_timing(SpeculativeConfig.build("draft", 3, 0.5, "llama-3.1-8b"), target, [100, 200],
                                 LinearCost(2e-4, 1e-5))
    assert drafted.time_per_token_s == pytest.approx(1.312e-3)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="method"):
        SpeculativeConfig.build("medusa", 3, 0.5)
    with pytest.raises(ConfigError, match="one per proposed position"):
        SpeculativeConfig.build("mtp", 3, [0.5, 0.5])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SpeculativeConfig.build("mtp", 2, 1.5)
    with pytest.raises(ConfigError, match="draft_model"):
        SpeculativeConfig.build("draft", 2, 0.5)
    with pytest.raises(ConfigError, match="unknown key"):
        SpeculativeConfig.from_dict({"k": 2, "acceptance": 0.5, "gamma": 3})
    cfg = SpeculativeConfig.from_dict({"k": 2, "acceptance": [0.9, 0.8], "draft_model": "llama-3.1-8b"})
    assert (cfg.method, cfg.acceptance) == ("draft", (0.9, 0.8))


@pytest.mark.parametrize("method", ["eagle", "mtp"])
def test_a_draft_model_beside_heads_is_refused_not_ignored(method):
    with pytest.raises(ConfigError, match=r"pool\.speculative\.draft_model: .*remove draft_model, or set method: draft"):
        SpeculativeConfig.from_dict({"method": method, "k": 2, "acceptance": 0.7, "draft_model": "llama-3.1-8b"},
                                    "pool.speculative")


def test_mtp_needs_a_model_with_an_mtp_module():
    from twinfer.models import load_model

    mtp = SpeculativeConfig.build("mtp", 3, 0.8)  # k = 3 drafts from DeepSeek-V3's one module, run 3 times: allowed
    check_drafter(mtp, load_model("deepseek-v3"))
    check_drafter(SpeculativeConfig.build("eagle", 3, 0.8), load_model("llama-3-8b"))
    with pytest.raises(ConfigError, match=r"pool\.speculative\.method: .*llama-3-8b has none.*use method: eagle"):
        check_drafter(mtp, load_model("llama-3-8b"), "pool.speculative")
    with pytest.raises(ConfigError, match="kimi-k2 has none"):  # its config says num_nextn_predict_layers: 0
        check_drafter(mtp, load_model("kimi-k2"))


@pytest.mark.parametrize("hardware", ["h100", "groq-tsp-v1"])
def test_both_backends_price_the_verify_step(hardware):
    """GPU and LPU price k + 1 positions above one and well below k + 1 separate steps, so speculation pays at batch 1."""
    from twinfer.models import load_model
    from twinfer.models.ops import Precision
    from twinfer.perf import make_step_cost

    target = make_step_cost(load_model("llama-3.1-8b"), hardware, precision=Precision(weights="int8"))
    t = speculative_timing(SpeculativeConfig.build("eagle", 4, 0.8), target, [1000], 1 / 32)
    assert t.plain_step_s < t.verify_step_s < 5 * t.plain_step_s / 2
    assert t.speedup > 1.5


def test_a_drafter_on_its_own_devices_adds_the_hand_off_by_hand():
    """Batch 2, k = 3 over a 1 us, 1 GB/s link: drafts 2 x 3 x 4 B out, 2 x 4 x 4 B back.

    Hand-off = (1e-6 + 24e-9) + (1e-6 + 32e-9) = 2.056 us, on top of the draft model's 0.66 ms and the 1.8 ms verify.
    """
    from twinfer.hardware.specs import LinkSpec
    from twinfer.perf.speculative import SeparateDrafter

    link = LinkSpec("test-link", bw_bytes_per_s=1e9, latency_s=1e-6)
    drafter = SeparateDrafter(InstanceResources("fake", 1, 10**6, 64, 1.0, 1.0, 1.0), link)
    cfg = SpeculativeConfig.build("draft", 3, 0.5, "llama-3.1-8b")
    t = speculative_timing(cfg, LinearCost(1e-3, 1e-4), [100, 200], LinearCost(2e-4, 1e-5), drafter)
    assert t.handoff_s == pytest.approx(2.056e-6, abs=1e-15)
    assert t.time_per_token_s == pytest.approx((0.66e-3 + 2.056e-6 + 1.8e-3) / 1.875)
    assert drafter.handoff_s(0, 50, 3) == pytest.approx(1e-6 + 200e-9)  # prompts only: one transfer to the drafter
    assert drafter.handoff_s(0, 0, 3) == 0.0


def test_draft_devices_are_parsed_and_bad_ones_are_clear_errors():
    from twinfer.perf.speculative import DraftDevices

    cfg = SpeculativeConfig.from_dict({"draft_model": "llama-3.1-8b", "k": 2, "acceptance": 0.6,
                                       "draft_devices": {"hardware": "groq-tsp-v1", "chips": 96, "link": "lpx-gpu"}})
    assert cfg.draft_devices == DraftDevices("groq-tsp-v1", tp=1, chips=96, link="lpx-gpu")
    with pytest.raises(ConfigError, match=r"draft_devices: eagle heads .* use method: draft"):
        SpeculativeConfig.from_dict({"method": "eagle", "k": 2, "acceptance": 0.6, "draft_devices": {"hardware": "h100"}})
    for bad, match in (({"tp": 2}, "drafter's hardware"), ({"hardware": "h100", "tp": 0}, r"\.tp"),
                       ({"hardware": "h100", "chips": "many"}, r"\.chips"), ({"hardware": "h100", "gpus": 2}, "unknown key"),
                       ({"hardware": "h100", "link": 3}, r"\.link")):
        with pytest.raises(ConfigError, match=match):
            DraftDevices.from_dict(bad, "speculative.draft_devices")
