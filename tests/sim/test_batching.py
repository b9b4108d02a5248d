"""Every registered batching policy fills a step as its definition says (counted by hand)."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.sim.batching import BATCHING_POLICIES, BatchingConfig
from twinfer.sim.request import Request
from twinfer.sim.scheduler import Scheduler


def _two_decoding_two_waiting(policy: str) -> tuple[Scheduler, list[Request]]:
    """Two requests decoding, then two 60-token prompts queued; a 100-token budget."""
    sched = Scheduler("mixed", BatchingConfig(policy=policy, token_budget=100), 10_000, 8)
    old = [Request(0, 0.0, 20, 50), Request(1, 0.0, 20, 50)]
    for r in old:
        sched.enqueue(r)
    out = sched.schedule(0.0)
    assert out is not None and [n for _, n in out.chunks] == [20, 20]
    sched.update(out, 1.0)  # both prefilled: they join the decode batch at the next step
    new = [Request(2, 1.0, 60, 5), Request(3, 1.0, 60, 5)]
    for r in new:
        sched.enqueue(r)
    return sched, new


# (decode members in the step, prompt chunks) on that queue, by the policy's definition:
EXPECTED = {
    # every decode (2 tokens of budget), then chunks: 60, and the 38 tokens left of the budget
    "chunked": (2, [60, 38]),
    # whole prompts first and no decodes in such a step; the second prompt exceeds the 40 left
    "continuous": (0, [60]),
    # nothing admitted while the previous batch runs
    "static": (2, []),
}


@pytest.mark.parametrize("policy", sorted(BATCHING_POLICIES))
def test_every_policy_fills_a_step_as_defined(policy):
    assert policy in EXPECTED, f"batching policy {policy!r} is registered without an expected step in this test"
    sched, new = _two_decoding_two_waiting(policy)
    out = sched.schedule(1.0)
    assert out is not None
    decodes, chunks = EXPECTED[policy]
    assert out.n_decode == decodes
    assert [(r.rid, n) for r, n in out.chunks] == list(zip([r.rid for r in new], chunks, strict=False))
    assert out.shape is not None and out.shape.total_tokens == decodes + sum(chunks)


def test_an_unregistered_policy_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown batching policy 'fifo'; choose one of continuous, chunked, static"):
        BatchingConfig(policy="fifo").check("pools.mixed.batching")
