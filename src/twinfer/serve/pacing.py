"""Run a simulated fleet in real time on the asyncio loop and pace each request's tokens.

A :class:`FleetSim` is any discrete-event model of a fleet that can take one
request at a time, advance its clock, and report when each token is produced
(the twinfer simulator through :mod:`twinfer.serve.sim_fleet`, or the
fixed-latency fake in :mod:`twinfer.serve.fixed`). :class:`RealtimeFleet`
maps simulated time onto the loop's monotonic clock (simulated seconds = wall
seconds x ``speed``), submits requests at their wall arrival time, and keeps
exactly one loop timer armed at the fleet's next event. The fleet never runs
ahead of the wall clock, so what a request sees (queueing behind other
clients included) is what the simulator says, token by token. An idle fleet
has no timer armed and costs no CPU; there is no thread and no task per request.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One token of one request produced by the simulated fleet."""

    key: int  # the request's key, as returned by FleetSim.submit
    index: int  # 0-based token index; index 0 is the first token (ends TTFT)
    time_s: float  # simulated time the token is produced
    last: bool  # True for the request's final token


class FleetSim(Protocol):
    """An incremental fleet simulation: submit, cancel, advance, peek at the next event."""

    def submit(self, prompt_tokens: int, max_tokens: int, arrival_s: float) -> int:
        """Add a request arriving at ``arrival_s`` (>= the clock); returns its key."""
        ...

    def cancel(self, key: int, at_s: float) -> None:
        """Drop a request at ``at_s`` (client gone, stop string hit); frees its slot and KV."""
        ...

    def run_until(self, t_s: float) -> list[TokenEvent]:
        """Process every event at or before ``t_s``; returns the tokens produced, in time order."""
        ...

    def next_event_s(self) -> float | None:
        """Simulated time of the next pending event, or None when the fleet is idle."""
        ...


class QueueFullError(Exception):
    """The fleet's waiting queue is at its limit and the config says to reject (HTTP 429)."""


class PacedRequest:
    """A request in the real-time fleet: iterate it to receive its tokens when they are due."""

    def __init__(self, fleet: RealtimeFleet, key: int, arrival_s: float) -> None:
        self._fleet = fleet
        self.key = key
        self.arrival_s = arrival_s  # simulated arrival time
        self.token_times_s: list[float] = []  # simulated time of each token delivered so far
        self._pending: collections.deque[TokenEvent] = collections.deque()
        self._wakeup = asyncio.Event()
        self.done = False  # last token delivered or cancelled
        self.cancelled = False
        self._sim_done = False  # the fleet produced the last token (nothing left to cancel)

    def wall_at(self, sim_s: float) -> float:
        """Loop time at which the fleet's simulated time ``sim_s`` is reached."""
        return self._fleet.wall_at(sim_s)

    def _push(self, event: TokenEvent) -> None:
        self._pending.append(event)
        self._wakeup.set()

    async def tokens(self) -> AsyncIterator[TokenEvent]:
        """Yield each token event as the wall clock reaches its simulated time."""
        while True:
            while not self._pending:
                if self.done:  # cancelled, or the fleet was closed
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            event = self._pending.popleft()
            self.token_times_s.append(event.time_s)
            if event.last:
                self.done = True
            yield event
            if event.last:
                return

    def cancel(self) -> None:
        """Stop this request in the simulation (idempotent; no-op once finished)."""
        if self.done:
            return
        self.done = True
        self.cancelled = True
        if not self._sim_done:
            self._fleet._cancel(self)


