"""Token-length distributions: fixed, uniform, lognormal, empirical.

All return int64 arrays of values >= 1 without clipping:

- ``fixed``: every request gets ``value``.
- ``uniform``: integers drawn uniformly from ``low`` to ``high`` inclusive.
- ``lognormal``: X = exp(mu + sigma*Z), Z standard normal, parametrised either
  by the distribution's ``median`` (mu = ln median) or its ``mean``
  (mu = ln mean - sigma**2/2). The token count is ceil(X), which is >= 1 for
  every X > 0, so nothing is clipped; the cost is a small upward shift of the
  discrete mean, E[ceil X] = sum_{k>=0} P(X > k), about mean + 0.5 tokens.
- ``empirical``: values drawn uniformly with replacement from a trace column.
"""

from __future__ import annotations

import math

import numpy as np

from twinfer.errors import ConfigError

LENGTH_KINDS = ("fixed", "uniform", "lognormal", "empirical")


def fixed_lengths(value: int, size: int) -> np.ndarray:
    """``size`` copies of ``value`` (>= 1)."""
    if int(value) != value or value < 1:
        raise ConfigError(f"fixed length value must be an integer >= 1, got {value!r}")
    return np.full(size, int(value), dtype=np.int64)


def uniform_lengths(low: int, high: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Integers uniform on [low, high], both ends included."""
    if int(low) != low or int(high) != high or not 1 <= low <= high:
        raise ConfigError(
            f"uniform lengths need integers 1 <= low <= high, got low={low!r}, high={high!r}"
        )
    return rng.integers(int(low), int(high), size=size, endpoint=True, dtype=np.int64)


def lognormal_mu(sigma: float, *, mean: float | None = None, median: float | None = None) -> float:
    """Location mu of ln X for a lognormal given by its mean or its median (exactly one)."""
    if (mean is None) == (median is None):
        raise ConfigError("lognormal lengths need exactly one of mean or median (and sigma)")
    if not sigma >= 0 or not math.isfinite(sigma):
        raise ConfigError(f"lognormal sigma must be a finite number >= 0, got {sigma!r}")
    if median is not None:
        if not median > 0:
            raise ConfigError(f"lognormal median must be > 0, got {median!r}")
        return math.log(median)
    assert mean is not None
    if not mean > 0:
        raise ConfigError(f"lognormal mean must be > 0, got {mean!r}")
    return math.log(mean) - 0.5 * sigma * sigma


def lognormal_lengths(
    sigma: float,
    size: int,
    rng: np.random.Generator,
    *,
    mean: float | None = None,
    median: float | None = None,
) -> np.ndarray:
    """ceil of lognormal draws (see the module doc for the parametrisation)."""
    mu = lognormal_mu(sigma, mean=mean, median=median)
    draws = np.ceil(rng.lognormal(mu, sigma, size=size))
    # X > 0 always, so ceil(X) >= 1 unless exp underflows to 0.0 (ln X < -745).
    if size and (draws.min() < 1.0 or draws.max() >= 2.0**62):
        raise ConfigError(
            f"lognormal lengths with mu={mu:.3g}, sigma={sigma} under- or overflow; "
            "use a larger mean/median or a smaller sigma"
        )
    return draws.astype(np.int64)


def empirical_lengths(values: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``size`` values uniformly with replacement from ``values``."""
    pool = np.asarray(values, dtype=np.int64)
    if not len(pool):
        raise ConfigError("empirical lengths: the source column is empty")
    return pool[rng.integers(0, len(pool), size=size)]
