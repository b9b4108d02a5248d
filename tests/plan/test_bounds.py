"""The pruning bounds against closed forms on a linear step-cost model."""

from __future__ import annotations

import numpy as np
import pytest

from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.plan.bounds import (
    PoolBound,
    WorkloadStats,
    decode_peak_tok_s,
    instance_checks,
    prefill_peak_tok_s,
    throughput_check,
)


class LinearCost:
    """step = a + b * tokens + c * context tokens read: throughput rises with the step, as on real chips."""

    def __init__(self, a: float = 0.01, b: float = 1e-4, c: float = 1e-7, kv: int = 10_000, batch: int = 64) -> None:
        self.a, self.b, self.c, self.kv, self.batch = a, b, c, kv, batch

    def step_time_s(self, shape: StepShape) -> float:
        ctx = shape.decode_context_tokens + shape.prefill_kv_tokens
        return self.a + self.b * shape.total_tokens + self.c * ctx

    def resources(self) -> InstanceResources:
        return InstanceResources(hardware="toy", num_devices=1, kv_capacity_tokens=self.kv, max_batch_seqs=self.batch,
                                 price_per_hour_usd=1.0, power_idle_w=1.0, power_max_w=2.0)


def _stats(prompts, outputs, arrivals=None) -> WorkloadStats:
    n = len(prompts)
    arr = np.arange(n, dtype=float) if arrivals is None else np.asarray(arrivals, dtype=float)
    return WorkloadStats.from_arrays(arr, np.asarray(prompts), np.asarray(outputs))


def test_peak_rates_match_closed_form() -> None:
    cost = LinearCost()
    # prefill: T / (a + b T + c T), largest at the largest step allowed
    assert prefill_peak_tok_s(cost, 1000) == pytest.approx(1000 / (0.01 + 1e-4 * 1000 + 1e-7 * 1000))
    # decode: B / (a + b B + c B ctx), largest at the largest batch
    assert decode_peak_tok_s(cost, 48, 101) == pytest.approx(48 / (0.01 + 1e-4 * 48 + 1e-7 * 48 * 101))


def test_kv_fit_allows_exactly_the_permitted_misses() -> None:
    cost = LinearCost(kv=1000)
    stats = _stats([100, 100, 100, 995], [5, 5, 5, 10])  # the last needs 1005 KV tokens > 1000
    _, reason = instance_checks(cost, "mixed", stats, ttft_s=10, tpot_s=10, attainment=1.0)
    assert reason.startswith("kv_fit") and "1 requests" in reason
    bound, reason = instance_checks(cost, "mixed", stats, ttft_s=10, tpot_s=10, attainment=0.75)
    assert reason is None and isinstance(bound, PoolBound)
    # a prefill instance only holds the prompt: 995 fits
    assert instance_checks(cost, "prefill", stats, ttft_s=10, tpot_s=10, attainment=1.0)[1] is None


def test_idle_latency_prunes_when_even_an_empty_instance_is_too_slow() -> None:
    cost = LinearCost()
    stats = _stats([100, 2000], [10, 10])
    # idle TTFT of the 2000-token prompt: 0.01 + 0.2 + 0.0002 = 0.2102 s
    assert instance_checks(cost, "prefill", stats, ttft_s=0.21, tpot_s=1, attainment=1.0)[1].startswith("idle_latency")
    assert instance_checks(cost, "prefill", stats, ttft_s=0.2103, tpot_s=1, attainment=1.0)[1] is None
    # idle TPOT at context 2001: 0.01 + 1e-4 + 2001e-7 = 0.0103001 s
    assert instance_checks(cost, "decode", stats, ttft_s=1, tpot_s=0.0103, attainment=1.0)[1].startswith("idle")
    assert instance_checks(cost, "decode", stats, ttft_s=1, tpot_s=0.0103002, attainment=1.0)[1] is None


def test_throughput_check_against_hand_numbers() -> None:
    # 10 requests, one per second (last arrival 9 s), prompts 1000, outputs 11 (10 decode tokens each)
    stats = _stats([1000] * 10, [11] * 10)
    # prefill: 10_000 tokens due within 9 + 1 = 10 s -> needs 1000 tok/s
    assert throughput_check([(PoolBound("prefill", 999.0, 0.0), 1), (PoolBound("decode", 0, 1e9), 1)], stats,
                            ttft_s=1.0, tpot_s=0.1, attainment=1.0).startswith("prefill_throughput")
    assert throughput_check([(PoolBound("prefill", 500.0, 0.0), 2), (PoolBound("decode", 0, 1e9), 1)], stats,
                            ttft_s=1.0, tpot_s=0.1, attainment=1.0) is None
    # decode: 100 tokens due within 10 + 10 * 0.1 = 11 s -> needs 9.09 tok/s
    assert throughput_check([(PoolBound("mixed", 1e9, 9.0), 1)], stats, ttft_s=1.0, tpot_s=0.1,
                            attainment=1.0).startswith("decode_throughput")
    assert throughput_check([(PoolBound("mixed", 1e9, 9.1), 1)], stats, ttft_s=1.0, tpot_s=0.1, attainment=1.0) is None
    # with 50 % attainment only the 5 smallest requests must be served
    assert throughput_check([(PoolBound("mixed", 501.0, 1e9), 1)], stats, ttft_s=1.0, tpot_s=0.1, attainment=0.5) is None