class RealtimeFleet:
    """A :class:`FleetSim` driven by the asyncio loop's clock, ``speed`` simulated s per wall s.

    ``max_queue`` bounds the requests admitted but still waiting for their
    first token; beyond it :meth:`submit` raises :class:`QueueFullError`
    (None: unbounded, the simulator queues them).
    """

    def __init__(self, sim: FleetSim, *, speed: float = 1.0, max_queue: int | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._sim = sim
        self.speed = speed
        self.max_queue = max_queue
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._sim_clock_s = 0.0  # latest time the simulation was run to (never goes back)
        self._requests: dict[int, PacedRequest] = {}
        self._waiting: set[int] = set()  # keys admitted, first token not produced yet
        # wall lateness of recent token dispatches behind their simulated time
        self.lateness_s: collections.deque[float] = collections.deque(maxlen=100_000)

    # ---- clock ---------------------------------------------------------
    def sim_now(self) -> float:
        """Current simulated time."""
        return (self._loop.time() - self._t0) * self.speed

    def wall_at(self, sim_s: float) -> float:
        """Loop time at which simulated time ``sim_s`` is reached."""
        return self._t0 + sim_s / self.speed

    # ---- state ---------------------------------------------------------
    @property
    def queue_length(self) -> int:
        """Requests admitted and still waiting for their first token."""
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet finished or cancelled."""
        return len(self._requests)

    # ---- requests ------------------------------------------------------
    def submit(
        self, prompt_tokens: int, max_tokens: int, *, arrived_wall: float | None = None
    ) -> PacedRequest:
        """Admit a request; raises QueueFullError when the waiting queue is full.

        ``arrived_wall`` (loop time) backdates the arrival to when the request
        reached the server, before its body was read and its prompt counted, as
        far as causality allows: never before the simulated time already run.
        """
        now = (self._loop.time() - self._t0) * self.speed
        target = now if arrived_wall is None else min(now, (arrived_wall - self._t0) * self.speed)
        self._advance(to_s=target)
        if self.max_queue is not None and len(self._waiting) >= self.max_queue:
            raise QueueFullError(
                f"the simulated fleet has {len(self._waiting)} requests waiting "
                f"(limit {self.max_queue})"
            )
        arrival = max(self._sim_clock_s, target)  # never before what the simulation already ran
        key = self._sim.submit(prompt_tokens, max_tokens, arrival)
        request = PacedRequest(self, key, arrival)
        self._requests[key] = request
        self._waiting.add(key)
        self._sim_clock_s = arrival  # later arrivals cannot be backdated before this one
        self._advance()  # catch up with the wall clock
        self._arm()
        return request

    def _cancel(self, request: PacedRequest) -> None:
        self._advance()
        if self._requests.pop(request.key, None) is not None:
            self._waiting.discard(request.key)
            self._sim.cancel(request.key, self._sim_clock_s)
        self._arm()

    def close(self) -> None:
        """Disarm the timer and cancel every request still in the fleet."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for request in list(self._requests.values()):
            request.done = True
            request.cancelled = True
            request._wakeup.set()
        self._requests.clear()
        self._waiting.clear()

    # ---- event loop plumbing --------------------------------------------
    def _advance(self, at_least_s: float = 0.0, *, to_s: float | None = None) -> None:
        """Run the simulation up to now (or ``to_s``) and hand each produced token to its request.

        ``at_least_s`` is the simulated time a timer was armed for: float
        rounding of the wall/sim mapping must not leave its event unprocessed.
        The clock never goes back.
        """
        now_wall = self._loop.time()
        target = max((now_wall - self._t0) * self.speed if to_s is None else to_s, at_least_s)
        nxt = self._sim.next_event_s()
        if nxt is None or nxt > target:
            # Nothing is due: leave the simulated clock where it is, so that a request whose
            # arrival is backdated (see submit) can still land before ``target`` causally.
            return
        self._sim_clock_s = max(self._sim_clock_s, target)
        for event in self._sim.run_until(self._sim_clock_s):
            request = self._requests.get(event.key)
            if request is None:  # cancelled; the simulator may still report a token in flight
                continue
            if event.index == 0:
                self._waiting.discard(event.key)
            if event.last:
                del self._requests[event.key]
                self._waiting.discard(event.key)
                request._sim_done = True
            self.lateness_s.append(now_wall - self.wall_at(event.time_s))
            request._push(event)

    def _arm(self) -> None:
        """Keep one timer armed at the next simulated event (none when idle)."""
        nxt = self._sim.next_event_s()
        when = None if nxt is None else self.wall_at(nxt)
        if when == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None and nxt is not None:
            self._timer = self._loop.call_at(when, self._on_timer, nxt)

    def _on_timer(self, due_s: float) -> None:
        self._timer = None
        self._timer_at = None
        self._advance(due_s)
        self._arm()
