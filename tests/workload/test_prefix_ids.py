"""Whether a workload's requests carry prefix block ids: known from the config, or once a JSONL trace is read."""

from __future__ import annotations

import numpy as np

from twinfer.workload import WorkloadConfig, build_workload
from twinfer.workload.prefix_ids import missing_prefix_ids

SYNTHETIC = {"num_requests": 5, "arrivals": {"kind": "poisson", "rate_per_s": 1.0},
             "prompt_tokens": {"kind": "fixed", "value": 100}, "output_tokens": {"kind": "fixed", "value": 10}}


def test_a_synthetic_workload_has_none_even_with_lengths_drawn_from_a_mooncake_trace(traces_dir):
    assert "synthetic" in missing_prefix_ids(WorkloadConfig.from_dict(SYNTHETIC))
    mooncake = str(traces_dir / "mooncake_conversation_head.jsonl")
    empirical = {**SYNTHETIC, "prompt_tokens": {"kind": "empirical", "trace": mooncake}}
    assert "synthetic" in missing_prefix_ids(WorkloadConfig.from_dict(empirical))


def test_csv_traces_have_none_and_are_named_with_their_format(traces_dir):
    for name, fmt in (("azure2023_conv_head.csv", "azure2023"), ("sharegpt8k_head.csv", "sharegpt"),
                      ("twinfer_sample.csv", "twinfer-csv")):
        why = missing_prefix_ids(WorkloadConfig.from_dict({"trace": str(traces_dir / name)}))
        assert why is not None and fmt in why and name in why


def test_sessions_and_jsonl_traces_with_ids_pass(traces_dir, rng):
    for name in ("mooncake_conversation_head.jsonl", "twinfer_sample.jsonl"):
        cfg = WorkloadConfig.from_dict({"trace": str(traces_dir / name)})
        assert missing_prefix_ids(cfg) is None
        assert missing_prefix_ids(cfg, build_workload(cfg, rng)) is None
    sessions = WorkloadConfig.from_dict({"duration_s": 60, "arrivals": {"kind": "poisson", "rate_per_s": 0.5},
                                         "sessions": {"num_sessions": 3, "turns": {"kind": "fixed", "value": 2},
                                                      "user_tokens": {"kind": "fixed", "value": 50},
                                                      "reply_tokens": {"kind": "fixed", "value": 20}}})
    assert missing_prefix_ids(sessions) is None
    assert build_workload(sessions, rng).prefix_block_ids is not None  # what the None above relies on


def test_a_jsonl_trace_without_ids_is_known_only_once_read(tmp_path, rng):
    path = tmp_path / "plain.jsonl"
    path.write_text("".join(f'{{"arrival_s": {t}, "prompt_tokens": 64, "output_tokens": 4}}\n' for t in range(3)))
    cfg = WorkloadConfig.from_dict({"trace": str(path)})
    assert missing_prefix_ids(cfg) is None  # the first lines cannot say: a later row might hold ids
    workload = build_workload(cfg, rng)
    assert workload.prefix_block_ids is None and np.array_equal(workload.prompt_tokens, [64, 64, 64])
    assert missing_prefix_ids(cfg, workload) == f"no row of the twinfer-jsonl trace {str(path)!r} has prefix_block_ids"


def test_a_missing_trace_is_left_to_the_reader(tmp_path):
    assert missing_prefix_ids(WorkloadConfig.from_dict({"trace": str(tmp_path / "gone.jsonl")})) is None


def test_the_block_size_known_before_building_is_the_built_one(traces_dir, rng):
    """Mooncake's 512 (its hash_ids cover 512 tokens each), a trace's own prefix_block_tokens, sessions' block_tokens."""
    from twinfer.workload.prefix_ids import prefix_block_tokens

    mooncake = {"trace": str(traces_dir / "mooncake_conversation_head.jsonl")}
    sessions = {"duration_s": 60, "arrivals": {"kind": "poisson", "rate_per_s": 0.5},
                "sessions": {"num_sessions": 3, "turns": {"kind": "fixed", "value": 2}, "block_tokens": 32,
                             "user_tokens": {"kind": "fixed", "value": 50}, "reply_tokens": {"kind": "fixed", "value": 20}}}
    for d, expected in ((mooncake, 512), ({**mooncake, "prefix_block_tokens": 256}, 256), (sessions, 32)):
        cfg = WorkloadConfig.from_dict(d)
        assert prefix_block_tokens(cfg) == expected == build_workload(cfg, rng).prefix_block_tokens
    assert prefix_block_tokens(WorkloadConfig.from_dict(SYNTHETIC)) is None
