"""Session generator: block ids worked out by hand, reuse equal to the hand count, config and build."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.kvcache.chain import chain_keys
from twinfer.kvcache.replay import replay_prefixes
from twinfer.workload.build import build_workload
from twinfer.workload.config import WorkloadConfig
from twinfer.workload.sessions import SessionShape, session_workload


def _fixed(values: list[int]):
    return lambda n: np.asarray(values[:n], dtype=np.int64)


def test_one_session_by_hand(rng: np.random.Generator) -> None:
    # Blocks of 4 tokens; a 6-token system prompt (1 full block, id 0, + 2 tokens).
    # Turn 1: +3 user -> 9 tokens; blocks [0, 1] full, a partial block gets fresh id 2.
    #   reply 4 -> 13 tokens of context: the partial block fills (id 3), 1 token left.
    # Turn 2: +2 user -> 15 tokens: [0, 1, 3] + fresh 4. reply 1 -> block fills (id 5).
    # Turn 3: +5 user -> 21 tokens: [0, 1, 3, 5, 6] + fresh 7.
    shape = SessionShape(system_prompts=1, system_prompt_tokens=6, think_time_s=0.0, block_tokens=4)
    w = session_workload(
        np.array([0.0]), shape, rng, _fixed([3]), _fixed([3, 2, 5]), _fixed([4, 1, 2])
    )
    assert list(w.prompt_tokens) == [9, 15, 21]
    assert list(w.output_tokens) == [4, 1, 2]
    assert [list(b) for b in w.prefix_block_ids] == [[0, 1, 2], [0, 1, 3, 4], [0, 1, 3, 5, 6, 7]]
    # Reuse: turn 2 hits [0, 1] = 8 tokens, turn 3 hits [0, 1, 3] = 12 tokens: 20 / 45.
    stats = replay_prefixes(chain_keys(w.prefix_block_ids), w.prompt_tokens, None, 4)
    assert stats.hit_tokens == 20 and stats.prompt_tokens == 45


def test_sessions_share_the_system_prompt_blocks_only(rng: np.random.Generator) -> None:
    shape = SessionShape(system_prompts=1, system_prompt_tokens=10, think_time_s=0.0, block_tokens=4)
    w = session_workload(
        np.array([0.0, 1.0]), shape, rng, _fixed([1, 1]), _fixed([5, 5]), _fixed([1, 1])
    )
    a, b = (list(x) for x in w.prefix_block_ids)
    assert a[:2] == b[:2] == [0, 1]  # two full system-prompt blocks
    assert set(a[2:]).isdisjoint(b[2:])  # the rest (with user text) is each session's own


def test_generated_workload_properties(rng: np.random.Generator) -> None:
    cfg = WorkloadConfig.from_dict(
        {
            "arrivals": {"kind": "poisson", "rate_per_s": 0.5},
            "sessions": {
                "num_sessions": 200,
                "system_prompts": 3,
                "system_prompt_tokens": 700,
                "turns": {"kind": "uniform", "low": 1, "high": 6},
                "user_tokens": {"kind": "lognormal", "median": 100, "sigma": 1.0},
                "reply_tokens": {"kind": "lognormal", "median": 200, "sigma": 0.5},
                "think_time_s": 40,
                "block_tokens": 16,
            },
        }
    )
    w = build_workload(cfg, np.random.default_rng(7))
    again = build_workload(cfg, np.random.default_rng(7))
    assert np.array_equal(w.arrival_s, again.arrival_s)
    assert all(np.array_equal(x, y) for x, y in zip(w.prefix_block_ids, again.prefix_block_ids, strict=True))
    assert 200 <= len(w) <= 6 * 200 and np.all(np.diff(w.arrival_s) >= 0)
    assert w.prefix_block_tokens == 16
    assert all(len(ids) == math.ceil(p / 16) for ids, p in zip(w.prefix_block_ids, w.prompt_tokens, strict=True))
    # Every request reuses at least the full system-prompt blocks after the first of its prompt.
    stats = replay_prefixes(chain_keys(w.prefix_block_ids), w.prompt_tokens, None, 16)
    assert stats.hit_tokens >= (len(w) - 3) * (700 // 16) * 16


def test_session_config_errors() -> None:
    base = {"turns": 2, "user_tokens": 10, "reply_tokens": 10}
    with pytest.raises(ConfigError, match="add arrivals"):
        WorkloadConfig.from_dict({"sessions": {**base, "num_sessions": 3}})
    with pytest.raises(ConfigError, match="drop prompt_tokens"):
        WorkloadConfig.from_dict(
            {"arrivals": {"kind": "fixed", "rate_per_s": 1}, "prompt_tokens": 5,
             "sessions": {**base, "num_sessions": 3}}
        )
    with pytest.raises(ConfigError, match="num_sessions or workload.duration_s"):
        WorkloadConfig.from_dict({"arrivals": {"kind": "fixed", "rate_per_s": 1}, "sessions": base})
    with pytest.raises(ConfigError, match="missing reply_tokens"):
        WorkloadConfig.from_dict(
            {"arrivals": {"kind": "fixed", "rate_per_s": 1}, "sessions": {"turns": 1, "user_tokens": 1}}
        )
    with pytest.raises(ConfigError, match="workload.sessions: unknown key 'turn'"):
        WorkloadConfig.from_dict({"arrivals": {"kind": "fixed", "rate_per_s": 1}, "sessions": {"turn": 1}})
