"""Cheap necessary conditions for a fleet to meet its SLOs, checked before any simulation.

Every test here is a *proof of infeasibility*, never a guess: a configuration is
pruned only when no schedule could let a fraction ``attainment`` of the requests
meet TTFT <= ``ttft_s`` and TPOT <= ``tpot_s`` (rejected requests count as
missed, as in :mod:`twinfer.sim.results`). The arguments, for ``N`` requests of
which ``k = ceil(attainment * N)`` must meet the SLO:

1. **Memory fit.** Building the instance's step-cost model raises
   :class:`CapacityError` when the weights do not fit: no run is possible.
2. **KV fit.** A request whose KV (prompt + output tokens; prompt only on a
   prefill instance) exceeds one instance's KV capacity is rejected; if more
   than ``N - k`` are, attainment is out of reach.
3. **Idle latency.** A request's TTFT is at least the time of one step that
   prefills its whole prompt on an idle instance, and its TPOT at least one
   decode step of batch 1 at its prompt length. If more than ``N - k``
   requests miss the SLO even then, no fleet of this instance type can help.
4. **Throughput.** Every met request is prefilled by ``arrival + ttft_s <=
   A_last + ttft_s`` and finishes by ``A_last + ttft_s + (out_max - 1) *
   tpot_s``. So the pool must do at least the ``k`` smallest prompts' tokens
   (and the ``k`` smallest ``output - 1`` decode tokens) within those horizons,
   at no more than its peak rate. Peak rates are upper bounds from the
   step-cost model: prefill ``T / step_time(T tokens, 1 sequence, T attention
   pairs)`` at the largest step the KV cache allows, decode ``B / step_time(B
   sequences at the smallest context)`` at the largest batch that fits. An
   aggregated pool must pass the prefill and the decode test separately
   (mixed steps may overlap the two, so their times are not added).

These hold whenever a step's time does not fall when work is added to it and
tokens per second do not fall as a step grows, which is true of roofline and
of the fixed-overhead models in :mod:`twinfer.gpu` and :mod:`twinfer.lpu`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twinfer.models.step import StepShape
from twinfer.perf.base import StepCostModel


@dataclass(frozen=True)
class WorkloadStats:
    """What the bounds need from a workload: sorted work sizes and the arrival horizon."""

    num_requests: int
    last_arrival_s: float
    prompt_tokens: np.ndarray  # int64 per request, workload order
    output_tokens: np.ndarray  # int64 per request, workload order

    @classmethod
    def from_arrays(cls, arrival_s: np.ndarray, prompt_tokens: np.ndarray, output_tokens: np.ndarray) -> WorkloadStats:
        """Summarise a workload's arrays (arrival times in seconds, token counts >= 1)."""
        return cls(
            num_requests=int(len(prompt_tokens)),
            last_arrival_s=float(np.max(arrival_s)) if len(arrival_s) else 0.0,
            prompt_tokens=np.asarray(prompt_tokens, dtype=np.int64),
            output_tokens=np.asarray(output_tokens, dtype=np.int64),
        )

    def must_meet(self, attainment: float) -> int:
        """k: how many requests must meet the SLO."""
        return math.ceil(attainment * self.num_requests - 1e-9)


def prefill_peak_tok_s(cost: StepCostModel, max_tokens: int) -> float:
    """Upper bound on prefill tokens per second of one instance (see the module doc, test 4)."""
    best = 0.0
    t = 1
    while True:
        t = min(t, max_tokens)
        shape = StepShape(prefill_tokens=t, prefill_seqs=1, prefill_attn_pairs=t, prefill_kv_tokens=t)
        best = max(best, t / cost.step_time_s(shape))
        if t >= max_tokens:
            return best
        t *= 4


def decode_peak_tok_s(cost: StepCostModel, max_batch: int, min_context: int) -> float:
    """Upper bound on decode tokens per second of one instance at any batch up to ``max_batch``."""
    best = 0.0
    b = 1
    while True:
        b = min(b, max_batch)
        best = max(best, b / cost.step_time_s(StepShape(decode_seqs=b, decode_context_tokens=b * min_context)))
        if b >= max_batch:
            return best
        b *= 2


