"""A serving instance: a step-cost model driving a scheduler, one event per batch step.

The instance asks its scheduler for a step, asks the step-cost model how long
it takes, and schedules the step's end; at the end it applies the step and
reports first tokens, finishes and hand-offs to its fleet. Nothing runs per
token unless the fleet asked for per-token callbacks.

In lazy runs (aggregated fleets without callbacks) an instance whose batch is
only decoding commits to the whole stretch of plain decode steps up to the
next finish or block boundary: with an affine step-cost backend as one
:class:`~twinfer.sim.decode_run.DecodeRun` in closed form, otherwise step by
step up to the fleet's horizon. A committed run is settled when it ends, or
cut when a request is routed to the instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twinfer.errors import ConfigError
from twinfer.kvcache.kv_route import InstanceSnapshot
from twinfer.models.step import StepShape
from twinfer.perf.base import StepCostModel
from twinfer.sim.decode_run import DecodeRun
from twinfer.sim.env import PRIO_STEP_END, Environment
from twinfer.sim.request import Request
from twinfer.sim.scheduler import BLOCKED_BATCH, BLOCKED_KV, Scheduler, SchedulerOutput, StepResult


class Fleet(Protocol):
    """What an instance needs from its fleet (:class:`twinfer.sim.cluster.FleetSim`)."""

    horizon: float  # lazy runs: steps ending by this time may run inline
    lazy: bool  # lazy runs: a step in flight waits in Instance.pending_end, not on the heap
    on_token: Callable[[Request, float, int], None] | None  # the per-token callback

    def step_result(self, inst: Instance, res: StepResult, now: float) -> None:
        """Apply what a step of ``inst`` ended at ``now`` produced."""

    def emit_tokens(self, inst: Instance, out: SchedulerOutput, now: float) -> None:
        """Per-token callbacks for the decode members of a finished step."""

    def left_cancelled(self, inst: Instance, count: int) -> None:
        """``count`` cancelled requests left ``inst`` at a step boundary."""


class Instance:
    """One instance (a TP x PP GPU group or an LPU system) of a pool."""

    __slots__ = ("env", "index", "local_index", "role", "cost", "sched", "fleet", "busy", "step_start",
                 "busy_s", "steps", "seqs_sum", "kv_blocked_s", "batch_full_s", "timeline", "_step_time",
                 "waiting", "held", "_last", "queue_area", "in_system_area", "_pending", "pending_end", "_pending_fast",
                 "_affine", "_closed_form", "_run")

    def __init__(self, env: Environment, index: int, local_index: int, role: str, cost: StepCostModel,
                 sched: Scheduler, fleet: Fleet, timeline: list | None = None) -> None:
        self.env = env
        self.index = index  # global index in the fleet
        self.local_index = local_index  # index within its pool
        self.role = role  # its pool's role
        self.cost = cost
        self._step_time = cost.step_time_s
        self.sched = sched
        self.fleet = fleet
        self.busy = False
        self.step_start = 0.0
        self.busy_s = 0.0
        self.steps = 0
        self.seqs_sum = 0
        self.kv_blocked_s = 0.0
        self.batch_full_s = 0.0
        self.timeline = timeline
        self.waiting = 0  # requests queued here, not yet admitted
        self.held = 0  # requests this instance holds (queued, running, or KV reserved/in flight)
        self._last = 0.0
        self.queue_area = 0.0  # integral of waiting over this instance's time
        self.in_system_area = 0.0
        self._pending: SchedulerOutput | None = None  # lazy runs: the step in flight ...
        self.pending_end = math.inf  # ... and when it ends
        self._pending_fast = 0  # lazy runs: members of a plain decode step in flight (no SchedulerOutput)
        self._affine = getattr(cost, "decode_run_affine", None)  # closed-form decode runs, if the backend has them
        # Lazy runs use them unless a timeline records every step, or steps compute several tokens per
        # member (the backend's ramp prices one-token steps; multi-token steps are priced one by one).
        self._closed_form = self._affine is not None and timeline is None and sched.tps == 1
        self._run: DecodeRun | None = None  # lazy runs: the committed decode run in flight

    def change(self, now: float, d_waiting: int, d_held: int) -> None:
        """Integrate this instance's queue counters up to ``now`` and apply a change."""
        dt = now - self._last
        if dt > 0.0:
            self.queue_area += self.waiting * dt
            self.in_system_area += self.held * dt
            self._last = now
        self.waiting += d_waiting
        self.held += d_held

    def areas_at(self, now: float) -> tuple[float, float]:
        """(queue area, in-system area) integrated up to ``now``, changing nothing."""
        dt = now - self._last
        if dt <= 0.0:
            return self.queue_area, self.in_system_area
        return self.queue_area + self.waiting * dt, self.in_system_area + self.held * dt

    def wake(self) -> None:
        """Start a step now if the instance is idle and has work."""
        if not self.busy:
            self._start(self.env.now)

    def _start(self, now: float) -> None:
        # Lazy runs only (the fleet sets a horizon): steps that end by the horizon (the next
        # arrival or sample) run inline, without the heap; stretches of plain decode steps
        # are committed as a whole (see the module docstring).
        sched = self.sched
        fleet = self.fleet
        # A step boundary: cancelled requests leave before the next step. Cancels come between steps
        # (from outside run_until, or from a callback, which only runs in the plain event loop, where
        # every step end calls _start again), never while the loop below runs steps inline.
        if sched.cancels:
            self._drop_cancelled(now)
        while True:
            if fleet.horizon > now:
                closed_form = self._closed_form
                k = sched.join_and_run_steps() if closed_form else sched.steady_decode_steps()
                if k:
                    if closed_form:
                        run = DecodeRun.open(sched, now, k, self._affine, self.index)  # type: ignore[arg-type]
                        self.busy = True
                        self.step_start = now
                        end = run.end_s(run.steps)
                        if end > fleet.horizon:
                            self._run = run
                            self.pending_end = end
                            self.busy = True
                            return
                        self._settle_run(run, run.steps)
                        self._finish_members(end)
                        now = end
                        continue
                    now = self._fast_decode(now, k)
                    if self._pending_fast:
                        return
            out = sched.schedule(now)
            if out is None:
                self.busy = False
                return
            t_end = self._begin(out, now)
            if t_end <= fleet.horizon:
                self._finish(out, t_end)
                now = t_end
                continue
            if fleet.lazy:
                self._pending = out
                self.pending_end = t_end
            else:
                self.env.schedule(t_end, PRIO_STEP_END, self._end, out)
            return

    def catch_up(self, t: float) -> None:
        """Lazy runs: finish the step or run in flight if it ends by ``t`` and run on up to ``t``."""
        end = self.pending_end
        if end > t:
            return
        self.pending_end = math.inf
        run = self._run
        if run is not None:
            self._run = None
            self._settle_run(run, run.steps)
            self._finish_members(end)
            self._start(end)
            return
        if self._pending_fast:
            n = self._pending_fast
            self._pending_fast = 0
            self.sched.advance_decode(end, n)
            self.busy_s += end - self.step_start
            self.steps += 1
            self.seqs_sum += n
            if self.timeline is not None:
                self.timeline.append(("step", self.index, self.step_start, end, 0, n))
            self._finish_members(end)
            self._start(end)
            return
        out = self._pending
        if out is None:
            return
        self._pending = None
        self._finish(out, end)
        self._start(end)

    def outstanding_now(self) -> int:
        """Tokens of work left at the fleet's current time (counts a committed run's steps ended by now)."""
        run = self._run
        if run is None:
            return self.sched.outstanding
        return self.sched.outstanding - run.n * (run.steps_by(self.env.now) - run.done)

    def interrupt_run(self, now: float) -> None:
        """Cut the committed run after the step in flight at ``now``, before a request is queued here.

        The steps after it are dropped, to be rescheduled with the new request in
        view; the run is settled when the step in flight ends (queueing a request
        changes nothing a decode step depends on).
        """
        run = self._run
        if run is None:
            return
        s = run.steps_by(now)  # < run.steps: a run that ended by now was settled by catch_up
        run.steps = s + 1
        self.pending_end = run.end_s(s + 1)

    def _settle_run(self, run: DecodeRun, s: int) -> None:
        """Apply the run's steps ``run.done`` .. ``s - 1`` to the scheduler and this instance's counters."""
        d0 = run.done
        if s <= d0:
            return
        self.busy_s += run.settle(self.sched, s)
        self.steps += s - d0
        self.seqs_sum += run.n * (s - d0)

    def _fast_decode(self, now: float, k: int) -> float:
        """Run up to ``k`` plain decode steps that end by the fleet's horizon, one by one; return the new time.

        For backends without closed-form decode runs. Does exactly what
        :meth:`Scheduler.advance_decode` and :meth:`_finish` would do for each step
        (same float operations, same order), with the state in local variables; the
        step that crosses the horizon stays in flight as a plain decode step.
        """
        sched = self.sched
        horizon = self.fleet.horizon
        step_time = self._step_time
        n = len(sched.decoding)
        tps = sched.tps
        extra = n * (tps - 1)  # query tokens beyond one per member (multi-token steps)
        grow = n * tps
        timeline = self.timeline
        record_gaps = sched.record_gaps
        ctx, last = sched.ctx_sum, sched.last_decode_end
        busy = self.busy_s
        run_max = -1.0  # one gap-stack entry for the whole run (see Scheduler.advance_decode_run)
        j = 0
        start = now
        for _ in range(k):
            dt = step_time(StepShape(0, 0, 0, 0, n, ctx + extra, extra))
            t_end = now + dt
            if t_end > horizon:  # keep it in flight as a plain decode step; catch_up applies it
                self._pending_fast = n
                self.pending_end = t_end
                self.busy = True
                self.step_start = now
                break
            gap = t_end - last
            record_gaps(gap, n, tps)
            if gap > run_max:
                run_max = gap
            ctx += grow
            last = t_end
            busy += t_end - now  # the same additions as _finish makes, so sums match bit for bit
            if timeline is not None:
                timeline.append(("step", self.index, now, t_end, 0, n))
            start = now
            now = t_end
            j += 1
        if j:
            sched.advance_decode_run(n, j, last, run_max)
            self.busy_s = busy
            self.steps += j
            self.seqs_sum += n * j
            if not self._pending_fast:
                self.step_start = start
                self._finish_members(last)
        return now

    def _drop_cancelled(self, now: float) -> None:
        dropped = self.sched.drop_cancelled()
        if dropped:
            self.change(now, 0, -len(dropped))
            self.fleet.left_cancelled(self, len(dropped))

    def _finish_members(self, t_end: float) -> None:
        """After plain decode steps ending at ``t_end``: report the members that finished with the last one."""
        res = self.sched.finish_due(t_end)
        if res is not None:
            self.fleet.step_result(self, res, t_end)

    def _begin(self, out: SchedulerOutput, now: float) -> float:
        if out.admitted or out.preempted:
            self.change(now, out.preempted - out.admitted, 0)
        if out.chunks:
            idx = self.index
            for r, _ in out.chunks:
                if r.prefill_start_s != r.prefill_start_s:  # NaN: first chunk ever
                    r.prefill_start_s = now
                    r.prefill_instance = idx
        if out.joined:
            idx = self.index
            for r in out.joined:
                r.decode_instance = idx
                if r.decode_start_s != r.decode_start_s:  # NaN: first decode step ever
                    r.decode_start_s = now
        shape = out.shape
        assert shape is not None  # a scheduled step always has a shape
        dt = self._step_time(shape) + out.delay_s
        if not dt > 0.0:
            raise ValueError(f"step-cost model returned a non-positive step time {dt!r} for {out.shape}")
        self.busy = True
        self.step_start = now
        return now + dt

    def _end(self, out: SchedulerOutput) -> None:
        now = self.env.now
        self._finish(out, now)
        self._start(now)

    def _finish(self, out: SchedulerOutput, now: float) -> None:
        dt = now - self.step_start
        self.busy_s += dt
        self.steps += 1
        self.seqs_sum += len(out.chunks) + out.n_decode
        if out.blocked == BLOCKED_KV:
            self.kv_blocked_s += dt
        elif out.blocked == BLOCKED_BATCH:
            self.batch_full_s += dt
        if self.timeline is not None:
            self.timeline.append(("step", self.index, self.step_start, now,
                                  sum(n for _, n in out.chunks), out.n_decode))
        res = self.sched.update(out, now)
        fleet = self.fleet
        if out.members is not None and fleet.on_token is not None:
            fleet.emit_tokens(self, out, now)
        if res is not None:
            fleet.step_result(self, res, now)


