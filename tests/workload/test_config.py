"""WorkloadConfig parsing: good shapes parse, each mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinfer.errors import ConfigError
from twinfer.workload import WorkloadConfig


def test_trace_config_with_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    cfg = WorkloadConfig.from_dict(
        {"trace": "traces/a.csv", "rate_scale": 2, "max_requests": 10, "skip_bad_rows": True},
        base_dir=tmp_path,
    )
    assert cfg.trace == str(tmp_path / "traces" / "a.csv")
    assert (cfg.rate_scale, cfg.max_requests, cfg.skip_bad_rows) == (2.0, 10, True)
    assert WorkloadConfig.from_dict(
        {"trace": "builtin:azure-conv-sample"}, base_dir=tmp_path
    ).trace == ("builtin:azure-conv-sample")


def test_synthetic_config_parses_every_kind() -> None:
    cfg = WorkloadConfig.from_dict(
        {
            "duration_s": 60,
            "arrivals": {"kind": "gamma", "rate_per_s": 5, "cv": 2},
            "prompt_tokens": {"kind": "lognormal", "median": 800, "sigma": 0.7},
            "output_tokens": 128,  # shorthand for {kind: fixed, value: 128}
        }
    )
    assert cfg.arrivals is not None and cfg.arrivals.cv == 2.0
    assert cfg.prompt_tokens is not None and cfg.prompt_tokens.median == 800.0
    assert cfg.output_tokens is not None and (cfg.output_tokens.kind, cfg.output_tokens.value) == (
        "fixed",
        128,
    )
    emp = WorkloadConfig.from_dict(
        {
            "num_requests": 5,
            "arrivals": {"kind": "poisson", "rate_per_s": 1},
            "prompt_tokens": {"kind": "empirical", "trace": "builtin:azure-conv-sample"},
            "output_tokens": {"kind": "uniform", "low": 1, "high": 9},
        }
    )
    assert emp.prompt_tokens is not None and emp.prompt_tokens.column == "prompt_tokens"


SYN = {
    "num_requests": 5,
    "arrivals": {"kind": "poisson", "rate_per_s": 1},
    "prompt_tokens": 5,
    "output_tokens": 5,
}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"num_request": 5}, "s.yaml: workload: unknown key 'num_request'"),
        ({"arrivals": {"kind": "poisson"}}, "workload.arrivals: poisson arrivals need rate_per_s"),
        (
            {"arrivals": {"kind": "poisson", "rate_per_s": -1}},
            "workload.arrivals.rate_per_s: must be > 0",
        ),
        (
            {"arrivals": {"kind": "poisson", "rate_per_s": 1, "cv": 2}},
            "only gamma arrivals take cv",
        ),
        ({"arrivals": {"kind": "replay"}}, "replay arrivals need timestamps_file"),
        (
            {"arrivals": {"kind": "bursty", "rate_per_s": 1}},
            "workload.arrivals.kind: expected one of",
        ),
        (
            {"prompt_tokens": {"kind": "lognormal", "mean": 5}},
            "workload.prompt_tokens: lognormal lengths need sigma",
        ),
        (
            {"prompt_tokens": {"kind": "lognormal", "mean": 5, "median": 5, "sigma": 1}},
            "exactly one of mean or median",
        ),
        ({"prompt_tokens": {"kind": "uniform", "low": 9, "high": 2}}, "low <= high"),
        (
            {"prompt_tokens": {"kind": "fixed", "value": 5, "sigma": 1}},
            "workload.prompt_tokens: unknown key 'sigma'",
        ),
        (
            {"output_tokens": {"kind": "empirical", "trace": "t.csv", "column": "x"}},
            "output_tokens.column",
        ),
        ({"num_requests": 0}, "workload.num_requests: expected an integer >= 1"),
        ({"num_requests": None}, "needs num_requests or duration_s"),
        ({"skip_bad_rows": "yes"}, "skip_bad_rows: expected true or false"),
        ({"trace": "t.csv"}, "a trace already gives lengths"),
        ({"prefix_block_tokens": 16}, "workload.prefix_block_tokens: sets the block size of a trace's prefix block "
                                      "ids; a synthetic workload has no ids: remove it"),
    ],
)
def test_mistakes_name_the_bad_key(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkloadConfig.from_dict({**SYN, **patch}, where="s.yaml: workload")
    assert message in str(info.value)


def test_empty_config_says_what_to_give() -> None:
    with pytest.raises(ConfigError, match="give either trace"):
        WorkloadConfig.from_dict({})
    with pytest.raises(ConfigError, match="expected a mapping"):
        WorkloadConfig.from_dict(["trace"])


def test_sessions_take_their_block_size_from_sessions_block_tokens() -> None:
    sessions = {"duration_s": 60, "arrivals": {"kind": "poisson", "rate_per_s": 0.5}, "prefix_block_tokens": 64,
                "sessions": {"turns": {"kind": "fixed", "value": 2}, "user_tokens": {"kind": "fixed", "value": 50},
                             "reply_tokens": {"kind": "fixed", "value": 20}}}
    with pytest.raises(ConfigError, match=r"workload\.prefix_block_tokens: .*set that instead") as info:
        WorkloadConfig.from_dict(sessions)
    assert "sessions.block_tokens" in str(info.value)
