"""Routing policies, and the least-outstanding router's shortcut over committed decode runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sim_factories import AffineCost, make_fleet, make_requests

from twinfer.errors import UnknownNameError
from twinfer.sim.instance import Instance, InstanceLoads
from twinfer.sim.router import ROUTERS, make_router


def test_least_outstanding_equals_brute_force_mid_run():
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
        want = min(range(len(insts)), key=lambda i: insts[i].outstanding_now())
        assert InstanceLoads(insts).least_outstanding() == want
    assert with_runs > 200  # the shortcut was exercised on instances in the middle of runs
    sim.run_until()
    assert sim.done()


def test_round_robin_cycles_and_unknown_policy_is_a_clear_error():
    pick = make_router("round_robin")
    assert [pick(["a", "b", "c"], None) for _ in range(5)] == [0, 1, 2, 0, 1]  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="unknown routing policy 'fastest'"):
        make_router("fastest", "mixed pool")


def test_least_outstanding_is_exact_when_an_arrival_ties_a_step_end_to_the_last_bit():
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
    for inst in (idle, busy):
        inst.outstanding_now = Instance.outstanding_now.__get__(inst)
    assert InstanceLoads([idle, busy]).least_outstanding() == 1  # type: ignore[list-item]  # 1000 tokens left beats 1001


class _Load:
    """A hand-made pool load: outstanding tokens and KV fractions per instance."""

    def __init__(self, work: list[int], kv: list[float]) -> None:
        self.work, self.kv = work, kv

    def __len__(self) -> int:
        return len(self.work)

    def outstanding_tokens(self, i: int) -> int:
        return self.work[i]

    def kv_used_frac(self, i: int) -> float:
        return self.kv[i]

    def least_outstanding(self) -> int:
        return min(range(len(self.work)), key=self.work.__getitem__)


# What each router must pick on this load: instance 1 has the least work, 2 the most free KV
# (tied with 3, which has more work), and round robin starts at 0. kv_aware sends a request
# without prefix keys to the least loaded instance.
EXPECTED_PICK = {"round_robin": 0, "least_outstanding": 1, "least_kv": 2, "kv_aware": 1}


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_router_reads_only_the_load_view(name):
    assert name in EXPECTED_PICK, f"router {name!r} is registered without an expected pick in this test"
    load = _Load(work=[500, 100, 300, 900], kv=[0.5, 0.6, 0.2, 0.2])
    assert make_router(name)(load, None) == EXPECTED_PICK[name]


def test_kv_aware_pairing_counts_kv_still_queued_on_a_prefill_instances_link():
    """Two prefill instances with the same cache and the same load: the one whose outbound KV link still has
    3,000 tokens (6 blocks of 512) to ship loses; with the backlog under the other one, the choice flips."""
    from twinfer.kvcache.kv_route import InstanceSnapshot

    class Load(_Load):
        def __init__(self, backlog: list[float]) -> None:
            super().__init__(work=[0, 0], kv=[0.0, 0.0])
            self.backlog = backlog

        def prefix_snapshot(self, i: int) -> InstanceSnapshot:
            return InstanceSnapshot(i, 0, 10, 0, lambda keys: 0)

        def prefix_block_tokens(self) -> int:
            return 512

        def kv_link_backlog_tokens(self, i: int) -> float:
            return self.backlog[i]

    request = SimpleNamespace(keys=(1, 2, 3), prompt_tokens=1536)
    route = make_router("kv_aware")
    assert route(Load([3000.0, 0.0]), request) == 1
    assert route(Load([0.0, 3000.0]), request) == 0
