"""Stretch a workload over a longer span (a one-hour trace over a day) following a rate profile.

The profile is a piecewise-linear relative rate r(tau) over ``[0, duration_s]``
(only its shape matters). Request i of the input, arriving at fraction
``u_i = t_i / T`` of the input's span, is moved to the time ``tau_i`` where
the profile's cumulative share reaches the same fraction:
``R(tau_i) / R(duration_s) = u_i`` with ``R(tau) = integral_0^tau r``. Order,
lengths and prefix block ids are kept; the trace's own short-term burstiness is
kept too (relative gaps are scaled by the local 1 / r), while the long-term
rate follows the profile. ``repeat`` first plays the input that many times back
to back (block ids of each copy shifted apart, so copies do not share
prefixes), so a one-hour trace repeated 24 times keeps its mean rate over a day.
Inverting R is exact: on a segment where r goes linearly from r_a with slope
k, R(a + x) - R(a) = r_a x + k x^2 / 2 is solved for x in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from twinfer.errors import ConfigError
from twinfer.workload.types import Workload


@dataclass(frozen=True)
class RateProfile:
    """A relative arrival rate over ``[0, duration_s]``, linear between ``points`` (time_s, rate)."""

    duration_s: float
    points: tuple[tuple[float, float], ...]
    repeat: int = 1  # play the input this many times back to back before stretching

    def __post_init__(self) -> None:
        pts = tuple((float(t), float(r)) for t, r in self.points)
        object.__setattr__(self, "points", pts)
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ConfigError(f"rate_profile.duration_s must be > 0, got {self.duration_s!r}")
        if len(pts) < 2 or pts[0][0] != 0 or pts[-1][0] != self.duration_s:
            raise ConfigError(
                "rate_profile.points: need at least two [time_s, rate] points, the first at 0 and "
                f"the last at duration_s={self.duration_s:g}"
            )
        times = [t for t, _ in pts]
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ConfigError("rate_profile.points: times must increase strictly")
        rates = [r for _, r in pts]
        if any(not (r >= 0 and math.isfinite(r)) for r in rates) or not any(r > 0 for r in rates):
            raise ConfigError("rate_profile.points: rates must be >= 0 and not all 0")
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise ConfigError(f"rate_profile.repeat must be an integer >= 1, got {self.repeat!r}")

    def warp(self, fractions: np.ndarray) -> np.ndarray:
        """Times tau with R(tau) / R(duration_s) = fraction, for fractions in [0, 1]."""
        t = np.array([p[0] for p in self.points])
        r = np.array([p[1] for p in self.points])
        seg_mass = 0.5 * (r[:-1] + r[1:]) * np.diff(t)
        cum = np.concatenate([[0.0], np.cumsum(seg_mass)])
        target = np.clip(np.asarray(fractions, dtype=np.float64), 0.0, 1.0) * cum[-1]
        # the segment whose cumulative end first exceeds the target (skips zero-rate stretches)
        j = np.minimum(np.searchsorted(cum[1:], target, side="right"), len(seg_mass) - 1)
        ra = r[j]
        slope = (r[j + 1] - r[j]) / (t[j + 1] - t[j])
        mass = np.maximum(target - cum[j], 0.0)
        # x = 2 m / (r_a + sqrt(r_a^2 + 2 k m)): the stable root of r_a x + k x^2 / 2 = m
        denom = ra + np.sqrt(np.maximum(ra * ra + 2.0 * slope * mass, 0.0))
        x = np.divide(2.0 * mass, denom, out=np.zeros_like(mass), where=denom > 0)
        return np.minimum(t[j] + x, t[j + 1])


def _repeated(workload: Workload, copies: int) -> Workload:
    if copies == 1:
        return workload
    n = len(workload)
    span = workload.duration_s
    step = span + (span / (n - 1) if n > 1 else 1.0)  # one mean gap between copies
    ids = workload.prefix_block_ids
    shifted: tuple[np.ndarray, ...] | None = None
    if ids is not None:
        width = int(max((int(b.max()) for b in ids if len(b)), default=-1)) + 1
        shifted = tuple(b + c * width for c in range(copies) for b in ids)
    return replace(
        workload,
        arrival_s=np.concatenate([workload.arrival_s + c * step for c in range(copies)]),
        prompt_tokens=np.tile(workload.prompt_tokens, copies),
        output_tokens=np.tile(workload.output_tokens, copies),
        prefix_block_ids=shifted,
    )


def stretch_workload(workload: Workload, profile: RateProfile) -> Workload:
    """``workload`` (repeated ``profile.repeat`` times) spread over ``profile.duration_s`` (module doc)."""
    if not len(workload):
        return workload
    base = _repeated(workload, profile.repeat)
    arrival = base.arrival_s - base.arrival_s[0]
    span = float(arrival[-1])
    n = len(base)
    fractions = arrival / span if span > 0 else np.arange(n) / max(n - 1, 1)
    return replace(
        base,
        arrival_s=profile.warp(fractions),
        source=f"{workload.source} (x{profile.repeat}, stretched over {profile.duration_s:g} s)",
    )


def profile_from_pairs(duration_s: float, pairs: Sequence[Sequence[float]], repeat: int = 1) -> RateProfile:
    """A :class:`RateProfile` from ``[[time_s, rate], ...]`` lists (as YAML gives them)."""
    points = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, Sequence) or len(pair) != 2:
            raise ConfigError(f"rate_profile.points[{i}]: expected [time_s, rate], got {pair!r}")
        points.append((pair[0], pair[1]))
    return RateProfile(duration_s=duration_s, points=tuple(points), repeat=repeat)
