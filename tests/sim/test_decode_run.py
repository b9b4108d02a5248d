"""Closed-form decode runs against stepping one step at a time."""

from __future__ import annotations

import math
import random

import pytest

from twinfer.sim.batching import tbt_bin
from twinfer.sim.decode_run import DecodeRun, add_ramp_to_hist


def _stepped_ends(run: DecodeRun) -> list[float]:
    ends, t = [run.t0_s], run.t0_s
    for j in range(run.steps):
        t += run.dt0_s + run.slope_s * j
        ends.append(t)
    return ends


@pytest.mark.parametrize("seed", range(5))
def test_end_times_match_stepping_and_steps_by_inverts_them(seed):
    rng = random.Random(seed)
    run = DecodeRun(rng.uniform(0, 1e4), 7, rng.uniform(1e-3, 5e-2), rng.choice([0.0, rng.uniform(0, 1e-5)]),
                    rng.randint(1, 3000), last_end_before_s=0.0)
    ends = _stepped_ends(run)
    for s in range(run.steps + 1):
        assert run.end_s(s) == pytest.approx(ends[s], rel=1e-13, abs=0)
    for _ in range(500):
        t = rng.uniform(run.t0_s - 1.0, ends[-1] + 1.0)
        s = run.steps_by(t)
        assert 0 <= s <= run.steps
        assert s == 0 or run.end_s(s) <= t  # step s-1 has ended ...
        assert s == run.steps or run.end_s(s + 1) > t  # ... and step s has not
    for s in range(run.steps + 1):  # exactly at a step end, that step counts as ended
        assert run.steps_by(run.end_s(s)) == s


def test_ramp_histogram_matches_binning_each_gap():
    rng = random.Random(3)
    for _ in range(200):
        # slopes up to 2e-4 s/step on ~10 ms steps: runs that cross up to dozens of 1 % bins
        run = DecodeRun(0.0, 1, rng.uniform(1e-3, 2e-2), rng.choice([0.0, rng.uniform(0, 2e-4)]),
                        rng.randint(2, 2000), last_end_before_s=0.0)
        j0 = rng.randint(1, run.steps - 1)
        hist: dict[int, int] = {}
        last = add_ramp_to_hist(hist, run, j0, run.steps, 3)
        want: dict[int, int] = {}
        for j in range(j0, run.steps):
            b = tbt_bin(run.dt0_s + run.slope_s * j)
            want[b] = want.get(b, 0) + 3
        assert hist == want
        assert last == run.dt0_s + run.slope_s * (run.steps - 1)


def test_tbt_bin_edges():
    base, step = 1e-6, math.log(1.01)
    assert tbt_bin(0.5e-6) == 0 and tbt_bin(1e-6) == 0
    for b in (1, 50, 1000):
        lo = base * math.exp((b - 1) * step)
        assert tbt_bin(lo * (1 + 1e-9)) == b
        assert tbt_bin(lo * 1.01 * (1 - 1e-9)) == b
