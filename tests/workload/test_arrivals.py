"""Arrival processes against their closed-form moments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.workload.arrivals import renewal_arrivals, replayed_arrivals

N = 200_000


def _gaps(times: np.ndarray) -> np.ndarray:
    return np.diff(np.concatenate([[0.0], times]))


def test_poisson_gaps_have_mean_one_over_rate_and_cv_one(rng: np.random.Generator) -> None:
    rate = 4.0
    gaps = _gaps(renewal_arrivals("poisson", rate, rng, num_requests=N))
    # Exponential(1/rate): mean 1/rate, sd 1/rate; 5 standard errors of the sample mean.
    assert gaps.mean() == pytest.approx(1 / rate, abs=5 * (1 / rate) / math.sqrt(N))
    # CV of an exponential is 1; sd of the sample CV is about sqrt(2/N) (kurtosis 9).
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=6 * math.sqrt(2 / N))
    # Memorylessness: P(gap > mean) = exp(-1).
    assert np.mean(gaps > 1 / rate) == pytest.approx(math.exp(-1), abs=5 * math.sqrt(0.25 / N))


def test_poisson_counts_in_windows_have_variance_equal_to_mean(rng: np.random.Generator) -> None:
    times = renewal_arrivals("poisson", 10.0, rng, duration_s=20_000.0)
    counts = np.bincount(times.astype(np.int64), minlength=20_000)  # per 1-s window
    assert counts.mean() == pytest.approx(10.0, rel=0.01)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.05)  # index of dispersion


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_gaps_have_configured_mean_and_cv(cv: float, rng: np.random.Generator) -> None:
    rate = 5.0
    gaps = _gaps(renewal_arrivals("gamma", rate, rng, cv=cv, num_requests=N))
    assert gaps.mean() == pytest.approx(1 / rate, abs=5 * cv * (1 / rate) / math.sqrt(N))
    # Gamma kurtosis is 3 + 6*cv^2, so the sample CV has sd ~ cv*sqrt((2 + 6cv^2)/(4N)).
    sd_cv = cv * math.sqrt((2 + 6 * cv * cv) / (4 * N))
    assert gaps.std() / gaps.mean() == pytest.approx(cv, abs=7 * sd_cv)


def test_fixed_arrivals_are_evenly_spaced_from_one_gap() -> None:
    times = renewal_arrivals("fixed", 2.0, np.random.default_rng(0), num_requests=4)
    np.testing.assert_allclose(times, [0.5, 1.0, 1.5, 2.0])


def test_duration_limit_keeps_a_poisson_count_before_it(rng: np.random.Generator) -> None:
    times = renewal_arrivals("poisson", 3.0, rng, duration_s=1000.0)
    assert times.max() < 1000.0 and np.all(np.diff(times) >= 0)
    assert len(times) == pytest.approx(3000, abs=5 * math.sqrt(3000))  # Poisson(3000)


def test_both_limits_stop_at_the_first_reached(rng: np.random.Generator) -> None:
    assert len(renewal_arrivals("fixed", 1.0, rng, num_requests=5, duration_s=100.0)) == 5
    assert (
        len(renewal_arrivals("fixed", 1.0, rng, num_requests=500, duration_s=10.0)) == 9
    )  # 1..9 s


def test_same_seed_gives_identical_arrivals() -> None:
    a = renewal_arrivals("gamma", 2.0, np.random.default_rng(7), cv=3.0, duration_s=500.0)
    b = renewal_arrivals("gamma", 2.0, np.random.default_rng(7), cv=3.0, duration_s=500.0)
    assert a.tobytes() == b.tobytes()


def test_replay_shifts_sorts_rescales_and_limits() -> None:
    stamps = np.array([10.0, 12.0, 11.0, 14.0])
    np.testing.assert_allclose(replayed_arrivals(stamps), [0.0, 1.0, 2.0, 4.0])
    # 3 gaps over 4 s = 0.75/s; asking for 1.5/s halves every time.
    np.testing.assert_allclose(replayed_arrivals(stamps, rate_per_s=1.5), [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(replayed_arrivals(stamps, duration_s=2.0), [0.0, 1.0])
    with pytest.raises(ConfigError, match="exceeds the 4 timestamps"):
        replayed_arrivals(stamps, num_requests=5)


@pytest.mark.parametrize(
    ("kind", "rate", "cv", "message"),
    [
        ("poisson", 0.0, None, "positive"),
        ("gamma", 1.0, None, "cv"),
        ("weibull", 1.0, None, "unknown"),
    ],
)
def test_bad_arrival_parameters_are_config_errors(
    kind: str, rate: float, cv: float | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        renewal_arrivals(kind, rate, np.random.default_rng(0), cv=cv, num_requests=3)
