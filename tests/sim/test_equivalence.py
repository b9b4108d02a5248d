"""The fast paths (lazy aggregated runs, inline decode loops) change nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
from sim_factories import AffineCost, FixedCost, make_fleet, make_requests

from twinfer.sim.metrics import PoolPricing, fleet_result
from twinfer.sim.router import ROUTERS
from twinfer.sim.scheduler import BATCHING_POLICIES, KV_POLICIES

#: every registered batching policy under each KV policy
EVERY_POLICY = [(p, kv) for p in sorted(BATCHING_POLICIES) for kv in KV_POLICIES]


@pytest.mark.parametrize("router", sorted(ROUTERS))
@pytest.mark.parametrize("policy,kv_policy", EVERY_POLICY)
def test_fast_paths_match_plain_event_loop(router, policy, kv_policy):
    results = []
    for fast in (True, False):
        t, p, o = make_requests(600, 25.0, (20, 900), (1, 150), seed=11)
        sim = make_fleet(FixedCost(fixed_s=0.01, per_token_s=2e-5, kv_tokens=12000), count=3, router=router,
                         policy=policy, kv_policy=kv_policy, max_batch_seqs=16, sample_interval_s=0.5)
        sim.inline_ok = fast
        sim.load_workload(t, p, o)
        sim.run_until()
        assert sim.done()
        results.append(fleet_result("f", sim, {r: PoolPricing("f", 1, 1.0, 1.0, 2.0) for r in sim.pools}, 1.0, 0.05))
    a, b = results
    for name, col in a.requests.items():
        np.testing.assert_array_equal(col, b.requests[name], err_msg=name)
    assert a.summary.keys() == b.summary.keys()
    for k, v in a.summary.items():
        assert v == b.summary[k] or (v != v and b.summary[k] != b.summary[k]), k
    assert np.array_equal(a.tbt_hist[1], b.tbt_hist[1])


def _run_both(cost, n=600, rate=25.0, arrivals=None, prompt=(20, 900), output=(1, 150), **fleet_kw):
    results, sims = [], []
    sample_s = fleet_kw.pop("sample_interval_s", 0.5)
    for fast in (True, False):
        t, p, o = arrivals if arrivals is not None else make_requests(n, rate, prompt, output, seed=11)
        sim = make_fleet(cost, sample_interval_s=sample_s, **fleet_kw)
        sim.inline_ok = fast
        sim.load_workload(t, p, o)
        sim.run_until()
        assert sim.done()
        results.append(fleet_result("f", sim, {r: PoolPricing("f", 1, 1.0, 1.0, 2.0) for r in sim.pools}, 1.0, 0.05))
        sims.append(sim)
    a, b = results
    fa, fb = sims
    for pa, pb in zip(fa.pools.values(), fb.pools.values(), strict=True):  # sampled queue series
        assert pa.series_waiting == pb.series_waiting and pa.series_running == pb.series_running
    return a, b, fb


def _assert_close(a, b, atol_s):
    for name, col in a.requests.items():
        if np.issubdtype(col.dtype, np.floating):
            np.testing.assert_allclose(col, b.requests[name], rtol=0, atol=atol_s, err_msg=name)
        else:
            np.testing.assert_array_equal(col, b.requests[name], err_msg=name)
    assert a.summary.keys() == b.summary.keys()
    for k, v in a.summary.items():
        w = b.summary[k]
        if isinstance(v, float):
            assert v == pytest.approx(w, rel=1e-9, abs=atol_s, nan_ok=True), k
        else:
            assert v == w, k
    assert np.array_equal(a.tbt_hist[1], b.tbt_hist[1])


RAMP = AffineCost(fixed_s=0.004, per_token_s=2e-5, per_ctx_s=2e-7, floor_s=0.0085, kv_tokens=12000)


@pytest.mark.parametrize("router", sorted(ROUTERS))
@pytest.mark.parametrize("policy,kv_policy", EVERY_POLICY)
def test_closed_form_decode_runs_match_plain_event_loop(router, policy, kv_policy):
    # A step-cost backend with a decode ramp (flat at first, then growing with the context,
    # like a roofline max) takes the closed-form path; its sums differ from stepping one
    # by one only in float rounding: timestamps within 1 ns on these ~25 s runs.
    a, b, _ = _run_both(RAMP, count=3, router=router, policy=policy, kv_policy=kv_policy, max_batch_seqs=16)
    _assert_close(a, b, atol_s=1e-9)


@pytest.mark.parametrize("policy", sorted(BATCHING_POLICIES))
def test_closed_form_runs_under_preemption_and_steep_ramps(policy):
    # Tight KV makes the preempt policy evict members mid-run; a steep ramp (no floor)
    # makes runs cross many 1 % TBT bins; every third arrival shares its time with two others.
    t, p, o = make_requests(300, 60.0, (20, 400), (1, 300), seed=4)
    t = np.repeat(t[::3], 3)[:300]
    cost = AffineCost(fixed_s=0.004, per_token_s=2e-5, per_ctx_s=2e-5, kv_tokens=1500)
    a, b, plain = _run_both(cost, arrivals=(t, p, o), count=2, policy=policy, kv_policy="preempt", max_batch_seqs=16)
    assert sum(r.preemptions for r in plain.requests) > 10
    _assert_close(a, b, atol_s=1e-9)


def test_dyadic_times_make_the_two_paths_bit_identical():
    # With step times and arrivals on exact binary fractions both paths' sums are exact, so
    # arrivals land exactly on step ends: every tie rule (the step in flight at an arrival,
    # simultaneous wakes, step end before arrival before sample) must agree bit for bit.
    rng = np.random.default_rng(7)
    t = np.sort(rng.integers(0, 200, 150)) / 8.0
    p, o = rng.integers(1, 64, 150), rng.integers(1, 200, 150)
    for router in sorted(ROUTERS):
        for policy, kv_policy in EVERY_POLICY:
            cost = AffineCost(fixed_s=0.0625, per_seq_s=2**-10, per_ctx_s=2**-16, kv_tokens=3000)
            a, b, _ = _run_both(cost, arrivals=(t, p, o), count=3, router=router, policy=policy,
                                kv_policy=kv_policy, max_batch_seqs=4, token_budget=64, sample_interval_s=0.125)
            _assert_close(a, b, atol_s=0.0)


@pytest.mark.parametrize("pp", [1, 2])
def test_gpu_backends_fast_path_matches_plain_event_loop(pp):
    # pp=1: closed-form runs from GpuStepCost's decode ramp. pp=2: a pipelined instance, whose
    # decode steps carry a lane's share, must not use the lane's own ramp.
    from twinfer.gpu.step_cost import GpuStepCost
    from twinfer.hardware import get_hardware
    from twinfer.models import load_model
    from twinfer.perf.pipeline import pipelined

    cost = pipelined(GpuStepCost(load_model("llama-3-8b"), get_hardware("h100"), tp=1, pp=pp))
    a, b, _ = _run_both(cost, n=400, rate=40.0, count=2)
    _assert_close(a, b, atol_s=1e-9 if pp == 1 else 0.0)


def test_live_submissions_after_a_batch_run_finish_everything():
    # A batch run leaves steps and committed decode runs in flight; a live submission switches
    # the fleet to the plain event loop, which must pick them up.
    for cost in (FixedCost(fixed_s=0.01, per_token_s=2e-5), RAMP):
        t, p, o = make_requests(50, 10.0, (20, 200), (50, 150), seed=1)
        sim = make_fleet(cost, count=2)
        sim.load_workload(t, p, o)
        sim.run_until(2.0)
        assert any(i.pending_end != float("inf") for i in sim.instances)
        sim.submit(30, 20)
        sim.run_until()
        assert sim.done() and sim.completed == 51


def test_a_bad_decode_ramp_is_a_clear_error():
    class ZeroSteps(AffineCost):
        def decode_run_affine(self, decode_seqs, context_tokens):
            return 0.01, 0.0, 0

    t, p, o = make_requests(20, 10.0, 50, 20, seed=2)
    sim = make_fleet(ZeroSteps(), count=1)
    sim.load_workload(t, p, o)
    with pytest.raises(ValueError, match="at least one step"):
        sim.run_until()
