"""FleetSim.cancel / Scheduler.cancel: a cancelled request frees its slot and KV at the right moment.

Every step of FixedCost(fixed_s=0.01) lasts 10 ms whatever it holds, so the times below are counted by hand.
"""

from __future__ import annotations

import pytest
from sim_factories import FixedCost, make_fleet

from twinfer.sim.cluster import LinkSetup
from twinfer.sim.request import RequestState

STEP = FixedCost(fixed_s=0.01)


def _all_free(sim) -> bool:
    return all(i.sched.free_blocks == i.sched.total_blocks and i.sched.held() == 0 and not i.sched.waiting
               and i.held == 0 and i.waiting == 0 for i in sim.instances)


def test_a_decoding_request_leaves_after_the_step_in_flight():
    sim = make_fleet(STEP)
    a = sim.submit(10, 100, 0.0)
    b = sim.submit(10, 5, 0.0)
    # step 1 [0, 10 ms] prefills both (first tokens); decode steps end at 20, 30, 40 ms ...
    sim.run_until(0.035)  # the decode step [30, 40] ms is in flight
    sim.cancel(a)
    assert a.state is RequestState.DECODING  # still in the step in flight
    sim.run_until()
    assert a.state is RequestState.CANCELLED and a.generated == 4  # tokens at 10, 20, 30, 40 ms
    assert b.state is RequestState.DONE and b.finish_s == pytest.approx(0.05)
    assert (sim.completed, sim.cancelled) == (1, 1) and sim.done() and _all_free(sim)


def test_a_queued_request_leaves_at_once_and_the_other_runs_as_if_alone():
    sim = make_fleet(STEP, max_batch_seqs=1)
    a = sim.submit(10, 50, 0.0)
    b = sim.submit(10, 50, 0.0)
    sim.run_until(0.005)
    assert b.state is RequestState.WAITING
    sim.cancel(b)
    assert b.state is RequestState.CANCELLED and sim.cancelled == 1
    assert not sim.instances[0].sched.waiting and sim.instances[0].waiting == 0
    sim.run_until()
    assert a.finish_s == pytest.approx(0.01 + 49 * 0.01)  # prefill, then 49 decode steps alone
    assert sim.completed == 1 and _all_free(sim)


def test_a_request_cancelled_before_it_arrives_never_runs():
    sim = make_fleet(STEP)
    a = sim.submit(10, 5, at_s=1.0)
    sim.cancel(a)
    sim.run_until()
    assert a.state is RequestState.CANCELLED and a.prefill_start_s != a.prefill_start_s  # NaN: never started
    assert (sim.completed, sim.cancelled) == (0, 1) and _all_free(sim)


def _disaggregated(**kw):
    # 100 prompt tokens x 1000 B = 1e5 B over 1e6 B/s: a KV transfer takes 100 ms
    return make_fleet(STEP, decode_count=1, link=LinkSetup(bw_bytes_per_s=1e6, latency_s=0.0), **kw)


def test_a_request_cancelled_while_its_kv_moves_frees_the_decode_reservation_when_the_transfer_ends():
    sim = _disaggregated()
    a = sim.submit(100, 20, 0.0)
    sim.run_until(0.05)  # prefilled at 10 ms, KV on the link until 110 ms
    assert a.state is RequestState.TRANSFERRING
    sim.cancel(a)
    dec = sim.pools["decode"].instances[0].sched
    assert dec.reserved_remote == 1  # still reserved while the bytes move
    sim.run_until()
    assert a.state is RequestState.CANCELLED and a.kv_end_s == pytest.approx(0.11)
    assert a.decode_start_s != a.decode_start_s  # never decoded
    assert sim.cancelled == 1 and _all_free(sim)


def test_a_request_waiting_for_decode_room_leaves_at_once():
    sim = _disaggregated(max_batch_seqs=1)
    a = sim.submit(100, 20, 0.0)
    b = sim.submit(100, 20, 0.0)
    sim.run_until(0.05)  # a reserved the only decode slot; b, prefilled at 20 ms, waits for room
    assert len(sim.pools["decode"].pending) == 1 and b.state is RequestState.TRANSFERRING
    sim.cancel(b)
    assert b.state is RequestState.CANCELLED and not sim.pools["decode"].pending
    assert sim.pools["prefill"].instances[0].sched.free_blocks == sim.pools["prefill"].instances[0].sched.total_blocks - 7
    sim.run_until()  # (a still holds its 7 prefill blocks of 16 tokens until its transfer ends)
    assert a.state is RequestState.DONE and a.finish_s == pytest.approx(0.11 + 19 * 0.01)
    assert (sim.completed, sim.cancelled) == (1, 1) and _all_free(sim)


def test_a_request_cancelled_during_its_prefill_is_not_handed_off():
    sim = _disaggregated()
    a = sim.submit(100, 20, 0.0)
    sim.run_until(0.005)
    sim.cancel(a)
    sim.run_until()
    assert a.state is RequestState.CANCELLED and a.first_token_s == pytest.approx(0.01)  # the step in flight
    assert a.kv_start_s != a.kv_start_s  # NaN: no transfer
    assert sim.kv_bytes == 0 and sim.cancelled == 1 and _all_free(sim)
