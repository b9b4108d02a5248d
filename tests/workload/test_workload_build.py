"""build_workload: determinism, the built-in trace, and how the config steps combine."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from twinfer.errors import ConfigError, UnknownNameError
from twinfer.workload import WorkloadConfig, build_workload, read_trace, resolve_trace

SYNTHETIC = {
    "num_requests": 3000,
    "arrivals": {"kind": "gamma", "rate_per_s": 4.0, "cv": 1.5},
    "prompt_tokens": {"kind": "lognormal", "mean": 1000, "sigma": 1.0},
    "output_tokens": {"kind": "uniform", "low": 1, "high": 400},
}


def _build(d: dict, seed: int = 1, base_dir: Path | None = None):
    return build_workload(
        WorkloadConfig.from_dict(d, base_dir=base_dir), np.random.default_rng(seed)
    )


def test_same_seed_same_bytes_different_seed_different_arrays() -> None:
    a, b, c = _build(SYNTHETIC), _build(SYNTHETIC), _build(SYNTHETIC, seed=2)
    for field in ("arrival_s", "prompt_tokens", "output_tokens"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
        assert getattr(a, field).tobytes() != getattr(c, field).tobytes()


def test_builtin_sample_is_the_documented_slice_of_the_azure_conv_trace() -> None:
    path = resolve_trace("builtin:azure-conv-sample")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"] and len(rows) == 2001
    assert (path.parent / "README.txt").read_text().count("CC-BY-4.0") >= 1
    w = build_workload(WorkloadConfig.default(), np.random.default_rng(0))
    assert len(w) == 2000 and w.name == "azure-conv-sample"
    assert w.prompt_tokens.sum() == sum(int(r[1]) for r in rows[1:])
    assert w.output_tokens.sum() == sum(int(r[2]) for r in rows[1:])


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="builtin:azure-conv-sample"):
        resolve_trace("builtin:nope")


def test_rate_scale_duration_and_max_requests_apply_in_order() -> None:
    base = _build({"trace": "builtin:azure-conv-sample"})
    fast = _build(
        {
            "trace": "builtin:azure-conv-sample",
            "rate_scale": 2.0,
            "duration_s": 60.0,
            "max_requests": 50,
        }
    )
    assert len(fast) == 50
    np.testing.assert_allclose(fast.arrival_s, base.arrival_s[:50] / 2.0)
    cut = _build({"trace": "builtin:azure-conv-sample", "rate_scale": 2.0, "duration_s": 60.0})
    assert len(cut) == int(np.sum(base.arrival_s / 2.0 < 60.0))


def test_trace_lengths_with_synthetic_arrivals(traces_dir: Path) -> None:
    w = _build(
        {
            "trace": str(traces_dir / "sharegpt8k_head.csv"),
            "arrivals": {"kind": "fixed", "rate_per_s": 2},
        }
    )
    ref, _ = read_trace(traces_dir / "sharegpt8k_head.csv")
    assert w.prompt_tokens.tolist() == ref.prompt_tokens.tolist()
    np.testing.assert_allclose(w.arrival_s, 0.5 * np.arange(1, 31))


def test_trace_without_timestamps_needs_arrivals(traces_dir: Path) -> None:
    with pytest.raises(ConfigError, match="without timestamps; add arrivals"):
        _build({"trace": str(traces_dir / "sharegpt8k_head.csv")})


def test_empirical_pair_sampling_keeps_rows_together(traces_dir: Path) -> None:
    trace = str(traces_dir / "azure2023_conv_head.csv")
    w = _build(
        {
            "num_requests": 2000,
            "arrivals": {"kind": "poisson", "rate_per_s": 1},
            "prompt_tokens": {"kind": "empirical", "trace": trace},
            "output_tokens": {"kind": "empirical", "trace": trace},
        }
    )
    with open(trace, newline="") as fh:
        pairs = {(int(r[1]), int(r[2])) for r in list(csv.reader(fh))[1:]}
    assert set(zip(w.prompt_tokens.tolist(), w.output_tokens.tolist(), strict=True)) <= pairs
    assert "rows paired" in w.source


def test_replay_from_a_text_file_and_from_a_trace(tmp_path: Path, traces_dir: Path) -> None:
    (tmp_path / "times.txt").write_text("3.0\n1.0\n\n2.5\n")
    w = _build(
        {
            "arrivals": {"kind": "replay", "timestamps_file": "times.txt"},
            "prompt_tokens": 8,
            "output_tokens": 2,
        },
        base_dir=tmp_path,
    )
    assert w.arrival_s.tolist() == [0.0, 1.5, 2.0]
    w2 = _build(
        {
            "num_requests": 10,
            "arrivals": {
                "kind": "replay",
                "timestamps_file": str(traces_dir / "mooncake_conversation_head.jsonl"),
            },
            "prompt_tokens": 8,
            "output_tokens": 2,
        }
    )
    ref, _ = read_trace(traces_dir / "mooncake_conversation_head.jsonl")
    np.testing.assert_allclose(w2.arrival_s, ref.arrival_s[:10])


def test_empty_result_is_an_error() -> None:
    with pytest.raises(ConfigError, match="has no requests"):
        _build(
            {
                **SYNTHETIC,
                "num_requests": None,
                "duration_s": 0.5,
                "arrivals": {"kind": "fixed", "rate_per_s": 1},
            }
        )


def test_empirical_lengths_from_the_builtin_trace_reproduce_its_mean() -> None:
    path = resolve_trace("builtin:azure-conv-sample")
    with path.open(newline="") as fh:
        source = np.array([int(r[1]) for r in list(csv.reader(fh))[1:]], dtype=float)
    n = 100_000
    w = _build(
        {
            "num_requests": n,
            "arrivals": {"kind": "poisson", "rate_per_s": 10},
            "prompt_tokens": {"kind": "empirical", "trace": "builtin:azure-conv-sample"},
            "output_tokens": 1,
        }
    )
    assert w.mean_prompt_tokens == pytest.approx(source.mean(), abs=5 * source.std() / np.sqrt(n))


def test_prefix_block_tokens_sets_the_block_size_of_trace_ids(traces_dir: Path) -> None:
    path = str(traces_dir / "twinfer_sample.jsonl")
    default = build_workload(WorkloadConfig.from_dict({"trace": path}), np.random.default_rng(0))
    assert default.prefix_block_tokens == 512  # Mooncake's, the reader's default
    w = build_workload(
        WorkloadConfig.from_dict({"trace": path, "prefix_block_tokens": 16}), np.random.default_rng(0)
    )
    assert w.prefix_block_tokens == 16
    assert [list(b) for b in w.prefix_block_ids[:2]] == [[0, 1], [0, 1, 2]]
