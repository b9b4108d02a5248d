"""A fleet that rebalances as load moves: the planner of :mod:`twinfer.autoscale` applied during a run.

Every ``interval_s`` a tick (an event after the arrivals and step ends of its
time) measures the last ``window_s``: requests queued per role now, the TTFT
percentile of requests whose first token came in the window, and the
inter-token-latency percentile of every token gap in the window (the
difference of the instances' gap histograms, ~1 % bins). The planner
(:func:`~twinfer.autoscale.rebalance.plan_step` for prefill + decode fleets,
:func:`~twinfer.autoscale.single_pool.plan_step_pool` for a mixed pool)
decides; the fleet carries it out:

- **add** (role R): a new instance is paid from the decision and serves R
  after ``reconfigure_delay_s`` (weights loaded);
- **remove** (role R): R's instance with the least work left (ties: the
  newest) stops taking new requests at once, finishes the ones it holds (a
  prefill instance also ships their KV), and is no longer paid when empty;
- **move** (to role R): the other role's instance with the least work left
  drains the same way, is unavailable for ``reconfigure_delay_s`` (role
  switch, weights), then serves R as a fresh instance (empty KV).

Routers see only instances taking new work (``Pool.routable``); the decode
pool's hand-offs waiting for KV room go only to those too. The planner is
told what the fleet really did: its state is rebuilt each tick from the
serving instances and the changes still in flight (a drain has no known end),
and a window in which a change was in flight or landed does not count toward
its patience. Everything runs on the simulator's clock: same config and seed,
same result.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from twinfer.autoscale.rebalance import (
    FleetState,
    PlannerAction,
    PlannerConfig,
    WindowSignals,
    plan_step,
)
from twinfer.autoscale.single_pool import PoolState, plan_step_pool
from twinfer.sim.cluster import FleetSim
from twinfer.sim.env import PRIO_SAMPLE, PRIO_TRANSFER
from twinfer.sim.instance import Instance
from twinfer.sim.request import RequestState
from twinfer.sim.scenario import AutoscaleConfig
from twinfer.sim.scheduler import TBT_BIN_BASE, TBT_BIN_LOG_STEP

INF = math.inf
GONE = (RequestState.REJECTED, RequestState.CANCELLED)  # never get a first token


@dataclass
class Change:
    """One reconfiguration the fleet is carrying out (or has carried out)."""

    action: PlannerAction
    instance: Instance | None  # the instance leaving its role (remove, move); None for add
    drained_s: float = INF  # when the leaving instance held nothing any more
    landed_s: float = INF  # when the change was complete (serving its new role, or gone)


def window_percentile(hist: Counter, p: float) -> float | None:
    """Percentile ``p`` of a log-binned token-gap histogram (bin -> tokens): the geometric middle of its bin."""
    total = sum(hist.values())
    if total <= 0:
        return None
    target = p / 100.0 * total
    acc = 0
    for b in sorted(hist):
        acc += hist[b]
        if acc >= target and hist[b] > 0:
            return TBT_BIN_BASE * math.exp((b - 1 + 0.5) * TBT_BIN_LOG_STEP) if b > 0 else 0.0
    return None  # pragma: no cover - acc reaches total


class Rebalancer:
    """Drives one :class:`FleetSim` with an autoscaling planner (constructing it attaches it to the fleet)."""

    def __init__(self, sim: FleetSim, cfg: AutoscaleConfig, ttft_target_s: float, itl_target_s: float) -> None:
        self.sim = sim
        self.cfg = cfg
        self.window_s = cfg.window_s or cfg.interval_s
        lo, hi = cfg.min_instances, cfg.max_instances
        self.mixed = "mixed" in sim.pools
        # a mixed pool's floor and ceiling go to plan_step_pool; prefill + decode ones into the config
        self.planner = PlannerConfig(
            ttft_slo_s=cfg.ttft_target_s or ttft_target_s, itl_slo_s=cfg.itl_target_s or itl_target_s,
            reconfig_delay_s=cfg.reconfigure_delay_s, hot_ratio=cfg.hot_ratio, cold_ratio=cfg.cold_ratio,
            queue_per_instance_hot=cfg.queue_per_instance_hot, patience_windows=cfg.patience_windows,
            min_prefill=lo.get("prefill", 1), min_decode=lo.get("decode", 1),
            max_instances=hi["prefill"] + hi["decode"] if not self.mixed else 64,
            max_prefill=hi.get("prefill"), max_decode=hi.get("decode"))
        self.changes: list[Change] = []
        self._counters = (0, 0, 0)  # planner streaks: (prefill or mixed hot, decode hot, cold)
        self.last_tick_s = 0.0
        self._ttft_cursor = 0
        self._hists: deque[tuple[float, Counter]] = deque([(0.0, Counter())])
        self.alive: dict[int, list[float]] = {i.index: [0.0, INF] for i in sim.instances}  # index -> [from, to]
        self.paid_changes: list[tuple[float, int]] = [(0.0, len(sim.instances))]
        self.timeline: list[dict[str, Any]] = []
        for pool in sim.pools.values():  # routers get their own view: the instances taking new work
            pool.routable = list(pool.instances)
            pool.load = type(pool.load)(pool.routable)
        sim.inline_ok = False  # ticks read every instance's state: run the plain event loop
        sim.rebalancer = self
        self._record(0.0)
        self.ticking = False
        self.live_until_s = 0.0  # the latest arrival time of a live (submitted) request
        self.resume(0.0)

    def resume(self, arrival_s: float) -> None:
        """A request arrives at ``arrival_s``: plan from the next multiple of ``interval_s`` after it if asleep.

        Ticks stop while the fleet is idle with no arrivals to come; the fleet
        calls this for every live (submitted) request.
        """
        self.live_until_s = max(self.live_until_s, arrival_s)
        if not self.ticking:
            self.ticking = True
            step = self.cfg.interval_s
            start = max(self.sim.env.now, arrival_s)
            self.sim.env.schedule((math.floor(start / step) + 1) * step, PRIO_SAMPLE, self._tick, None)

    # ---- measuring ----------------------------------------------------------------
    def _ttft_percentile(self, start: float, now: float) -> float | None:
        reqs = self.sim.requests
        vals = []
        for r in reqs[self._ttft_cursor:]:
            ft = r.first_token_s
            if start < ft <= now:
                vals.append(ft - r.arrival_s)
        keep_after = now + self.cfg.interval_s - self.window_s  # the next window's start
        i = self._ttft_cursor
        while i < len(reqs) and (reqs[i].first_token_s <= keep_after or reqs[i].state in GONE):
            i += 1
        self._ttft_cursor = i
        return float(np.percentile(vals, self.cfg.percentile)) if vals else None

    def _itl_percentile(self, now: float) -> float | None:
        merged: Counter = Counter()
        for inst in self.sim.instances:
            merged.update(inst.sched.tbt_hist)
        hists = self._hists
        while len(hists) > 1 and hists[1][0] <= now - self.window_s + 1e-9:
            hists.popleft()
        window = merged.copy()
        window.subtract(hists[0][1])
        hists.append((now, merged))
        return window_percentile(window, self.cfg.percentile)

    def signals(self, now: float) -> WindowSignals:
        """What the fleet measured over the window ending ``now`` (queue depths now, latency percentiles)."""
        sim = self.sim
        entry_q = sum(i.waiting for i in sim.entry.instances)
        dec = sim.pools.get("decode")
        dec_q = len(dec.pending) + sum(i.waiting for i in dec.instances) if dec is not None else 0
        return WindowSignals(now, entry_q, dec_q, self._ttft_percentile(now - self.window_s, now),
                             self._itl_percentile(now))

    # ---- deciding -----------------------------------------------------------------
    def _in_flight(self, since: float) -> tuple[tuple[PlannerAction, ...], Counter]:
        """Changes the planner must see as pending (effective time unknown: inf, or when they landed) and
        how many instances joined each role since ``since``."""
        pending: list[PlannerAction] = []
        joined: Counter[str] = Counter()
        for ch in self.changes:
            if ch.landed_s == INF:
                pending.append(replace(ch.action, effective_at_s=INF))
            elif ch.landed_s > since:
                pending.append(replace(ch.action, effective_at_s=ch.landed_s))
                if ch.action.kind != "remove":
                    joined[ch.action.role] += 1
        return tuple(pending), joined

    def _tick(self, _: object) -> None:
        sim = self.sim
        now = sim.env.now
        sig = self.signals(now)
        pending, joined = self._in_flight(self.last_tick_s)
        serving = {role: len(pool.routable) - joined[role] for role, pool in sim.pools.items()}
        hot_a, hot_b, cold = self._counters
        actions: tuple[PlannerAction, ...]
        if self.mixed:
            lo, hi = self.cfg.min_instances["mixed"], self.cfg.max_instances["mixed"]
            pstate, actions = plan_step_pool(self.planner, PoolState(serving["mixed"], pending, hot_a, cold), sig, lo, hi)
            self._counters = (pstate.hot_windows, 0, pstate.cold_windows)
        else:
            fstate = FleetState(serving["prefill"], serving["decode"], pending, hot_a, hot_b, cold)
            fstate, actions = plan_step(self.planner, fstate, sig)
            self._counters = (fstate.prefill_hot_windows, fstate.decode_hot_windows, fstate.cold_windows)
        self.last_tick_s = now
        for action in actions:
            self._start(action)
        busy = sim._arr_i < len(sim._arr_t) or self.live_until_s > now or any(i.held for i in sim.instances)
        if busy:
            sim.env.schedule(now + self.cfg.interval_s, PRIO_SAMPLE, self._tick, None)
        else:
            self.ticking = False

    # ---- acting -------------------------------------------------------------------
    def _start(self, action: PlannerAction) -> None:
        sim = self.sim
        now = sim.env.now
        if action.kind == "add":
            self.changes.append(Change(action, None))
            self.paid_changes.append((now, +1))
            sim.env.schedule(now + self.cfg.reconfigure_delay_s, PRIO_TRANSFER, self._join, self.changes[-1])
            self._record(now)
            return
        source = action.role if action.kind == "remove" else ("decode" if action.role == "prefill" else "prefill")
        pool = sim.pools[source]
        # the instance with the least work left leaves (ties: the newest, whose KV is coldest)
        victim = min(reversed(pool.routable), key=lambda i: i.outstanding_now())
        pool.routable.remove(victim)
        sim.draining.add(victim.index)
        self.changes.append(Change(action, victim))
        self._record(now)
        self.check_drained(victim)

    def check_drained(self, inst: Instance) -> None:
        """Called by the fleet when a draining instance let a request go: once it holds none, it leaves its role."""
        if inst.held:
            return
        sim = self.sim
        now = sim.env.now
        sim.draining.discard(inst.index)
        self.alive[inst.index][1] = now
        ch = next(c for c in self.changes if c.instance is inst)
        ch.drained_s = now
        if ch.action.kind == "remove":
            ch.landed_s = now
            self.paid_changes.append((now, -1))
            self._record(now)
        else:
            sim.env.schedule(now + self.cfg.reconfigure_delay_s, PRIO_TRANSFER, self._join, ch)

    def _join(self, ch: Change) -> None:
        sim = self.sim
        now = sim.env.now
        inst = sim.add_instance(ch.action.role)
        pool = sim.pools[ch.action.role]
        pool.routable.append(inst)
        self.alive[inst.index] = [now, INF]
        ch.landed_s = now
        self._record(now)
        if pool.pending:
            sim.drain_pending(inst)

    def _record(self, now: float) -> None:
        sim = self.sim
        paid = sum(d for _, d in self.paid_changes)
        point = {"t_s": now, **{role: len(p.routable) for role, p in sim.pools.items()}, "paid": paid}
        if self.timeline and self.timeline[-1]["t_s"] == now:
            self.timeline[-1] = point
        else:
            self.timeline.append(point)

    # ---- accounting ---------------------------------------------------------------
    def paid_timeline(self) -> list[tuple[float, int]]:
        """``(time_s, paid instances)`` change points, for :func:`twinfer.autoscale.fleet_cost`."""
        out: list[tuple[float, int]] = []
        count = 0
        for t, d in sorted(self.paid_changes, key=lambda c: c[0]):
            count += d
            if out and out[-1][0] == t:
                out[-1] = (t, count)
            else:
                out.append((t, count))
        return out

    def alive_seconds(self, inst: Instance, end_s: float) -> float:
        """Seconds ``inst`` served its role (up to ``end_s``)."""
        start, stop = self.alive[inst.index]
        return max(0.0, min(stop, end_s) - start)

    def role_peaks(self) -> dict[str, int]:
        """The most instances each role served at once: the static fleet sized for the peak."""
        return {role: max(p[role] for p in self.timeline) for role in self.sim.pools}

    def counts(self) -> dict[str, int]:
        """Decisions carried out, by kind."""
        c = Counter(ch.action.kind for ch in self.changes)
        return {k: c[k] for k in ("add", "remove", "move")}