@dataclass(frozen=True)
class PoolBound:
    """Per-instance quantities of one pool the throughput test scales by the instance count."""

    role: str  # mixed | prefill | decode
    prefill_tok_s: float  # peak prefill tokens/s of one instance (0 for a decode pool)
    decode_tok_s: float  # peak decode tokens/s of one instance (0 for a prefill pool)


def instance_checks(
    cost: StepCostModel, role: str, stats: WorkloadStats, *, ttft_s: float, tpot_s: float, attainment: float,
    max_batch_seqs: int | None = None,
) -> tuple[PoolBound | None, str | None]:
    """Tests 2 and 3 for one instance type in ``role``; returns (peak rates, None) or (None, reason)."""
    res = cost.resources()
    allowed_misses = stats.num_requests - stats.must_meet(attainment)
    prompts, outputs = stats.prompt_tokens, stats.output_tokens
    need = prompts if role == "prefill" else prompts + outputs
    too_big = int(np.sum(need > res.kv_capacity_tokens))
    if too_big > allowed_misses:
        return None, (f"kv_fit: {too_big} requests need more KV than one {role} instance holds "
                      f"({res.kv_capacity_tokens} tokens); at most {allowed_misses} may miss")
    misses = np.zeros(stats.num_requests, dtype=bool)
    if role in ("mixed", "prefill"):
        lens, inverse = np.unique(prompts, return_inverse=True)
        ttft = np.array([cost.step_time_s(StepShape.prefill([int(p)])) for p in lens])[inverse]
        misses |= ttft > ttft_s
    if role in ("mixed", "decode"):
        lens, inverse = np.unique(prompts, return_inverse=True)
        tpot = np.array([cost.step_time_s(StepShape.decode([int(p) + 1])) for p in lens])[inverse]
        misses |= (tpot > tpot_s) & (outputs > 1)
    if int(misses.sum()) > allowed_misses:
        return None, (f"idle_latency: {int(misses.sum())} requests miss the SLO even on an idle {role} "
                      f"instance; at most {allowed_misses} may miss")
    cap = min(res.max_batch_seqs, max_batch_seqs or res.max_batch_seqs)
    min_ctx = int(prompts.min()) + 1
    prefill = prefill_peak_tok_s(cost, max(1, res.kv_capacity_tokens)) if role != "decode" else 0.0
    decode = decode_peak_tok_s(cost, max(1, min(cap, res.kv_capacity_tokens // min_ctx)), min_ctx) if role != "prefill" else 0.0
    return PoolBound(role=role, prefill_tok_s=prefill, decode_tok_s=decode), None


def throughput_check(
    pools: list[tuple[PoolBound, int]], stats: WorkloadStats, *, ttft_s: float, tpot_s: float, attainment: float
) -> str | None:
    """Test 4 for a whole fleet: ``pools`` are (per-instance bound, instance count); None when it passes."""
    k = stats.must_meet(attainment)
    if k == 0:
        return None
    prefill_work = float(np.sort(stats.prompt_tokens)[:k].sum())
    decode_work = float(np.sort(stats.output_tokens - 1)[:k].sum())
    prefill_horizon = stats.last_arrival_s + ttft_s
    decode_horizon = prefill_horizon + float(stats.output_tokens.max() - 1) * tpot_s
    prefill_cap = sum(b.prefill_tok_s * n for b, n in pools)
    decode_cap = sum(b.decode_tok_s * n for b, n in pools)
    if prefill_work > prefill_cap * prefill_horizon:
        return (f"prefill_throughput: {prefill_work:.0f} prompt tokens due within {prefill_horizon:.1f} s "
                f"need {prefill_work / prefill_horizon:.0f} tok/s; the fleet peaks at {prefill_cap:.0f}")
    if decode_work > decode_cap * decode_horizon:
        return (f"decode_throughput: {decode_work:.0f} output tokens due within {decode_horizon:.1f} s "
                f"need {decode_work / decode_horizon:.0f} tok/s; the fleet peaks at {decode_cap:.0f}")
    return None
