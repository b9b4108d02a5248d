"""SimulatedFleet: the simulator's incremental mode, checked against its own batch mode."""

from __future__ import annotations

import numpy as np
import pytest
from serve_helpers import make_cluster  # noqa: E402

from twinfer.errors import CapacityError  # noqa: E402
from twinfer.serve.sim_fleet import SimulatedFleet  # noqa: E402

ARRIVALS = [0.0, 0.013, 0.05, 0.051, 0.2, 0.31]
PROMPTS = [500, 120, 2000, 64, 900, 300]
OUTPUTS = [12, 30, 5, 40, 8, 20]


def drive(fleet: SimulatedFleet, arrivals, prompts, outputs, tick_s: float = 0.007):
    """Submit each request at its arrival, advancing in small ticks as the real-time driver does."""
    tokens: dict[int, list[float]] = {}
    keys = []
    t = 0.0
    pending = list(zip(arrivals, prompts, outputs, strict=True))
    while pending or fleet.next_event_s() is not None:
        while pending and pending[0][0] <= t:
            a, p, o = pending.pop(0)
            for ev in fleet.run_until(a):
                tokens.setdefault(ev.key, []).append(ev.time_s)
            keys.append(fleet.submit(p, o, a))
        t += tick_s
        for ev in fleet.run_until(t):
            tokens.setdefault(ev.key, []).append(ev.time_s)
    return keys, tokens


def batch_times(arrivals, prompts, outputs, **kw):
    """(first token, finish) per request from the simulator's batch mode."""
    sim = make_cluster(track_tokens=False, **kw)
    sim.load_workload(arrivals, prompts, outputs)
    sim.run_until()
    return [(r.first_token_s, r.finish_s) for r in sim.requests]


@pytest.mark.parametrize(
    "kw", [{}, {"max_batch_seqs": 2}, {"policy": "continuous"}, {"decode_count": 1}]
)
def test_incremental_tokens_match_batch_mode(kw):
    keys, tokens = drive(SimulatedFleet(make_cluster(**kw)), ARRIVALS, PROMPTS, OUTPUTS)
    expected = batch_times(ARRIVALS, PROMPTS, OUTPUTS, **kw)
    for key, wanted, (first, finish) in zip(keys, OUTPUTS, expected, strict=True):
        times = tokens[key]
        assert len(times) == wanted
        assert times[0] == pytest.approx(first, abs=1e-12)
        assert times[-1] == pytest.approx(finish, abs=1e-12)
        assert np.all(np.diff(times) > 0)


def test_cancel_while_decoding_frees_kv_and_acts_like_a_shorter_request():
    sim = make_cluster()
    fleet = SimulatedFleet(sim)
    a = fleet.submit(500, 100, 0.0)
    b = fleet.submit(300, 40, 0.0)
    got: dict[int, list[float]] = {a: [], b: []}
    t = 0.0
    while len(got[a]) < 10:  # cancel request a after its 10th token
        t += 0.005
        for ev in fleet.run_until(t):
            got[ev.key].append(ev.time_s)
    cut = len(got[a])
    fleet.cancel(a, t)
    for ev in fleet.run_until(float("inf")):
        got[ev.key].append(ev.time_s)
    assert len(got[a]) == cut  # nothing more delivered for a
    sched = sim.instances[0].sched
    assert sched.free_blocks == sched.total_blocks and sched.held() == 0 and not sched.waiting
    # b sees exactly what it would beside a request that wanted cut + 1 tokens (the step in flight)
    _, (b_first, b_finish) = batch_times([0.0, 0.0], [500, 300], [cut + 1, 40])
    assert got[b][0] == pytest.approx(b_first, abs=1e-12) and got[b][-1] == pytest.approx(
        b_finish, abs=1e-12
    )


def test_cancel_while_waiting_removes_it_from_the_queue():
    sim = make_cluster(max_batch_seqs=1)
    fleet = SimulatedFleet(sim)
    fleet.submit(100, 50, 0.0)
    waiting = fleet.submit(100, 50, 0.0)
    fleet.run_until(0.1)
    assert sim.instances[0].sched.waiting[0].rid == waiting
    fleet.cancel(waiting, 0.1)
    inst = sim.instances[0]
    counters = inst if hasattr(inst, "waiting") else sim.pools["mixed"]
    assert not inst.sched.waiting and counters.waiting == 0
    events = fleet.run_until(float("inf"))
    assert {ev.key for ev in events} == {0}
    assert sim.instances[0].sched.free_blocks == sim.instances[0].sched.total_blocks


def test_cancel_during_prefill_stops_after_the_first_token():
    sim = make_cluster()
    fleet = SimulatedFleet(sim)
    key = fleet.submit(4000, 50, 0.0)  # chunked prefill of 2048-token budget: two steps
    fleet.run_until(0.001)
    fleet.cancel(key, 0.001)
    assert fleet.run_until(float("inf")) == []
    sched = sim.instances[0].sched
    assert sched.free_blocks == sched.total_blocks and sched.held() == 0


def test_request_larger_than_the_kv_cache_is_refused():
    fleet = SimulatedFleet(make_cluster())
    with pytest.raises(CapacityError):
        fleet.submit(90_000, 20_000, 0.0)  # 110k tokens > the 100k-token KV cache