class InstanceLoads:
    """A pool's load at the fleet's current time, read-only: the :class:`twinfer.sim.router.PoolLoad` routers read.

    Resolves committed decode runs (the steps ended by now count as done), so
    a router never sees an instance's stale counters.
    """

    __slots__ = ("_insts",)

    def __init__(self, instances: Sequence[Instance]) -> None:
        self._insts = instances  # the pool's list (instances are appended while the fleet is built)

    def __len__(self) -> int:
        return len(self._insts)

    def outstanding_tokens(self, i: int) -> int:
        """Tokens of work left on instance ``i`` now."""
        return self._insts[i].outstanding_now()

    def kv_used_frac(self, i: int) -> float:
        """Fraction of instance ``i``'s KV blocks in use."""
        return self._insts[i].sched.kv_used_frac()

    def prefix_snapshot(self, i: int) -> InstanceSnapshot:
        """Instance ``i`` as the KV-aware router reads it: load and a read-only prefix-cache lookup."""
        snapshot = getattr(self._insts[i].sched, "snapshot", None)
        if snapshot is None:
            raise ConfigError("the kv_aware router needs a prefix cache in the pool (prefix_cache: {enabled: true})")
        return snapshot(i)  # type: ignore[no-any-return]

    def kv_link_backlog_tokens(self, i: int) -> float:
        """KV tokens still waiting to leave instance ``i`` over its outbound KV link (a prefill instance of a
        disaggregated fleet; 0 for any other instance)."""
        inst = self._insts[i]
        links = getattr(inst.fleet, "links", None)
        if inst.role != "prefill" or not links:
            return 0.0
        return float(links[inst.local_index].backlog_bytes() / inst.fleet.kv_bytes_per_token)  # type: ignore[attr-defined]

    def prefix_block_tokens(self) -> int:
        """Tokens per cached prefix block of the pool's instances (pools with a prefix cache)."""
        return int(getattr(self._insts[0].sched, "cbt", 0))

    def prefix_match(self, i: int, keys: Any) -> int:
        """Leading blocks of ``keys`` instance ``i`` holds in its prefix cache (read-only)."""
        return int(self._insts[i].sched.cache.match(keys))  # type: ignore[attr-defined]

    def least_outstanding(self) -> int:
        """The index of the instance with the fewest tokens of work left now; ties to the first.

        The least-outstanding router's hot path. A committed run's exact progress
        needs ``steps_by``; a floor needs one division (steps never shorten in a
        run, so at most ``x / dt0`` of them ended ``x`` seconds in). Floors first,
        then exact figures only where a floor could still win.
        """
        instances = self._insts
        floors = []
        for inst in instances:
            run = inst._run
            v = inst.sched.outstanding
            if run is not None:  # steps never shorten in a run: at most x / dt0 of them end in x seconds
                most = int((inst.env.now - run.t0_s) / run.dt0_s) + 1  # one more than x / dt0 covers rounding
                v -= run.n * ((most if most < run.steps else run.steps) - run.done)
            floors.append(v)
        best_i = floors.index(min(floors))
        best_v = instances[best_i].outstanding_now()
        first = best_i
        for i, floor in enumerate(floors):
            if i != first and (floor < best_v or (floor == best_v and i < best_i)):
                v = instances[i].outstanding_now()
                if v < best_v or (v == best_v and i < best_i):
                    best_i, best_v = i, v
        return best_i
