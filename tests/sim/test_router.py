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


def test_least_outstanding_of_is_exact_when_an_arrival_ties_a_step_end_to_the_last_bit():
    # A day into a trace with ~5 ms steps, a step's computed end can round below its exact
    # value: a floor that trusted (now - t0) / dt0 would then count one step too few and skip
    # the instance that truly has less work. Truth here comes from exact rational arithmetic.
    from fractions import Fraction
    from types import SimpleNamespace

    from twinfer.sim.decode_run import DecodeRun

    t0, dt0 = 86400.123456, 0.005123
    for s in range(1, 100_000):
        now = t0 + s * dt0  # the float end of step s, as the run computes it (flat run)
        if Fraction(now) < Fraction(t0) + s * Fraction(dt0) and int((now - t0) / dt0 + 1e-9) < s:
            break
    else:
        pytest.skip("no rounding tie found on this platform")
    run = DecodeRun(t0, 1, dt0, 0.0, s + 50, t0)
    assert run.steps_by(now) == s  # by the run's own clock, step s has ended
    env = SimpleNamespace(now=now)
    idle = SimpleNamespace(_run=None, sched=SimpleNamespace(outstanding=1001), env=env)
    busy = SimpleNamespace(_run=run, sched=SimpleNamespace(outstanding=1000 + s), env=env)
    assert least_outstanding_of([idle, busy]) is busy  # 1000 tokens left beats 1001
