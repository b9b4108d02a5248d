"""Golden tests: the simulator against closed-form queueing results."""

from __future__ import annotations

import numpy as np
from sim_factories import FixedCost, make_fleet, make_requests

from twinfer.sim.metrics import PoolPricing, fleet_result


def _run(sim, t, p, o):
    sim.load_workload(t, p, o)
    sim.run_until()
    pricing = {r: PoolPricing("fake", 1, 1.0, 100.0, 500.0) for r in sim.pools}
    return fleet_result("t", sim, pricing, 1e9, 1e9)


def test_md1_mean_wait_matches_pollaczek_khinchine():
    # One server, one-token requests, a fixed 1 s step per request: an M/D/1 queue.
    # Pollaczek-Khinchine: Wq = rho / (2 mu (1 - rho)); rho = 0.5, mu = 1 -> Wq = 0.5 s.
    lam, d = 0.5, 1.0
    t, p, o = make_requests(60_000, lam, 8, 1, seed=1)
    sim = make_fleet(FixedCost(fixed_s=d), policy="static", max_batch_seqs=1)
    res = _run(sim, t, p, o)
    wait = res.requests["queue_s"]
    expected = (lam * d) / (2 * (1 / d) * (1 - lam * d))
    # Tolerance from batch means (waits are autocorrelated): 60 batches of 1,000 requests;
    # 4 standard errors of the batch-means estimate (false-failure chance ~1e-4).
    means = wait.reshape(60, -1).mean(axis=1)
    se = means.std(ddof=1) / np.sqrt(len(means))
    assert abs(wait.mean() - expected) < 4 * se
    assert abs(wait.mean() - expected) / expected < 0.05
    # Service is exactly d: e2e - wait == d for every request.
    np.testing.assert_allclose(res.requests["e2e_s"] - wait, d, rtol=0, atol=1e-9)


def test_littles_law_from_queue_integrals():
    # L = lambda W: the time-average number held by the pool (integrated by the pool's counters)
    # equals the arrival rate times the mean time in system (from per-request timestamps).
    t, p, o = make_requests(3000, 8.0, (20, 400), (1, 60), seed=2)
    sim = make_fleet(FixedCost(fixed_s=0.004, per_token_s=2e-5), count=2, policy="chunked", token_budget=512,
                     sample_interval_s=0.25)
    res = _run(sim, t, p, o)
    dur = res.summary["duration_s"]
    lam = len(t) / dur
    w = res.requests["e2e_s"].mean()
    assert abs(res.summary["pool.mixed.in_system_mean"] - lam * w) / (lam * w) < 1e-6
    # The waiting-queue integral against per-request queueing delay: L_q = lambda W_q.
    wq = res.requests["queue_s"].mean()
    assert abs(res.summary["pool.mixed.queue_mean"] - lam * wq) <= 1e-6 * max(lam * wq, 1e-9) + 1e-9
    # The sampled series estimates the same average (sampling at ~400 points, a loose check).
    ser = res.pools[0]
    sampled = np.mean(np.array(ser.series_running) + np.array(ser.series_waiting))
    assert abs(sampled - lam * w) / (lam * w) < 0.15


def test_single_request_latency_closed_form():
    # One 100-token prompt, 5 output tokens, step = 10 ms + 1 ms per token:
    # prefill step 110 ms (first token), then 4 decode steps of 11 ms.
    sim = make_fleet(FixedCost(fixed_s=0.010, per_token_s=0.001), policy="continuous")
    res = _run(sim, np.array([0.0]), np.array([100]), np.array([5]))
    r = res.requests
    np.testing.assert_allclose(r["ttft_s"][0], 0.110, rtol=1e-12)
    np.testing.assert_allclose(r["e2e_s"][0], 0.110 + 4 * 0.011, rtol=1e-12)
    np.testing.assert_allclose(r["tpot_s"][0], 0.011, rtol=1e-9)
    np.testing.assert_allclose(r["max_tbt_s"][0], 0.011, rtol=1e-9)


def test_summarize_reads_the_simulator_without_changing_it():
    from sim_factories import FixedCost, make_fleet, make_requests

    from twinfer.sim.metrics import PoolPricing, fleet_result

    t, p, o = make_requests(200, 30.0, (20, 400), (1, 60), seed=2)
    sim = make_fleet(FixedCost(fixed_s=0.01, per_token_s=2e-5), count=2, max_batch_seqs=4)
    sim.load_workload(t, p, o)
    sim.run_until()
    pricing = {r: PoolPricing("f", 1, 1.0, 1.0, 2.0) for r in sim.pools}

    def counters():
        return [(x.queue_area, x.in_system_area, x._last, x.waiting, x.held)
                for x in (*sim.pools.values(), *sim.instances)]

    before = counters()
    first = fleet_result("f", sim, pricing, 1.0, 0.05).summary
    assert counters() == before
    second = fleet_result("f", sim, pricing, 1.0, 0.05).summary
    assert first == second and first["pool.mixed.queue_mean"] > 0  # the queue did build up
