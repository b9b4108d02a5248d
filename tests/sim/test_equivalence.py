"""The fast paths (lazy aggregated runs, inline decode loops) change nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
from sim_factories import AffineCost, FixedCost, make_fleet, make_requests

from twinfer.sim.metrics import PoolPricing, fleet_result


@pytest.mark.parametrize("router", ["round_robin", "least_outstanding", "least_kv"])
@pytest.mark.parametrize("policy,kv_policy", [("chunked", "reserve"), ("continuous", "preempt"), ("static", "reserve")])
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


def _run_both(cost, n=600, rate=25.0, **fleet_kw):
    results = []
    for fast in (True, False):
        t, p, o = make_requests(n, rate, (20, 900), (1, 150), seed=11)
        sim = make_fleet(cost, sample_interval_s=0.5, **fleet_kw)
        sim.inline_ok = fast
        sim.load_workload(t, p, o)
        sim.run_until()
        assert sim.done()
        results.append(fleet_result("f", sim, {r: PoolPricing("f", 1, 1.0, 1.0, 2.0) for r in sim.pools}, 1.0, 0.05))
    return results


def _assert_close(a, b, rel):
    for name, col in a.requests.items():
        if np.issubdtype(col.dtype, np.floating):
            # times agree to a nanosecond (differences of ~100 s clocks carry ~1e-13 s of rounding)
            np.testing.assert_allclose(col, b.requests[name], rtol=rel, atol=1e-9 if rel else 0, err_msg=name)
        else:
            np.testing.assert_array_equal(col, b.requests[name], err_msg=name)
    assert a.summary.keys() == b.summary.keys()
    for k, v in a.summary.items():
        w = b.summary[k]
        if isinstance(v, float):
            assert v == pytest.approx(w, rel=rel, abs=1e-9 if rel else 0, nan_ok=True), k
        else:
            assert v == w, k
    assert np.array_equal(a.tbt_hist[1], b.tbt_hist[1])


@pytest.mark.parametrize("router", ["round_robin", "least_outstanding", "least_kv"])
@pytest.mark.parametrize("policy,kv_policy", [("chunked", "reserve"), ("continuous", "preempt"), ("static", "reserve")])
def test_closed_form_decode_runs_match_plain_event_loop(router, policy, kv_policy):
    # A step-cost backend with a decode ramp (flat at first, then growing with the context,
    # like a roofline max) takes the closed-form path; its sums differ from stepping one
    # by one only in float rounding.
    cost = AffineCost(fixed_s=0.004, per_token_s=2e-5, per_ctx_s=2e-7, floor_s=0.0085, kv_tokens=12000)
    a, b = _run_both(cost, count=3, router=router, policy=policy, kv_policy=kv_policy, max_batch_seqs=16)
    _assert_close(a, b, rel=1e-9)


@pytest.mark.parametrize("pp", [1, 2])
def test_gpu_backends_fast_path_matches_plain_event_loop(pp):
    # pp=1: closed-form runs from GpuStepCost's decode ramp. pp=2: a pipelined instance, whose
    # decode steps carry a lane's share, must not use the lane's own ramp.
    from twinfer.gpu.step_cost import GpuStepCost
    from twinfer.hardware import get_hardware
    from twinfer.models import load_model
    from twinfer.perf.pipeline import pipelined

    cost = pipelined(GpuStepCost(load_model("llama-3-8b"), get_hardware("h100"), tp=1, pp=pp))
    a, b = _run_both(cost, n=400, rate=40.0, count=2)
    _assert_close(a, b, rel=1e-9 if pp == 1 else 0.0)
