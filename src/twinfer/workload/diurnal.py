"""Diurnal arrivals with bursts: a Poisson process whose rate follows the day and jumps in bursts.

The rate at time t (seconds) is

    rate(t) = rate_per_s * (1 + a * cos(2 pi (t - peak_at_s) / period_s)) * burst(t)

with ``a = (r - 1) / (r + 1)`` for a peak-to-trough ratio ``r`` (so the peak is
``r`` times the trough and ``rate_per_s`` is the mean over a period without
bursts), and ``burst(t) = burst_factor`` inside a burst, 1 elsewhere. Burst
starts form a Poisson process with mean gap ``burst_every_s``; each lasts
``burst_duration_s`` (overlapping bursts do not compound). Arrivals are drawn
exactly by thinning (Lewis and Shedler 1979): candidates at the peak rate, each
kept with probability rate(t) / peak rate. Time is generated one period at a
time so the draws depend only on the arguments and the Generator's state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twinfer.errors import ConfigError


@dataclass(frozen=True)
class DiurnalProfile:
    """Shape of a day: period, peak-to-trough ratio, time of peak, and bursts."""

    period_s: float = 86400.0  # one day
    peak_to_trough: float = 3.0  # peak rate / trough rate (1 = flat)
    peak_at_s: float = 14 * 3600.0  # time of the daily peak (14:00 when t = 0 is midnight)
    burst_every_s: float | None = None  # mean gap between burst starts (None: no bursts)
    burst_duration_s: float = 300.0  # length of each burst
    burst_factor: float = 1.0  # rate multiplier inside a burst

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ConfigError(f"diurnal period_s must be > 0, got {self.period_s!r}")
        if not (self.peak_to_trough >= 1 and math.isfinite(self.peak_to_trough)):
            raise ConfigError(f"diurnal peak_to_trough must be >= 1, got {self.peak_to_trough!r}")
        if self.burst_every_s is not None and not self.burst_every_s > 0:
            raise ConfigError(f"diurnal burst_every_s must be > 0, got {self.burst_every_s!r}")
        if not self.burst_duration_s > 0 or not self.burst_factor >= 1:
            raise ConfigError("diurnal bursts need burst_duration_s > 0 and burst_factor >= 1")

    @property
    def amplitude(self) -> float:
        """a in 1 + a cos(...): (r - 1) / (r + 1)."""
        r = self.peak_to_trough
        return (r - 1.0) / (r + 1.0)

    def day_factor(self, t_s: np.ndarray) -> np.ndarray:
        """1 + a cos(2 pi (t - peak_at_s) / period_s): the daily shape, mean 1 over a period."""
        phase = 2.0 * np.pi * (np.asarray(t_s, dtype=np.float64) - self.peak_at_s) / self.period_s
        return 1.0 + self.amplitude * np.cos(phase)


def in_bursts(t_s: np.ndarray, bursts: np.ndarray) -> np.ndarray:
    """Whether each time lies inside one of the ``bursts`` ([start, end) rows)."""
    t = np.asarray(t_s, dtype=np.float64)
    if not len(bursts):
        return np.zeros(t.shape, dtype=bool)
    starts = bursts[:, 0]
    # the latest burst starting at or before t; bursts have equal lengths, so its end is the latest
    idx = np.searchsorted(starts, t, side="right") - 1
    ok = idx >= 0
    inside = np.zeros(t.shape, dtype=bool)
    inside[ok] = t[ok] < bursts[idx[ok], 1]
    return inside


def diurnal_arrivals(
    rate_per_s: float,
    profile: DiurnalProfile,
    rng: np.random.Generator,
    *,
    num_requests: int | None = None,
    duration_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (s) and burst windows ([start, end) rows) of the diurnal process.

    Stops after ``num_requests`` arrivals or at ``duration_s``, whichever comes
    first (at least one must be given).
    """
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise ConfigError(f"diurnal rate_per_s must be > 0, got {rate_per_s!r}")
    if num_requests is None and duration_s is None:
        raise ConfigError("diurnal arrivals need num_requests or duration_s")
    peak = rate_per_s * (1.0 + profile.amplitude) * profile.burst_factor
    times: list[np.ndarray] = []
    bursts: list[np.ndarray] = []
    count, start = 0, 0.0
    while True:
        stop = start + profile.period_s
        if duration_s is not None:
            stop = min(stop, duration_s)
        if profile.burst_every_s is not None:
            n_b = rng.poisson((stop - start) / profile.burst_every_s)
            b_start = np.sort(rng.uniform(start, stop, n_b))
            bursts.append(np.column_stack([b_start, b_start + profile.burst_duration_s]))
        windows = np.concatenate(bursts) if bursts else np.zeros((0, 2))
        cand = np.sort(rng.uniform(start, stop, rng.poisson(peak * (stop - start))))
        rate = rate_per_s * profile.day_factor(cand)
        rate = np.where(in_bursts(cand, windows), rate * profile.burst_factor, rate)
        kept = cand[rng.uniform(0.0, peak, len(cand)) < rate]
        times.append(kept)
        count += len(kept)
        done_n = num_requests is not None and count >= num_requests
        if done_n or (duration_s is not None and stop >= duration_s):
            break
        start = stop
    out = np.concatenate(times)
    if num_requests is not None:
        out = out[:num_requests]
    windows = np.concatenate(bursts) if bursts else np.zeros((0, 2))
    return out, windows
