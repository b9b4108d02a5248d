"""Stretching a trace over a day by a rate profile: closed-form warps, kept order and ids, config."""

from __future__ import annotations

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.workload.build import build_workload
from twinfer.workload.config import WorkloadConfig
from twinfer.workload.rate_profile import RateProfile, stretch_workload
from twinfer.workload.types import Workload


def _workload(times: list[float], ids: list[list[int]] | None = None) -> Workload:
    n = len(times)
    return Workload(
        arrival_s=np.array(times), prompt_tokens=np.arange(1, n + 1), output_tokens=np.ones(n, dtype=np.int64),
        prefix_block_ids=tuple(np.array(i) for i in ids) if ids is not None else None,
        prefix_block_tokens=512 if ids is not None else None,
    )


def test_flat_profile_is_a_linear_stretch() -> None:
    w = _workload([0.0, 1.0, 3.0, 4.0])
    out = stretch_workload(w, RateProfile(400.0, ((0, 2.0), (400, 2.0))))
    assert out.arrival_s == pytest.approx([0.0, 100.0, 300.0, 400.0])
    assert list(out.prompt_tokens) == [1, 2, 3, 4]


def test_ramp_profile_matches_the_closed_form() -> None:
    # rate r(t) = t on [0, D]: R(t) / R(D) = t^2 / D^2, so fraction u lands at D * sqrt(u).
    u = np.linspace(0.0, 1.0, 11)
    out = stretch_workload(_workload(list(u * 3600.0)), RateProfile(86400.0, ((0, 0.0), (86400, 1.0))))
    assert out.arrival_s == pytest.approx(86400.0 * np.sqrt(u))


def test_two_level_day_puts_requests_where_the_rate_is() -> None:
    # rate 1 for the first half-day, 3 for the second: a quarter of the requests in the first half.
    w = _workload(list(np.arange(1000.0)))
    prof = RateProfile(86400.0, ((0, 1.0), (43199.999, 1.0), (43200, 3.0), (86400, 3.0)))
    out = stretch_workload(w, prof)
    first_half = np.count_nonzero(out.arrival_s < 43200)
    assert abs(first_half - 250) <= 1


def test_repeat_tiles_the_trace_and_separates_block_ids() -> None:
    w = _workload([0.0, 10.0], ids=[[0, 1], [0, 2]])
    out = stretch_workload(w, RateProfile(100.0, ((0, 1.0), (100, 1.0)), repeat=3))
    assert len(out) == 6 and np.all(np.diff(out.arrival_s) > 0)
    assert [list(b) for b in out.prefix_block_ids] == [[0, 1], [0, 2], [3, 4], [3, 5], [6, 7], [6, 8]]


def test_stretching_the_mooncake_sample_from_the_scenario(rng: np.random.Generator) -> None:
    cfg = WorkloadConfig.from_dict(
        {
            "trace": "builtin:mooncake-conv-sample",
            "rate_profile": {"duration_s": 86400, "points": [[0, 0.2], [50400, 1.0], [86400, 0.2]], "repeat": 2},
        }
    )
    w = build_workload(cfg, rng)
    assert len(w) == 2000 and w.arrival_s[-1] == pytest.approx(86400.0)
    assert w.prefix_block_ids is not None and w.prefix_block_tokens == 512
    peak = np.count_nonzero(np.abs(w.arrival_s - 50400) < 3600)
    night = np.count_nonzero(w.arrival_s < 7200)
    assert peak > 2.5 * night


def test_bad_profiles() -> None:
    with pytest.raises(ConfigError, match="first at 0"):
        RateProfile(10.0, ((1, 1.0), (10, 1.0)))
    with pytest.raises(ConfigError, match="not all 0"):
        RateProfile(10.0, ((0, 0.0), (10, 0.0)))
    with pytest.raises(ConfigError, match="workload.rate_profile: needs duration_s"):
        WorkloadConfig.from_dict({"trace": "builtin:azure-conv-sample", "rate_profile": {"points": []}})
    with pytest.raises(ConfigError, match=r"workload.rate_profile: rate_profile.points\[0\]"):
        WorkloadConfig.from_dict(
            {"trace": "builtin:azure-conv-sample", "rate_profile": {"duration_s": 10, "points": [[0], [10, 1]]}}
        )
