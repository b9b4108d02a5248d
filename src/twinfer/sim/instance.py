"""A serving instance: a step-cost model driving a scheduler, one event per batch step.

The instance asks its scheduler for a step, asks the step-cost model how long
it takes, and schedules the step's end; at the end it applies the step and
reports first tokens, finishes and hand-offs to its fleet. Nothing runs per
token unless the fleet asked for per-token callbacks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from twinfer.models.step import StepShape
from twinfer.perf.base import StepCostModel
from twinfer.sim.env import PRIO_STEP_END, Environment
from twinfer.sim.scheduler import (
    BLOCKED_BATCH,
    BLOCKED_KV,
    TBT_BIN_BASE,
    TBT_BIN_LOG_STEP,
    Scheduler,
    SchedulerOutput,
)

if TYPE_CHECKING:
    from twinfer.sim.cluster import FleetSim, Pool


class Instance:
    """One instance (a TP x PP GPU group or an LPU system) of a pool."""

    __slots__ = ("env", "index", "local_index", "pool", "cost", "sched", "fleet", "busy", "step_start",
                 "busy_s", "steps", "seqs_sum", "kv_blocked_s", "batch_full_s", "timeline", "_step_time",
                 "waiting", "held", "_last", "queue_area", "in_system_area", "_spare", "_pending", "pending_end", "_pending_fast")

    def __init__(self, env: Environment, index: int, local_index: int, pool: Pool, cost: StepCostModel,
                 sched: Scheduler, fleet: FleetSim, timeline: list | None = None) -> None:
        self.env = env
        self.index = index  # global index in the fleet
        self.local_index = local_index  # index within its pool
        self.pool = pool
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
        self._spare: tuple[StepShape, float] | None = None  # a step costed by _fast_decode but not run
        self._pending: SchedulerOutput | None = None  # lazy runs: the step in flight ...
        self.pending_end = math.inf  # ... and when it ends
        self._pending_fast = 0  # lazy runs: members of a plain decode step in flight (no SchedulerOutput)

    def change(self, now: float, d_waiting: int, d_held: int) -> None:
        """Integrate this instance's queue counters up to ``now`` and apply a change."""
        dt = now - self._last
        if dt > 0.0:
            self.queue_area += self.waiting * dt
            self.in_system_area += self.held * dt
            self._last = now
        self.waiting += d_waiting
        self.held += d_held

    def wake(self) -> None:
        """Start a step now if the instance is idle and has work."""
        if not self.busy:
            self._start(self.env.now)

    def _start(self, now: float) -> None:
        # Steps that end by the fleet's horizon (the next event that could touch this
        # instance: an arrival, a sample, the run's stop time) run inline, without the heap;
        # the fleet only sets a horizon when nothing else can interact with this instance.
        sched = self.sched
        while True:
            if self.fleet.horizon > now:
                k = sched.steady_decode_steps()
                if k:
                    now = self._fast_decode(now, k)
                    if self._pending_fast:
                        return
            out = sched.schedule(now)
            if out is None:
                self.busy = False
                return
            t_end = self._begin(out, now)
            if t_end <= self.fleet.horizon:
                self._finish(out, t_end)
                now = t_end
                continue
            if self.fleet.lazy:
                self._pending = out
                self.pending_end = t_end
            else:
                self.env.schedule(t_end, PRIO_STEP_END, self._end, out)
            return

    def catch_up(self, t: float) -> None:
        """Lazy runs: finish the step in flight if it ends by ``t`` and run on up to ``t``."""
        end = self.pending_end
        if end > t:
            return
        if self._pending_fast:
            n = self._pending_fast
            self._pending_fast = 0
            self.pending_end = math.inf
            self.sched.advance_decode(end, n)
            self.busy_s += end - self.step_start
            self.steps += 1
            self.seqs_sum += n
            if self.timeline is not None:
                self.timeline.append(("step", self.index, self.step_start, end, 0, n))
            self._start(end)
            return
        out = self._pending
        if out is None:
            return
        self._pending = None
        self.pending_end = math.inf
        self._finish(out, end)
        self._start(end)

    def _fast_decode(self, now: float, k: int) -> float:
        """Run up to ``k`` plain decode steps that end by the fleet's horizon; return the new time.

        Does exactly what :meth:`Scheduler.advance_decode` and :meth:`_finish` would do for
        each step (same float operations, same order), with the state in local variables.
        """
        sched = self.sched
        horizon = self.fleet.horizon
        step_time = self._step_time
        n = len(sched.decoding)
        timeline = self.timeline
        gk, gv, hist = sched._gap_k, sched._gap_v, sched.tbt_hist
        dstep, ctx, last = sched.dstep, sched.ctx_sum, sched.last_decode_end
        log = math.log
        exp = math.exp
        busy = self.busy_s
        cur_b, cur_w, lo, hi = -1, 0, 0.0, 0.0  # histogram bin being filled, and its safe interior
        pend_start = -1.0
        j = 0
        start = now
        # The gap stack gets one entry for the whole run (first index, largest gap): max-TBT
        # queries always start at a run's first step, because joins, finishes and
        # preemptions happen only in steps outside fast runs.
        run_k, run_max = dstep, -1.0
        # A backend that exposes its decode-step constants (GpuStepCost) is evaluated inline,
        # in the same operations and order as its step_time_s, so results are bit-identical.
        terms_of = getattr(self.cost, "decode_step_terms", None)
        terms = terms_of(n) if terms_of is not None else None
        if terms is not None:
            base, m_c, m_x, spb, f_c, f_x, spf, k_o, layers, s_o = terms
        for _ in range(k):
            if terms is None:
                dt = step_time(StepShape(0, 0, 0, 0, n, ctx))
            else:
                t_m = (m_c + m_x * ctx) * spb
                t_c = (f_c + f_x * ctx) * spf
                dt = (base + (k_o + (t_m if t_m > t_c else t_c)) * layers) + s_o
            t_end = now + dt
            if t_end > horizon:
                if self.fleet.lazy:  # keep it in flight as a plain decode step; catch_up applies it
                    self._pending_fast = n
                    self.pending_end = t_end
                    self.busy = True
                    pend_start = now
                else:
                    self._spare = (StepShape(0, 0, 0, 0, n, ctx), dt)
                break
            gap = t_end - last
            if lo < gap < hi:  # strictly inside the current bin: the log formula would give cur_b
                cur_w += n
            else:
                if cur_w:
                    hist[cur_b] = hist.get(cur_b, 0) + cur_w
                cur_b = int(log(gap / TBT_BIN_BASE) / TBT_BIN_LOG_STEP) + 1 if gap > TBT_BIN_BASE else 0
                cur_w = n
                if cur_b > 0:  # margins of 1e-9 dwarf float error in the formula (~1e-15)
                    lo = TBT_BIN_BASE * exp((cur_b - 1) * TBT_BIN_LOG_STEP) * (1 + 1e-9)
                    hi = TBT_BIN_BASE * exp(cur_b * TBT_BIN_LOG_STEP) * (1 - 1e-9)
                else:
                    lo = hi = 0.0
            if gap > run_max:
                run_max = gap
            dstep += 1
            ctx += n
            last = t_end
            busy += t_end - now  # the same additions as _finish makes, so sums match bit for bit
            if timeline is not None:
                timeline.append(("step", self.index, now, t_end, 0, n))
            start = now
            now = t_end
            j += 1
        if cur_w:
            hist[cur_b] = hist.get(cur_b, 0) + cur_w
        if j:
            while gv and gv[-1] <= run_max:
                gv.pop()
                gk.pop()
            gk.append(run_k)
            gv.append(run_max)
            sched.dstep, sched.ctx_sum, sched.last_decode_end = dstep, ctx, last
            sched.outstanding -= n * j
            self.busy_s = busy
            self.steps += j
            self.seqs_sum += n * j
            self.step_start = start
        if pend_start >= 0.0:
            self.step_start = pend_start
        return now

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
        spare = self._spare
        shape = out.shape
        assert shape is not None  # a scheduled step always has a shape
        dt = spare[1] if spare is not None and spare[0] == shape else self._step_time(shape)
        self._spare = None
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
