"""Multi-token decode steps end to end: a test policy that computes 2 tokens per decode step.

The policy (registered for these tests only) fills steps as ``chunked`` does but each decode member
computes and emits 2 tokens per step, as a speculative decoder whose one draft is always accepted.
Every step of FixedCost(fixed_s=0.01, per_token_s=0.001) lasts 10 ms + 1 ms per token it computes,
so each time below is counted by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from sim_factories import AffineCost, FixedCost, make_fleet

from twinfer.models.step import StepShape
from twinfer.sim.batching import (
    BATCHING_POLICIES,
    TBT_BIN_BASE,
    TBT_BIN_LOG_STEP,
    BatchingPolicy,
    tbt_bin,
)
from twinfer.sim.metrics import PoolPricing, fleet_result
from twinfer.sim.request import RequestState

COST = FixedCost(fixed_s=0.01, per_token_s=0.001)
# A: 10-token prompt, 6 tokens wanted; B: 20-token prompt, 3 tokens wanted; both at t = 0.
#   step 1 [0, 40 ms]: prefill 10 + 20 tokens (10 + 30 ms): first tokens of A and B at 40 ms
#   step 2 [40, 54 ms]: decode A, B x 2 tokens (10 + 4 ms): A has 3, B has 3 (done) at 54 ms
#   step 3 [54, 66 ms]: decode A x 2 (10 + 2 ms): A has 5
#   step 4 [66, 78 ms]: decode A x 2: A needs 1 more; it has 6 (done) at 78 ms, the 2nd token is dropped
A_TIMES = [0.040, 0.054, 0.054, 0.066, 0.066, 0.078]
B_TIMES = [0.040, 0.054, 0.054]


@pytest.fixture(autouse=True)
def two_token_policy(monkeypatch):
    chunked = BATCHING_POLICIES["chunked"]
    monkeypatch.setitem(BATCHING_POLICIES, "two_token",
                        BatchingPolicy(chunked.fill, "test: chunked, 2 tokens per decode step", decode_tokens_per_step=2))


class Recorder:
    """A step-cost model that remembers every shape it priced."""

    def __init__(self, cost) -> None:
        self.cost, self.shapes = cost, []

    def step_time_s(self, shape: StepShape) -> float:
        self.shapes.append(shape)
        return self.cost.step_time_s(shape)

    def resources(self):
        return self.cost.resources()


def _run(cost, fast: bool = True, **kw):
    sim = make_fleet(cost, policy="two_token", **kw)
    sim.inline_ok = fast
    sim.load_workload([0.0, 0.0], [10, 20], [6, 3])
    sim.run_until()
    assert sim.done()
    return sim


def test_scheduler_prices_and_applies_two_tokens_per_decode_step():
    cost = Recorder(COST)
    sim = _run(cost)
    a, b = sim.requests
    assert (a.first_token_s, b.first_token_s) == pytest.approx((0.040, 0.040))
    assert (b.finish_s, a.finish_s) == pytest.approx((0.054, 0.078))
    assert (a.generated, b.generated) == (6, 3) and a.state is b.state is RequestState.DONE
    # the shapes the backend priced: step 2 holds 2 members x 2 tokens, contexts 10+1+1 and 20+1+1
    assert cost.shapes[1] == StepShape(decode_seqs=2, decode_context_tokens=12 + 22, decode_extra_tokens=2)
    assert cost.shapes[2] == StepShape(decode_seqs=1, decode_context_tokens=10 + 3 + 1, decode_extra_tokens=1)
    assert [s.total_tokens for s in cost.shapes] == [30, 4, 2, 2]
    inst = sim.instances[0]
    assert inst.steps == 4 and inst.busy_s == pytest.approx(0.078)
    sched = inst.sched
    assert sched.outstanding == 0 and sched.ctx_sum == 0 and sched.free_blocks == sched.total_blocks


def test_metrics_count_every_token_gap_once():
    sim = _run(COST)
    res = fleet_result("f", sim, {"mixed": PoolPricing("f", 1, 1.0, 1.0, 2.0)}, 1.0, 1.0)
    cols = res.requests
    assert cols["tpot_s"] == pytest.approx([(0.078 - 0.040) / 5, (0.054 - 0.040) / 2])
    assert cols["max_tbt_s"] == pytest.approx([0.014, 0.014])
    # gaps: A 14, 0, 12, 0, 12 ms and B 14, 0 ms -- 7 gaps for 6 + 3 tokens, three of them 0
    edges, weights = res.tbt_hist
    want = {0: 3, tbt_bin(0.012): 2, tbt_bin(0.014): 2}
    got = {int(round(np.log(e / TBT_BIN_BASE) / TBT_BIN_LOG_STEP)) + 1 if e > 0 else 0: int(w)
           for e, w in zip(edges, weights, strict=True)}
    assert got == want
    assert res.summary["output_tokens"] == 9


@pytest.mark.parametrize("cost", [COST, AffineCost(fixed_s=0.01, per_token_s=0.001)], ids=["stepwise", "affine"])
def test_fast_paths_equal_the_plain_event_loop(cost):
    # the inline fast path (and, for a backend with a decode ramp, the closed form it must skip:
    # the ramp prices one-token steps) against the plain event loop, bit for bit
    fast, plain = _run(cost, fast=True), _run(cost, fast=False)
    for x, y in zip(fast.requests, plain.requests, strict=True):
        assert (x.first_token_s, x.finish_s, x.max_tbt_s) == (y.first_token_s, y.finish_s, y.max_tbt_s)
    assert [r.finish_s for r in fast.requests] == pytest.approx([0.078, 0.054])
    assert fast.instances[0].sched.tbt_hist == plain.instances[0].sched.tbt_hist


def test_preempt_policy_grows_kv_by_the_tokens_each_step_writes():
    # 4-token blocks. A step writes the KV of the last token sampled and of its draft: after the
    # prefill (3 blocks, 12 tokens) step 2 needs 10 + 1 + 1 = 12 tokens, step 3 needs 10 + 3 + 1 = 14: a 4th block.
    sim = make_fleet(COST, policy="two_token", kv_policy="preempt", block_tokens=4, track_tokens=True)
    sched = sim.instances[0].sched
    a = sim.submit(10, 6, 0.0)
    sim.run_until(0.025)  # step 2 [20, 32 ms] in flight
    assert a.blocks == 3
    sim.run_until(0.035)  # step 3 [32, 44 ms] in flight
    assert a.blocks == 4
    sim.run_until()
    assert a.finish_s == pytest.approx(0.020 + 3 * 0.012) and sched.free_blocks == sched.total_blocks


def test_reserve_policy_reserves_the_last_steps_draft_too():
    from twinfer.sim.batching import BatchingConfig
    from twinfer.sim.request import Request
    from twinfer.sim.scheduler import Scheduler

    sched = Scheduler("mixed", BatchingConfig(policy="two_token", block_tokens=4), 1000, 8)
    r = Request(0, 0.0, 10, 6)
    sched.enqueue(r)
    sched.schedule(0.0)
    assert r.blocks == 5  # 10 + 6 + 1 draft = 17 tokens: 5 blocks of 4


def test_the_server_streams_both_tokens_of_a_step_at_its_end():
    from twinfer.serve.sim_fleet import SimulatedFleet

    fleet = SimulatedFleet(make_fleet(COST, policy="two_token", track_tokens=True))
    keys = [fleet.submit(10, 6, 0.0), fleet.submit(20, 3, 0.0)]
    events = fleet.run_until(float("inf"))
    for key, times in zip(keys, (A_TIMES, B_TIMES), strict=True):
        mine = [e for e in events if e.key == key]
        assert [e.index for e in mine] == list(range(len(times)))
        assert [e.time_s for e in mine] == pytest.approx(times)
        assert [e.last for e in mine] == [False] * (len(times) - 1) + [True]


def test_scheduled_tokens_per_request_as_vllm_reports_them():
    from twinfer.sim.batching import BatchingConfig
    from twinfer.sim.request import Request
    from twinfer.sim.scheduler import Scheduler

    sched = Scheduler("mixed", BatchingConfig(policy="two_token", token_budget=100), 10_000, 8)
    old, new = Request(0, 0.0, 10, 6), Request(1, 0.0, 30, 5)
    sched.enqueue(old)
    sched.update(sched.schedule(0.0), 1.0)  # type: ignore[arg-type]
    sched.enqueue(new)
    out = sched.schedule(1.0)
    assert out is not None
    # the decode member: 2 tokens (its last sampled one and a draft); the prompt: a 30-token chunk
    assert out.scheduled_tokens(sched.decoding.values()) == {0: 2, 1: 30}
    assert out.num_tokens == 32 and out.shape is not None and out.shape.total_tokens == 32
