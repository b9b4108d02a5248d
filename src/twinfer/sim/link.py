"""KV-cache transfer link with processor sharing of its bandwidth.

A transfer of B bytes first waits the link's start-up latency, then joins the
set of active transfers; n active transfers each progress at ``bw / n`` bytes/s
(fair sharing, as concurrent RDMA flows over one NIC bundle roughly do). One
transfer alone therefore takes ``latency + B / bw``; two equal ones started
together both take ``latency + 2B / bw``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinfer.sim.env import PRIO_TRANSFER, Environment


class KvLink:
    """One sender's outbound KV link: ``count`` parallel links of ``bw_bytes_per_s`` each."""

    __slots__ = ("env", "index", "bw_bytes_per_s", "latency_s", "_active", "_starting", "_last_t", "_version",
                 "busy_s", "bytes_total", "transfers", "timeline")

    def __init__(self, env: Environment, index: int, bw_bytes_per_s: float, latency_s: float,
                 timeline: list | None = None) -> None:
        self.env = env
        self.index = index
        self.bw_bytes_per_s = bw_bytes_per_s
        self.latency_s = latency_s
        self._active: dict[int, list] = {}  # key -> [remaining_bytes, done_callback, arg, start_s, bytes]
        self._starting: dict[int, float] = {}  # key -> bytes of transfers still in their start-up latency
        self._last_t = 0.0
        self._version = 0
        self.busy_s = 0.0  # time with at least one transfer moving bytes
        self.bytes_total = 0.0
        self.transfers = 0
        self.timeline = timeline  # list to append (link, start_s, end_s, bytes) spans to, or None

    def start(self, key: int, num_bytes: float, done: Callable[[Any], None], arg: object) -> None:
        """Begin moving ``num_bytes``; ``done(arg)`` runs when the last byte lands."""
        self.transfers += 1
        self.bytes_total += num_bytes
        self._starting[key] = num_bytes
        self.env.schedule(self.env.now + self.latency_s, PRIO_TRANSFER, self._enter,
                          (key, num_bytes, done, arg, self.env.now))

    def backlog_bytes(self) -> float:
        """Bytes of the transfers on the link not yet moved at the current time (read-only; those still in their
        start-up latency count whole)."""
        dt = self.env.now - self._last_t
        moving = len(self._active)
        share = self.bw_bytes_per_s * dt / moving if moving and dt > 0 else 0.0
        left = sum(max(0.0, e[0] - share) for e in self._active.values())
        return left + sum(self._starting.values())

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._last_t
        if dt > 0 and self._active:
            per = self.bw_bytes_per_s * dt / len(self._active)
            for entry in self._active.values():
                entry[0] -= per
            self.busy_s += dt
        self._last_t = now

    def _enter(self, item: tuple) -> None:
        key, num_bytes, done, arg, t0 = item
        self._starting.pop(key, None)
        self._advance()
        self._active[key] = [num_bytes, done, arg, t0, num_bytes]
        self._reschedule()

    def _reschedule(self) -> None:
        self._version += 1
        if not self._active:
            return
        key = min(self._active, key=lambda k: (self._active[k][0], k))
        dt = max(0.0, self._active[key][0]) * len(self._active) / self.bw_bytes_per_s
        self.env.schedule(self.env.now + dt, PRIO_TRANSFER, self._complete, (self._version, key))

    def _complete(self, item: tuple[int, int]) -> None:
        version, key = item
        if version != self._version:
            return  # superseded by a later start or finish
        self._advance()
        self._active[key][0] = 0.0  # the transfer this event was scheduled for (guards float round-off)
        # Finish every transfer within a relative float tolerance of zero, in key order.
        eps = 1e-9 * max((e[4] for e in self._active.values()), default=1.0)
        done = sorted(k for k, e in self._active.items() if e[0] <= eps)
        finished = [(k, self._active.pop(k)) for k in done]
        self._reschedule()
        for k, (_, fn, arg, t0, nbytes) in finished:
            if self.timeline is not None:
                self.timeline.append(("kv", self.index, k, t0, self.env.now, nbytes))
            fn(arg)

    def active(self) -> int:
        """Transfers currently moving bytes."""
        return len(self._active)
