"""RealtimeFleet: the simulated clock mapped onto the asyncio loop, checked with a fixed-latency fleet."""

from __future__ import annotations

import asyncio

import pytest

from twinfer.serve.fixed import FixedLatencySim
from twinfer.serve.pacing import QueueFullError, RealtimeFleet


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of sleeping.

    RealtimeFleet reads time only from ``loop.time()`` and wakes through
    ``call_at``, so on this loop every token's send time is exactly its
    simulated time: pacing can be asserted exactly, with no wall-clock margin.
    Only for tests without real I/O (it relies on asyncio's private timer heap).
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        if not self._ready and self._scheduled:  # idle: jump to the earliest timer
            self._virtual_now = max(self._virtual_now, self._scheduled[0].when())
        super()._run_once()


def run(coro):
    """Run ``coro`` on a fresh virtual-clock event loop."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def collect(
    fleet: RealtimeFleet, prompt: int, wanted: int
) -> tuple[float, list[float], list[int]]:
    """Submit one request; returns (wall arrival time, wall time of each token, token indices)."""
    loop = asyncio.get_running_loop()
    request = fleet.submit(prompt, wanted)
    t_submit = fleet.wall_at(request.arrival_s)
    assert t_submit <= loop.time()
    times, indices = [], []
    async for event in request.tokens():
        times.append(loop.time())
        indices.append(event.index)
    return t_submit, times, indices


def test_fixed_sim_token_times_are_closed_form():
    sim = FixedLatencySim(ttft_s=0.5, itl_s=0.1)
    a = sim.submit(10, 3, arrival_s=1.0)
    b = sim.submit(10, 2, arrival_s=1.2)
    events = sim.run_until(100.0)
    got = {(e.key, e.index): (e.time_s, e.last) for e in events}
    assert got[(a, 0)] == pytest.approx((1.5, False))
    assert got[(a, 2)] == pytest.approx((1.7, True))
    assert got[(b, 1)] == pytest.approx((1.8, True))
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)
    assert sim.next_event_s() is None


def test_tokens_are_never_early_and_arrive_on_schedule():
    async def main():
        ttft, itl, wanted = 0.05, 0.02, 6
        fleet = RealtimeFleet(FixedLatencySim(ttft_s=ttft, itl_s=itl))
        t_submit, times, indices = await collect(fleet, 8, wanted)
        assert indices == list(range(wanted))
        for i, t in enumerate(times):
            # On the virtual clock a token goes out exactly at its simulated time: never early, never late.
            assert t == pytest.approx(t_submit + ttft + i * itl, abs=1e-9)
        fleet.close()

    run(main())


def test_speed_scales_wall_time():
    async def main():
        # 1 simulated second of TTFT at 20x speed is 50 ms of wall time
        fleet = RealtimeFleet(FixedLatencySim(ttft_s=1.0, itl_s=0.2), speed=20.0)
        t_submit, times, _ = await collect(fleet, 8, 3)
        assert times[0] - t_submit == pytest.approx(1.0 / 20, abs=1e-9)
        assert times[2] - t_submit == pytest.approx((1.0 + 2 * 0.2) / 20, abs=1e-9)
        fleet.close()

    run(main())


def test_idle_fleet_arms_no_timer_and_cancel_frees_the_request():
    async def main():
        sim = FixedLatencySim(ttft_s=0.01, itl_s=0.01)
        fleet = RealtimeFleet(sim)
        assert fleet._timer is None
        await collect(fleet, 4, 3)
        assert fleet._timer is None and fleet.in_flight == 0
        request = fleet.submit(4, 1000)
        assert fleet.in_flight == 1 and fleet._timer is not None
        async for event in request.tokens():
            if event.index == 2:
                break
        request.cancel()
        assert fleet.in_flight == 0 and fleet.queue_length == 0
        assert sim.next_event_s() is None and fleet._timer is None
        fleet.close()

    run(main())


def test_queue_limit_rejects_when_full():
    async def main():
        fleet = RealtimeFleet(FixedLatencySim(ttft_s=10.0, itl_s=0.01), max_queue=2)
        fleet.submit(4, 4)
        fleet.submit(4, 4)
        assert fleet.queue_length == 2
        with pytest.raises(QueueFullError):
            fleet.submit(4, 4)
        fleet.close()

    run(main())


def test_concurrent_requests_each_keep_their_schedule():
    async def main():
        ttft, itl = 0.03, 0.01
        fleet = RealtimeFleet(FixedLatencySim(ttft_s=ttft, itl_s=itl))
        results = await asyncio.gather(*(collect(fleet, 4, 5) for _ in range(16)))
        for t_submit, times, indices in results:
            assert indices == list(range(5))
            assert times[0] >= t_submit + ttft - 1e-6
        assert fleet.in_flight == 0
        fleet.close()

    run(main())


def test_arrival_is_backdated_to_when_the_request_reached_the_server():
    async def main():
        loop = asyncio.get_running_loop()
        fleet = RealtimeFleet(FixedLatencySim(ttft_s=0.05, itl_s=0.01))
        reached = loop.time()
        await asyncio.sleep(0.03)  # body read and prompt counted meanwhile; the fleet was idle
        request = fleet.submit(4, 2, arrived_wall=reached)
        assert fleet.wall_at(request.arrival_s) == pytest.approx(reached, abs=1e-6)
        async for _ in request.tokens():
            break
        assert loop.time() >= reached + 0.05 - 1e-6  # TTFT counts from when it reached the server
        # the simulation already ran past an older time: the arrival is clamped, never in the past
        older = loop.time() - 0.02
        fleet.submit(4, 2)  # runs the fleet up to now
        late = fleet.submit(4, 2, arrived_wall=older)
        assert fleet.wall_at(late.arrival_s) > older + 0.015
        fleet.close()

    run(main())
