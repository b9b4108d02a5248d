"""Speed of GpuStepCost.step_time_s: calls per second, cached path vs the op-by-op baseline.

Run: ``.venv/bin/python benchmarks/gpu_speed.py``. The baseline lowers the op
graph and times every op per call (``op_times``), as a model without the
token-count cache would; the ratio is measured in the same process.
"""

from __future__ import annotations

import time

import numpy as np

from twinfer.gpu import GpuStepCost
from twinfer.models import StepShape, load_model


def shapes(n: int, rng: np.random.Generator) -> list[StepShape]:
    """Decode batches of 1..256 sequences with contexts 100..8000, one in eight with a prefill chunk."""
    out = []
    for i in range(n):
        ctx = rng.integers(100, 8000, size=int(rng.integers(1, 257)))
        shape = StepShape.decode(ctx.tolist())
        if i % 8 == 0:
            shape = shape + StepShape.prefill([int(rng.integers(16, 2048))])
        out.append(shape)
    return out


def rate(fn, items, repeat: int) -> float:
    """Calls per second of ``fn`` over ``items``, ``repeat`` passes."""
    start = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return repeat * len(items) / (time.perf_counter() - start)


def main() -> None:
    """Print calls/s of the fast path and of the baseline, and their ratio."""
    cost = GpuStepCost(load_model("llama-3-70b"), "h100", tp=8)
    batch = shapes(2000, np.random.default_rng(0))
    for s in batch:  # warm the per-token-count cache, as a long simulation does
        cost.step_time_s(s)
    fast = rate(cost.step_time_s, batch, repeat=20)
    slow = rate(lambda s: sum(o.total_s for o in cost.op_times(s)), batch[:300], repeat=1)
    print(f"step_time_s (cached): {fast:,.0f} calls/s ({1e6 / fast:.2f} us/call)")
    print(f"op-by-op baseline   : {slow:,.0f} calls/s ({1e6 / slow:.1f} us/call)")
    print(f"speed-up            : {fast / slow:.0f}x")


if __name__ == "__main__":
    main()
