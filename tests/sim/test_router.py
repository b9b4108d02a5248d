"""Routing policies, and the least-outstanding router's shortcut over committed decode runs."""

from __future__ import annotations

import pytest
from sim_factories import AffineCost, make_fleet, make_requests

from twinfer.errors import UnknownNameError
from twinfer.sim.instance import least_outstanding_of
from twinfer.sim.router import make_router


def test_least_outstanding_of_equals_brute_force_mid_run():
    # Stop a lazy run at many times: instances hold committed decode runs part-way through;
    # the one-pass pick (floors, then exact figures) must equal min() over exact figures.
    cost = AffineCost(fixed_s=0.004, per_token_s=2e-5, per_ctx_s=2e-7, floor_s=0.0085, kv_tokens=50000)
    t, p, o = make_requests(800, 40.0, (20, 900), (1, 300), seed=5)
    sim = make_fleet(cost, count=6, max_batch_seqs=32)
    sim.load_workload(t, p, o)
    with_runs = 0
    for k in range(1, 400):
        sim.run_until(k * 0.05)
        insts = sim.instances
        with_runs += sum(i._run is not None for i in insts)
        want = min(insts, key=lambda i: i.outstanding_now())
        assert least_outstanding_of(insts) is want
    assert with_runs > 200  # the shortcut was exercised on instances in the middle of runs
    sim.run_until()
    assert sim.done()


def test_round_robin_cycles_and_unknown_policy_is_a_clear_error():
    pick = make_router("round_robin")
    assert [pick(["a", "b", "c"], None) for _ in range(5)] == ["a", "b", "c", "a", "b"]
    with pytest.raises(UnknownNameError, match="unknown routing policy 'fastest'"):
        make_router("fastest", "mixed pool")
