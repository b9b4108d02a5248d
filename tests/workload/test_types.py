"""Workload container: validation, immutability, and the slicing helpers."""

from __future__ import annotations

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.workload import Workload


def _workload(**extra: object) -> Workload:
    return Workload(
        arrival_s=np.array([0.0, 1.0, 2.5, 4.0]),
        prompt_tokens=np.array([10, 20, 30, 40]),
        output_tokens=np.array([1, 2, 3, 4]),
        name="w",
        **extra,  # type: ignore[arg-type]
    )


def test_lengths_rate_and_immutability() -> None:
    w = _workload()
    assert len(w) == w.len() == 4
    assert w.mean_rate_per_s == pytest.approx(3 / 4.0)  # 3 gaps over 4 s
    assert w.arrival_s.dtype == np.float64 and w.prompt_tokens.dtype == np.int64
    with pytest.raises(ValueError):
        w.prompt_tokens[0] = 5


def test_scaled_divides_times_and_multiplies_rate() -> None:
    w = _workload().scaled(2.0)
    assert w.arrival_s.tolist() == [0.0, 0.5, 1.25, 2.0]
    assert w.mean_rate_per_s == pytest.approx(1.5)
    with pytest.raises(ConfigError):
        _workload().scaled(0.0)


def test_head_and_window_keep_block_ids_aligned() -> None:
    ids = (np.array([1]), np.array([1, 2]), np.array([3]), np.array([4, 5, 6]))
    w = _workload(prefix_block_ids=ids, prefix_block_tokens=512)
    assert w.head(2).prompt_tokens.tolist() == [10, 20]
    win = w.window(1.0, 4.0)  # [1, 4): requests at 1.0 and 2.5, shifted by 1
    assert win.arrival_s.tolist() == [0.0, 1.5]
    assert win.prompt_tokens.tolist() == [20, 30]
    assert win.prefix_block_ids is not None
    assert [b.tolist() for b in win.prefix_block_ids] == [[1, 2], [3]]


@pytest.mark.parametrize(
    ("arrival", "prompt", "output", "message"),
    [
        ([1.0, 0.0], [1, 1], [1, 1], "sorted"),
        ([0.0, 1.0], [0, 1], [1, 1], ">= 1"),
        ([0.0, 1.0], [1, 1], [1], "one length"),
        ([0.0, np.nan], [1, 1], [1, 1], "non-finite"),
    ],
)
def test_invalid_workloads_are_rejected(
    arrival: list, prompt: list, output: list, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Workload(
            arrival_s=np.array(arrival),
            prompt_tokens=np.array(prompt),
            output_tokens=np.array(output),
        )
