"""A fleet's pools: what a pool is built from (PoolSetup, LinkSetup) and its queue counters (Pool)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from twinfer.perf.base import StepCostModel
from twinfer.perf.speculative import SpeculativeConfig
from twinfer.sim.instance import Instance, InstanceLoads
from twinfer.sim.prefix_route import RouteAudit
from twinfer.sim.prefix_sched import PrefixScheduler, PrefixSetup
from twinfer.sim.request import Request
from twinfer.sim.router import make_router
from twinfer.sim.scheduler import BLOCKED_KV, BatchingConfig, Scheduler
from twinfer.sim.speculative_batch import SpeculativeScheduler


@dataclass(frozen=True)
class PoolSetup:
    """A pool ready to simulate: role, a (stateless) step-cost model shared by its instances, count, batching."""

    role: str  # mixed | prefill | decode
    cost: StepCostModel
    count: int
    batching: BatchingConfig
    router: str = "least_outstanding"
    prefix: PrefixSetup | None = None  # a prefix cache in each instance (None: none, today's code path)
    speculative: SpeculativeConfig | None = None  # decode steps verify k drafts (twinfer.sim.speculative_batch)
    seed: int = 0  # seeds the per-request streams of tokens accepted per verify step


@dataclass(frozen=True)
class LinkSetup:
    """Each prefill instance's outbound KV link: aggregate bandwidth, latency, layer-wise streaming."""

    bw_bytes_per_s: float  # per prefill instance (link bandwidth x number of links)
    latency_s: float
    layerwise: bool = False


class Pool:
    """Instances of one role, their load view and router, queue counters and the decode pool's pending queue."""

    __slots__ = ("role", "setup", "instances", "routable", "load", "pick", "waiting", "held", "_last", "queue_area",
                 "in_system_area", "pending", "series_t", "series_waiting", "series_running", "max_seqs",
                 "kv_tokens", "wait_kv_s", "wait_batch_s", "last_block", "route_audit")

    def __init__(self, role: str, setup: PoolSetup) -> None:
        self.role = role
        self.setup = setup
        self.instances: list[Instance] = []  # every instance the pool ever had (autoscaling adds some)
        self.routable = self.instances  # those taking new work (a separate list only when autoscaling)
        self.load = InstanceLoads(self.routable)  # what its router reads
        self.pick = make_router(setup.router, f"{role} pool")
        self.route_audit: RouteAudit | None = None  # with a prefix cache: the router's choice vs the best hit
        if setup.prefix is not None:
            self.route_audit = RouteAudit(self.pick)
            self.pick = self.route_audit.pick
        self.waiting = 0  # requests queued at the pool (not admitted to a batch)
        self.held = 0  # requests the pool holds (waiting + running + KV in flight)
        self._last = 0.0
        self.queue_area = 0.0
        self.in_system_area = 0.0
        self.pending: deque[tuple[Request, Instance]] = deque()  # decode pool: waiting for KV room
        self.series_t: list[float] = []
        self.series_waiting: list[int] = []
        self.series_running: list[int] = []
        res = setup.cost.resources()
        self.max_seqs = min(setup.batching.max_batch_seqs or res.max_batch_seqs, res.max_batch_seqs)
        self.kv_tokens = int(res.kv_capacity_tokens)
        self.wait_kv_s = 0.0  # decode pool: time with requests pending because no instance had KV room
        self.wait_batch_s = 0.0  # ... because every instance's batch was full
        self.last_block = 0  # BLOCKED_* code of the last failed reservation

    def change(self, now: float, d_waiting: int, d_held: int) -> None:
        """Integrate the counters up to ``now`` and apply a change."""
        dt = now - self._last
        if dt > 0.0:
            self.queue_area += self.waiting * dt
            self.in_system_area += self.held * dt
            if self.pending:
                if self.last_block == BLOCKED_KV:
                    self.wait_kv_s += dt
                else:
                    self.wait_batch_s += dt
            self._last = now
        self.waiting += d_waiting
        self.held += d_held

    def totals_at(self, now: float) -> tuple[float, float, float, float]:
        """(queue area, in-system area, KV-wait s, batch-wait s) integrated up to ``now``, changing nothing."""
        dt = now - self._last
        if dt <= 0.0:
            return self.queue_area, self.in_system_area, self.wait_kv_s, self.wait_batch_s
        kv, batch = self.wait_kv_s, self.wait_batch_s
        if self.pending:
            if self.last_block == BLOCKED_KV:
                kv += dt
            else:
                batch += dt
        return self.queue_area + self.waiting * dt, self.in_system_area + self.held * dt, kv, batch


def make_scheduler(setup: PoolSetup, kv_tokens: int, max_seqs: int, track_tokens: bool) -> Scheduler:
    """A scheduler for one instance of the pool: with a prefix cache, or verifying speculative drafts, when the
    pool has one (the scenario refuses a pool with both)."""
    if setup.speculative is not None:
        return SpeculativeScheduler(setup.role, setup.batching, kv_tokens, max_seqs, track_tokens, setup.speculative,
                                    setup.seed)
    if setup.prefix is None:
        return Scheduler(setup.role, setup.batching, kv_tokens, max_seqs, track_tokens)
    return PrefixScheduler(setup.role, setup.batching, kv_tokens, max_seqs, track_tokens, setup.prefix, setup.cost)
