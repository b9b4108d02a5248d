"""A fixed-latency fake fleet: every request gets the same TTFT and inter-token time.

It implements :class:`twinfer.serve.pacing.FleetSim` with no queueing and no
batching, so the server's pacing can be checked against closed-form times
(token i of a request arriving at a is produced at a + ttft + i * itl), and
the server can run before or without the full simulator.
"""

from __future__ import annotations

import heapq

from twinfer.serve.pacing import TokenEvent


class FixedLatencySim:
    """Each request's token ``i`` is produced at ``arrival + ttft_s + i * itl_s`` (simulated s)."""

    def __init__(self, *, ttft_s: float, itl_s: float) -> None:
        if ttft_s < 0 or itl_s < 0:
            raise ValueError("ttft_s and itl_s must be >= 0")
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self._clock_s = 0.0
        self._next_key = 0
        # (time, key, index): ties broken by key then index, deterministically
        self._heap: list[tuple[float, int, int]] = []
        self._wanted: dict[int, int] = {}  # key -> tokens wanted, for live requests

    def submit(self, prompt_tokens: int, max_tokens: int, arrival_s: float) -> int:
        """Add a request; its first token is due ``ttft_s`` after ``arrival_s``."""
        key = self._next_key
        self._next_key += 1
        self._wanted[key] = max_tokens
        heapq.heappush(self._heap, (max(arrival_s, self._clock_s) + self.ttft_s, key, 0))
        return key

    def cancel(self, key: int, at_s: float) -> None:
        """Forget the request; its pending token is dropped when popped."""
        self._wanted.pop(key, None)

    def run_until(self, t_s: float) -> list[TokenEvent]:
        """Pop every token due at or before ``t_s``."""
        events: list[TokenEvent] = []
        while self._heap and self._heap[0][0] <= t_s:
            time_s, key, index = heapq.heappop(self._heap)
            wanted = self._wanted.get(key)
            if wanted is None:
                continue
            last = index + 1 >= wanted
            events.append(TokenEvent(key=key, index=index, time_s=time_s, last=last))
            if last:
                del self._wanted[key]
            else:
                heapq.heappush(self._heap, (time_s + self.itl_s, key, index + 1))
        self._clock_s = max(self._clock_s, t_s)
        return events

    def next_event_s(self) -> float | None:
        """Time of the earliest pending token of a live request."""
        while self._heap and self._heap[0][1] not in self._wanted:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None
