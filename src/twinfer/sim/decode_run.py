"""Runs of plain decode steps in closed form: the simulator's fast path for affine step costs.

:class:`DecodeRun` owns that path: :meth:`DecodeRun.open` commits a run from
the backend's ramp, :meth:`DecodeRun.steps_by` answers how far it got by a
time, and :meth:`DecodeRun.settle` applies its steps to the decode batch.

Between joins, finishes and KV block boundaries a decode batch of ``n``
sequences repeats the same step, its context sum growing by ``n`` tokens per
step. When the step-cost model says the step time is affine in the step index
over a stretch (``decode_run_affine(n, ctx) -> (dt0, slope, valid_steps)``:
GPU decode is a roofline max of two affine terms in the context sum), step
``j`` of the run takes ``dt0 + slope*j`` and ends at

    end(s) = t0 + s*dt0 + slope*s*(s-1)/2      (the end of step s-1, 0-indexed)

so applying or querying a run of any length costs O(1) instead of O(steps).
The result equals stepping one by one up to float rounding of the sums
(~1e-12 of the clock; exactly when times are binary fractions), not bit for
bit; it is deterministic all the same. A tie between a step end and an
arrival that coincide to the last bit may round the other way than stepping
would, shifting later events by a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twinfer.sim.batching import tbt_bin, tbt_bin_interior
from twinfer.sim.decode_batch import DecodeBatch
from twinfer.sim.request import Request

#: A backend's ``decode_run_affine(decode_seqs, context_tokens) -> (dt0_s, slope_s, valid_steps)`` (twinfer.perf.base).
Affine = Callable[[int, int], tuple[float, float, int]]


class DecodeRun:
    """A committed run of ``steps`` plain decode steps of ``n`` sequences starting at ``t0_s``.

    ``joiners`` are members whose first decode step is the run's first step
    (their gap is measured from their own last token, not the batch's).
    """

    __slots__ = ("t0_s", "n", "dt0_s", "slope_s", "steps", "done", "last_end_before_s", "joiners", "_asked")

    def __init__(self, t0_s: float, n: int, dt0_s: float, slope_s: float, steps: int,
                 last_end_before_s: float, joiners: list[Request] | None = None) -> None:
        self.t0_s = t0_s
        self.n = n  # sequences in every step of the run
        self.dt0_s = dt0_s  # duration of the first step
        self.slope_s = slope_s  # growth of the step duration per step (>= 0)
        self.steps = steps  # steps in the run
        self.done = 0  # steps already applied to the instance
        self.last_end_before_s = last_end_before_s  # end of the decode step before the run (first gap)
        self.joiners = joiners or []
        self._asked = (-1.0, 0)  # the last steps_by question and answer (the router and a cut ask at one time)

    @classmethod
    def open(cls, batch: DecodeBatch, now: float, k: int, affine: Affine, instance_index: int) -> DecodeRun:
        """The run of at most ``k`` plain decode steps of ``batch`` from ``now``, priced by the backend's ``affine`` ramp.

        Members ready to join take the run's first step (``join_and_run_steps``);
        they are recorded as decoding on instance ``instance_index`` from ``now``.
        """
        n = len(batch.decoding)
        dt0, slope, valid = affine(n, batch.ctx_sum)
        if not (dt0 > 0.0 and slope >= 0.0 and isinstance(valid, int) and valid >= 1):
            raise ValueError(f"step-cost model returned a decode ramp ({dt0!r} s, {slope!r} s/step, {valid!r} steps) "
                             f"for {n} sequences; step times must be positive and non-decreasing, "
                             "and a ramp must hold for at least one step")
        joiners = batch.take_joiners()
        for r in joiners:
            r.decode_instance = instance_index
            if r.decode_start_s != r.decode_start_s:  # NaN: first decode step ever
                r.decode_start_s = now
        return cls(now, n, dt0, slope, min(k, valid), batch.last_decode_end, joiners)

    def settle(self, batch: DecodeBatch, s: int) -> float:
        """Apply steps ``done`` .. ``s - 1`` to ``batch`` (tokens, gaps, max TBT); the busy seconds they took.

        Fills the TBT histogram as :meth:`DecodeBatch.record_gaps` would, step by
        step (the same gaps, from the same float operations), in O(bins crossed).
        """
        d0 = d = self.done
        n = self.n
        hist = batch.tbt_hist
        t0, dt0, slope = self.t0_s, self.dt0_s, self.slope_s  # end_s(x) = t0 + x*dt0 + slope*(x*(x-1)//2), inlined
        # The ramp's gaps (steps j0..s-1) first: the other gaps usually share its last bin.
        j0 = 1 if d == 0 else d
        b = -1
        lo = hi = last = 0.0
        if s > j0:
            last = dt0 + slope * (s - 1)
            b = tbt_bin(last)
            lo, hi = tbt_bin_interior(b)
            first = dt0 + slope * j0
            if slope == 0.0 or lo < first < hi:  # the usual case: the whole ramp in one 1 % bin
                hist[b] = hist.get(b, 0) + n * (s - j0)
            else:
                add_ramp_to_hist(hist, self, j0, s, n)
        max_gap = -1.0
        if d == 0:
            t1 = t0 + dt0
            max_gap = t1 - self.last_end_before_s
            joiners = self.joiners
            cont = n - len(joiners)
            if cont:
                g = max_gap
                gb = b if lo < g < hi else tbt_bin(g)
                hist[gb] = hist.get(gb, 0) + cont
            if joiners:
                for r in joiners:
                    g = t1 - r.last_token_s
                    if g > r.max_tbt_s:
                        r.max_tbt_s = g
                    gb = b if lo < g < hi else tbt_bin(g)
                    hist[gb] = hist.get(gb, 0) + 1
                # the joiners' max-TBT queries start after this step: it gets a gap-stack entry of its own
                batch.advance_decode_run(n, 1, t1, max_gap if cont else None)
                d = 1
                max_gap = -1.0
        if s > j0 and last > max_gap:
            max_gap = last
        t_end = t0 + s * dt0 + slope * (s * (s - 1) // 2)
        if s > d:
            batch.advance_decode_run(n, s - d, t_end, max_gap)
        self.done = s
        return t_end - (t0 + d0 * dt0 + slope * (d0 * (d0 - 1) // 2))

    def end_s(self, s: int) -> float:
        """When the run's first ``s`` steps have ended."""
        return self.t0_s + s * self.dt0_s + self.slope_s * (s * (s - 1) // 2)

    def steps_by(self, t: float) -> int:
        """Steps of the run that have ended at or before ``t``."""
        asked_t, answer = self._asked
        if t == asked_t and answer <= self.steps:
            return answer
        t0, dt0, slope, steps = self.t0_s, self.dt0_s, self.slope_s, self.steps
        x = t - t0
        if x < dt0:  # (x is rounded: the first step may still have ended)
            return 1 if steps and t0 + dt0 <= t else 0
        s = int(x / dt0)  # exact for a flat run; the ramp makes it at most slope*s*s/(2*dt0) too many
        if slope * s * s > dt0:
            half = 0.5 * slope
            b = dt0 - half  # > 0: a step lasts far longer than its growth
            s = int(2.0 * x / (b + math.sqrt(b * b + 4.0 * half * x)))  # root of half*s^2 + b*s = x, stably
        if s > steps:
            s = steps
        # the estimate is within a step of the answer; settle it against end_s exactly
        while s > 0 and t0 + s * dt0 + slope * (s * (s - 1) // 2) > t:
            s -= 1
        while s < steps and t0 + (s + 1) * dt0 + slope * ((s + 1) * s // 2) <= t:
            s += 1
        self._asked = (t, s)
        return s


def add_ramp_to_hist(hist: dict[int, int], run: DecodeRun, j0: int, j1: int, weight: int) -> float:
    """Add the gaps of steps ``j0 <= j < j1`` (j0 >= 1) to a TBT histogram, ``weight`` each; the largest gap.

    Gaps grow with ``j``, so their bins do too: each bin's share is found by
    bisection, O(log steps) per bin crossed (runs rarely cross one 1 % bin).
    """
    dt0, slope = run.dt0_s, run.slope_s
    last = dt0 + slope * (j1 - 1)
    b_last = tbt_bin(last)
    while j0 < j1:
        b = tbt_bin(dt0 + slope * j0)
        if b == b_last:
            hist[b] = hist.get(b, 0) + weight * (j1 - j0)
            break
        lo, hi = j0, j1 - 1  # bin(lo) == b < bin(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if tbt_bin(dt0 + slope * mid) == b:
                lo = mid
            else:
                hi = mid
        hist[b] = hist.get(b, 0) + weight * (hi - j0)
        j0 = hi
    return last
