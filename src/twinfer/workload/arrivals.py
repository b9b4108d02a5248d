"""Arrival processes: Poisson, Gamma (bursty), fixed rate, replayed timestamps.

Each renewal process places the k-th arrival at the sum of k independent gaps
(so the first request arrives one gap after t = 0). No gap is clipped or
resampled: what is drawn is what the simulator sees.

- ``poisson``: exponential gaps with mean 1/rate (coefficient of variation 1).
- ``gamma``: Gamma gaps with mean 1/rate and coefficient of variation ``cv``;
  shape k = 1/cv**2 and scale = 1/(rate*k). cv > 1 is burstier than Poisson,
  cv < 1 smoother, cv = 1 is Poisson.
- ``fixed``: every gap exactly 1/rate.
- replay: timestamps from a file, shifted so the first is 0.
"""

from __future__ import annotations

import math

import numpy as np

from twinfer.errors import ConfigError

ARRIVAL_KINDS = ("poisson", "gamma", "fixed", "replay", "diurnal")  # diurnal: diurnal.py


def _gaps(
    kind: str, rate_per_s: float, cv: float | None, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` inter-arrival gaps in seconds."""
    mean_gap_s = 1.0 / rate_per_s
    if kind == "poisson":
        return rng.exponential(mean_gap_s, size=size)
    if kind == "gamma":
        assert cv is not None
        shape = 1.0 / (cv * cv)
        return rng.gamma(shape, mean_gap_s / shape, size=size)
    if kind == "fixed":
        return np.full(size, mean_gap_s)
    raise ConfigError(f"unknown arrival kind {kind!r}; use one of {', '.join(ARRIVAL_KINDS)}")


def renewal_arrivals(
    kind: str,
    rate_per_s: float,
    rng: np.random.Generator,
    *,
    cv: float | None = None,
    num_requests: int | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """Arrival times (s) of a renewal process: ``num_requests`` of them, or all before ``duration_s``.

    With both limits, stops at whichever comes first. Deterministic for a given
    ``rng`` state: gaps are drawn in blocks whose sizes depend only on the
    arguments.
    """
    if not rate_per_s > 0 or not math.isfinite(rate_per_s):
        raise ConfigError(f"arrival rate_per_s must be a positive number, got {rate_per_s!r}")
    if kind == "gamma" and (cv is None or not cv > 0):
        raise ConfigError(f"gamma arrivals need a coefficient of variation cv > 0, got {cv!r}")
    if num_requests is None and duration_s is None:
        raise ConfigError("arrivals need num_requests or duration_s")
    if num_requests is not None and duration_s is None:
        return np.cumsum(_gaps(kind, rate_per_s, cv, int(num_requests), rng))
    assert duration_s is not None
    limit = int(num_requests) if num_requests is not None else None
    expected = rate_per_s * duration_s
    block = int(expected + 6.0 * math.sqrt(expected) * (cv or 1.0) + 16)
    times = np.empty(0)
    start = 0.0
    while True:
        chunk = start + np.cumsum(_gaps(kind, rate_per_s, cv, block, rng))
        times = np.concatenate([times, chunk])
        if chunk[-1] >= duration_s or (limit is not None and len(times) >= limit):
            break
        start = float(chunk[-1])
    times = times[times < duration_s]
    return times[:limit] if limit is not None else times


def replayed_arrivals(
    timestamps_s: np.ndarray,
    *,
    rate_per_s: float | None = None,
    num_requests: int | None = None,
    duration_s: float | None = None,
) -> np.ndarray:
    """Replay recorded arrival times: sorted, shifted to start at 0, optionally rescaled.

    ``rate_per_s`` stretches or compresses time so the mean rate ((N-1)/span)
    equals it. ``num_requests`` takes the first N (error if fewer exist);
    ``duration_s`` keeps those before it.
    """
    times = np.sort(np.asarray(timestamps_s, dtype=np.float64), kind="stable")
    if not len(times):
        raise ConfigError("replay arrivals: the timestamps file holds no timestamps")
    times = times - times[0]
    if rate_per_s is not None:
        if not rate_per_s > 0:
            raise ConfigError(f"replay rate_per_s must be positive, got {rate_per_s!r}")
        if len(times) < 2 or times[-1] == 0:
            raise ConfigError("replay rate_per_s needs at least two distinct timestamps")
        times = times * (((len(times) - 1) / times[-1]) / rate_per_s)
    if duration_s is not None:
        times = times[times < duration_s]
    if num_requests is not None:
        if num_requests > len(times):
            raise ConfigError(
                f"replay arrivals: num_requests {num_requests} exceeds the {len(times)} timestamps available"
            )
        times = times[: int(num_requests)]
    return times
