"""The event environment: a clock and a heap of timed callbacks, owned by one simulation.

As in SimPy, the queue orders ``(time, priority, seq)`` with ``seq`` from this
environment's own counter, so ties break deterministically and two
simulations never share state.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

#: Priorities at equal times (lower runs first): a step's end frees KV and slots
#: before transfers finish, which land before new arrivals are routed, before sampling.
PRIO_STEP_END = 0
PRIO_TRANSFER = 1
PRIO_ARRIVAL = 2
PRIO_START = 3
PRIO_SAMPLE = 4


class Environment:
    """Simulated clock plus event heap; ``schedule`` a callback, ``run_until`` a time."""

    __slots__ = ("now", "_heap", "_seq")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable[[Any], None], Any]] = []
        self._seq = 0

    def schedule(self, time_s: float, priority: int, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``fn(arg)`` at ``time_s`` (never before now)."""
        self._seq += 1
        heapq.heappush(self._heap, (time_s, priority, self._seq, fn, arg))

    def peek(self) -> float:
        """Time of the next event (inf when none)."""
        return self._heap[0][0] if self._heap else float("inf")

    def step(self) -> None:
        """Pop and run the next event."""
        t, _, _, fn, arg = heapq.heappop(self._heap)
        self.now = t
        fn(arg)

    def run_until(self, time_s: float) -> None:
        """Run every event at or before ``time_s``, then set the clock to ``time_s``."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= time_s:
            t, _, _, fn, arg = pop(heap)
            self.now = t
            fn(arg)
        if time_s > self.now and time_s != float("inf"):
            self.now = time_s

    def __len__(self) -> int:
        return len(self._heap)
