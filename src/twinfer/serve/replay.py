"""What the simulator predicts for a load, computed offline (no wall clock) for comparison.

Two ways to put a load on a :class:`~twinfer.serve.pacing.FleetSim`:

* :func:`replay_open` submits requests at given arrival times (e.g. the ones
  the server recorded while a load generator drove it);
* :func:`replay_closed` runs ``concurrency`` users that each send the next
  request the moment their previous answer ends (a load generator's
  ``--concurrency N`` mode with zero client overhead).

Both return per-request token times, from which :func:`latency_stats` takes
TTFT and inter-token latency the way load generators define them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twinfer.serve.pacing import FleetSim, TokenEvent


@dataclass(frozen=True)
class ReplayedRequest:
    """One request of a replay: its arrival and every token's simulated time."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    token_times_s: tuple[float, ...]

    @property
    def ttft_s(self) -> float:
        """Time to first token."""
        return self.token_times_s[0] - self.arrival_s

    @property
    def itl_s(self) -> float:
        """(last - first token) / (tokens - 1), as aiperf and genai-perf define inter-token latency."""
        n = len(self.token_times_s)
        return (self.token_times_s[-1] - self.token_times_s[0]) / (n - 1) if n > 1 else float("nan")


def _collect(events: list[TokenEvent], times: dict[int, list[float]]) -> list[TokenEvent]:
    for ev in events:
        times[ev.key].append(ev.time_s)
    return [ev for ev in events if ev.last]


def replay_open(
    sim: FleetSim, arrivals_s: Sequence[float], prompts: Sequence[int], outputs: Sequence[int]
) -> list[ReplayedRequest]:
    """Submit each request at its arrival time (any order given; processed sorted) and run to the end."""
    order = sorted(range(len(arrivals_s)), key=lambda i: (arrivals_s[i], i))
    times: dict[int, list[float]] = {}
    keys: dict[int, int] = {}
    for i in order:
        _collect(sim.run_until(arrivals_s[i]), times)
        keys[i] = sim.submit(int(prompts[i]), int(outputs[i]), float(arrivals_s[i]))
        times[keys[i]] = []
    _collect(sim.run_until(float("inf")), times)
    return [
        ReplayedRequest(
            float(arrivals_s[i]), int(prompts[i]), int(outputs[i]), tuple(times[keys[i]])
        )
        for i in range(len(arrivals_s))
    ]


def replay_closed(
    sim: FleetSim, prompts: Sequence[int], outputs: Sequence[int], concurrency: int
) -> list[ReplayedRequest]:
    """``concurrency`` users send requests in the given order, each as soon as its previous answer ends."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    times: dict[int, list[float]] = {}
    started: dict[int, tuple[int, float]] = {}  # key -> (request index, arrival)
    nxt = 0

    def send(at_s: float) -> None:
        nonlocal nxt
        key = sim.submit(int(prompts[nxt]), int(outputs[nxt]), at_s)
        times[key] = []
        started[key] = (nxt, at_s)
        nxt += 1

    while nxt < min(concurrency, len(prompts)):
        send(0.0)
    while True:
        t = sim.next_event_s()
        if t is None:
            break
        for ev in _collect(sim.run_until(t), times):
            if nxt < len(prompts):
                send(ev.time_s)
    out: list[ReplayedRequest | None] = [None] * len(prompts)
    for key, (i, arrival) in started.items():
        out[i] = ReplayedRequest(arrival, int(prompts[i]), int(outputs[i]), tuple(times[key]))
    return [r for r in out if r is not None]


def latency_stats(values_s: Sequence[float]) -> dict[str, float]:
    """mean, p50, p90, p99 (numpy's linear interpolation) of finite values, in seconds."""
    arr = np.asarray([v for v in values_s if np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"avg": float("nan"), "p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    return {
        "avg": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
    }
