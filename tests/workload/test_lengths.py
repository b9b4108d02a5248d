"""Length distributions against closed forms and their source data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.workload.lengths import (
    empirical_lengths,
    fixed_lengths,
    lognormal_lengths,
    uniform_lengths,
)

N = 200_000


def _expected_ceil_lognormal(mu: float, sigma: float, kmax: int = 200_000) -> float:
    """E[ceil X] = sum_{k>=0} P(X > k) for X = exp(mu + sigma Z), by direct summation."""
    total = 1.0  # k = 0: P(X > 0) = 1
    for k in range(1, kmax):
        tail = 0.5 * math.erfc((math.log(k) - mu) / (sigma * math.sqrt(2)))
        total += tail
        if tail < 1e-12:
            break
    return total


@pytest.mark.parametrize(("mean", "sigma"), [(1155.0, 1.0), (211.0, 0.5), (3.0, 1.2)])
def test_lognormal_by_mean_has_that_mean_up_to_the_ceiling(
    mean: float, sigma: float, rng: np.random.Generator
) -> None:
    draws = lognormal_lengths(sigma, N, rng, mean=mean)
    mu = math.log(mean) - sigma * sigma / 2
    expected = _expected_ceil_lognormal(mu, sigma)
    if mean > 100:  # the documented shift of about +0.5 token for wide distributions
        assert expected == pytest.approx(mean + 0.5, abs=0.05)
    sd = mean * math.sqrt(math.exp(sigma * sigma) - 1)
    assert draws.mean() == pytest.approx(expected, abs=5 * sd / math.sqrt(N))
    assert draws.min() >= 1 and draws.dtype == np.int64


def test_lognormal_by_median_puts_half_the_mass_at_or_below_it(rng: np.random.Generator) -> None:
    draws = lognormal_lengths(0.8, N, rng, median=500)
    # For integer m, ceil X <= m  <=>  X <= m, and P(X <= median) = 1/2.
    assert np.mean(draws <= 500) == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / N))


def test_lognormal_needs_exactly_one_of_mean_and_median(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        lognormal_lengths(1.0, 3, rng, mean=10, median=10)
    with pytest.raises(ConfigError, match="exactly one"):
        lognormal_lengths(1.0, 3, rng)


def test_uniform_covers_both_ends_with_the_right_mean(rng: np.random.Generator) -> None:
    draws = uniform_lengths(10, 20, N, rng)
    assert draws.min() == 10 and draws.max() == 20
    sd = math.sqrt(((20 - 10 + 1) ** 2 - 1) / 12)  # discrete uniform variance
    assert draws.mean() == pytest.approx(15.0, abs=5 * sd / math.sqrt(N))


def test_fixed_and_bad_parameters() -> None:
    assert fixed_lengths(7, 3).tolist() == [7, 7, 7]
    with pytest.raises(ConfigError):
        fixed_lengths(0, 3)
    with pytest.raises(ConfigError):
        uniform_lengths(5, 4, 3, np.random.default_rng(0))


def test_empirical_reproduces_the_source_mean_and_support(rng: np.random.Generator) -> None:
    source = np.array([1, 2, 3, 10, 100, 1000])
    draws = empirical_lengths(source, N, rng)
    assert set(np.unique(draws)) == set(source.tolist())
    assert draws.mean() == pytest.approx(source.mean(), abs=5 * source.std() / math.sqrt(N))
