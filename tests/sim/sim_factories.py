"""Factories for simulator tests: fake step-cost models and tiny workloads (imported by the tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.sim.cluster import FleetSim, LinkSetup, PoolSetup
from twinfer.sim.scheduler import BatchingConfig


@dataclass(frozen=True)
class FixedCost:
    """Step cost = fixed + per_token x tokens + per_seq x sequences (a linear fake backend)."""

    fixed_s: float = 0.01
    per_token_s: float = 0.0
    per_seq_s: float = 0.0
    kv_tokens: int = 1_000_000
    max_seqs: int = 256
    price: float = 1.0
    idle_w: float = 100.0
    max_w: float = 500.0

    def step_time_s(self, shape: StepShape) -> float:
        return self.fixed_s + self.per_token_s * shape.total_tokens + self.per_seq_s * shape.num_seqs

    def resources(self) -> InstanceResources:
        return InstanceResources("fake", 1, self.kv_tokens, self.max_seqs, self.price, self.idle_w, self.max_w)


def make_requests(n: int, rate: float, prompt: int | tuple[int, int], output: int | tuple[int, int],
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson arrivals at ``rate`` with fixed or uniform [lo, hi] prompt and output lengths."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))

    def lens(x: int | tuple[int, int]) -> np.ndarray:
        if isinstance(x, tuple):
            return rng.integers(x[0], x[1] + 1, n)
        return np.full(n, x, dtype=np.int64)

    return t, lens(prompt), lens(output)


def make_fleet(cost=None, count: int = 1, policy: str = "chunked", kv_policy: str = "reserve",
               token_budget: int = 2048, max_batch_seqs: int | None = None, decode_cost=None,
               decode_count: int = 0, link: LinkSetup | None = None, router: str = "least_outstanding",
               block_tokens: int = 16, **kw) -> FleetSim:
    """An aggregated fleet, or a disaggregated one when ``decode_count`` > 0."""
    cost = cost or FixedCost()
    batching = BatchingConfig(policy=policy, kv_policy=kv_policy, token_budget=token_budget,
                              max_batch_seqs=max_batch_seqs, block_tokens=block_tokens)
    if decode_count:
        pools = [PoolSetup("prefill", cost, count, batching, router),
                 PoolSetup("decode", decode_cost or cost, decode_count, batching, router)]
        link = link or LinkSetup(bw_bytes_per_s=1e12, latency_s=0.0)
    else:
        pools = [PoolSetup("mixed", cost, count, batching, router)]
    return FleetSim(pools, kv_bytes_per_token=kw.pop("kv_bytes_per_token", 1000.0),
                    num_layers=kw.pop("num_layers", 10), link=link, **kw)


@dataclass(frozen=True)
class AffineCost(FixedCost):
    """FixedCost plus a context term, with the closed-form decode ramp the simulator's fast path uses.

    Decode step time = fixed + per_token x tokens + per_seq x seqs + per_ctx x context sum,
    the max of that and ``floor_s`` (so a ramp can start flat and then climb, like a roofline).
    """

    per_ctx_s: float = 0.0
    floor_s: float = 0.0

    def step_time_s(self, shape: StepShape) -> float:
        return max(self.floor_s, super().step_time_s(shape) + self.per_ctx_s * shape.decode_context_tokens)

    def decode_run_affine(self, decode_seqs: int, context_tokens: int) -> tuple[float, float, int]:
        """(dt0, slope, valid_steps) of plain decode steps from ``context_tokens`` on."""
        linear = self.fixed_s + (self.per_token_s + self.per_seq_s) * decode_seqs + self.per_ctx_s * context_tokens
        grow = self.per_ctx_s * decode_seqs
        if linear >= self.floor_s:
            return linear, grow, 1 << 62
        valid = int((self.floor_s - linear) / grow) + 1 if grow > 0 else 1 << 62
        return self.floor_s, 0.0, valid


def theoretical_reuse(workload, block_tokens: int) -> float:
    """Prompt tokens in full blocks whose id (and every id before it) an earlier request had, / prompt tokens.

    Counted straight from the workload's block ids, without the cache: a request reuses the
    leading run of its full ``block_tokens``-token blocks that appeared in earlier requests' full blocks.
    """
    seen: set[int] = set()
    reused = 0
    for ids, prompt in zip(workload.prefix_block_ids, workload.prompt_tokens, strict=True):
        full = [int(b) for b in ids[: int(prompt) // block_tokens]]
        run = 0
        while run < len(full) and full[run] in seen:
            run += 1
        reused += run * block_tokens
        seen.update(full)
    return reused / int(workload.prompt_tokens.sum())
