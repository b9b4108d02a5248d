"""Diurnal arrivals: counts per quarter-day against the closed-form integral; bursts; config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.workload.build import build_workload
from twinfer.workload.config import WorkloadConfig
from twinfer.workload.diurnal import DiurnalProfile, diurnal_arrivals, in_bursts

DAY = 86400.0


def _expected(rate: float, profile: DiurnalProfile, t0: float, t1: float) -> float:
    """Integral of rate * (1 + a cos(2 pi (t - peak) / P)) over [t0, t1], by hand."""
    w = 2 * math.pi / profile.period_s
    a = profile.amplitude
    sine = math.sin(w * (t1 - profile.peak_at_s)) - math.sin(w * (t0 - profile.peak_at_s))
    return rate * ((t1 - t0) + a * sine / w)


def test_counts_follow_the_day(rng: np.random.Generator) -> None:
    profile = DiurnalProfile(peak_to_trough=4.0, peak_at_s=14 * 3600.0)
    times, bursts = diurnal_arrivals(1.0, profile, rng, duration_s=DAY)
    assert len(bursts) == 0 and times.max() < DAY
    for q in range(4):
        t0, t1 = q * DAY / 4, (q + 1) * DAY / 4
        seen = np.count_nonzero((times >= t0) & (times < t1))
        mean = _expected(1.0, profile, t0, t1)
        assert abs(seen - mean) < 5 * math.sqrt(mean), (q, seen, mean)  # Poisson: 5 sigma
    # the peak hour against the trough hour: ratio near 4
    peak = np.count_nonzero(np.abs(times - 14 * 3600) < 1800)
    trough = np.count_nonzero(np.abs(times - 2 * 3600) < 1800)
    assert 3.0 < peak / trough < 5.3


def test_bursts_multiply_the_rate_inside_them(rng: np.random.Generator) -> None:
    profile = DiurnalProfile(peak_to_trough=1.0, burst_every_s=3600.0, burst_duration_s=600.0, burst_factor=5.0)
    times, bursts = diurnal_arrivals(2.0, profile, rng, duration_s=DAY)
    inside = in_bursts(times, bursts)
    covered = in_bursts(np.arange(0.0, DAY, 1.0), bursts).mean() * DAY  # seconds inside bursts
    density_in = inside.sum() / covered
    density_out = (~inside).sum() / (DAY - covered)
    assert density_in / density_out == pytest.approx(5.0, rel=0.1)
    assert density_out == pytest.approx(2.0, rel=0.05)


def test_num_requests_and_determinism() -> None:
    profile = DiurnalProfile(period_s=100.0, peak_to_trough=2.0)
    a, _ = diurnal_arrivals(3.0, profile, np.random.default_rng(1), num_requests=1000)
    b, _ = diurnal_arrivals(3.0, profile, np.random.default_rng(1), num_requests=1000)
    assert len(a) == 1000 and np.array_equal(a, b) and np.all(np.diff(a) >= 0)


def test_diurnal_arrivals_from_the_scenario(rng: np.random.Generator) -> None:
    cfg = WorkloadConfig.from_dict(
        {
            "duration_s": 7200,
            "arrivals": {"kind": "diurnal", "rate_per_s": 1.0, "period_s": 7200, "peak_to_trough": 3},
            "prompt_tokens": 100,
            "output_tokens": 10,
        }
    )
    assert cfg.arrivals is not None and cfg.arrivals.diurnal is not None
    assert cfg.arrivals.diurnal.period_s == 7200
    w = build_workload(cfg, rng)
    assert abs(len(w) - 7200) < 5 * math.sqrt(7200)
    with pytest.raises(ConfigError, match="only apply to diurnal"):
        WorkloadConfig.from_dict(
            {"num_requests": 5, "arrivals": {"kind": "poisson", "rate_per_s": 1, "period_s": 10},
             "prompt_tokens": 1, "output_tokens": 1}
        )
    with pytest.raises(ConfigError, match="workload.arrivals: diurnal peak_to_trough must be >= 1"):
        WorkloadConfig.from_dict(
            {"num_requests": 5, "arrivals": {"kind": "diurnal", "rate_per_s": 1, "peak_to_trough": 0.5},
             "prompt_tokens": 1, "output_tokens": 1}
        )
