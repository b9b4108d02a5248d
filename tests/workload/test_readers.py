"""Trace readers on the shipped samples, checked against independent parses of the same files."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from twinfer.errors import ConfigError, DataError
from twinfer.workload import detect_format, read_trace


def _azure_rows(path: Path) -> list[tuple[dt.datetime, int, int]]:
    """Reference parse with the csv module and datetime (fraction cut to microseconds)."""
    out = []
    with path.open(newline="") as fh:
        for stamp, ctx, gen in list(csv.reader(fh))[1:]:
            head, _, frac = stamp.partition(".")
            frac = frac.split("+")[0]
            base = dt.datetime.fromisoformat(head.split("+")[0])
            out.append(
                (base + dt.timedelta(microseconds=int((frac + "000000")[:6])), int(ctx), int(gen))
            )
    return out


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("azure2023_conv_head.csv", "azure2023"),
        ("azure2023_code_head.csv", "azure2023"),
        ("azure2024_format_sample.csv", "azure2024"),
        ("mooncake_conversation_head.jsonl", "mooncake"),
        ("sharegpt8k_head.csv", "sharegpt"),
        ("twinfer_sample.csv", "twinfer-csv"),
        ("twinfer_sample.jsonl", "twinfer-jsonl"),
    ],
)
def test_formats_are_detected_from_the_first_lines(traces_dir: Path, name: str, fmt: str) -> None:
    assert detect_format(traces_dir / name) == fmt
    _, report = read_trace(traces_dir / name)
    assert report.format == fmt and report.rows_skipped == 0


@pytest.mark.parametrize(
    "name", ["azure2023_conv_head.csv", "azure2023_code_head.csv", "azure2024_format_sample.csv"]
)
@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_azure_reader_matches_a_csv_module_parse(traces_dir: Path, name: str, engine: str) -> None:
    rows = _azure_rows(traces_dir / name)
    workload, _ = read_trace(traces_dir / name, engine=engine)
    assert len(workload) == len(rows) == 30
    expected_s = [(t - rows[0][0]).total_seconds() for t, _, _ in rows]
    np.testing.assert_allclose(workload.arrival_s, expected_s, atol=1e-6)
    assert workload.prompt_tokens.tolist() == [r[1] for r in rows]
    assert workload.output_tokens.tolist() == [r[2] for r in rows]


def test_azure_2024_sample_keeps_the_2023_times_and_lengths(traces_dir: Path) -> None:
    old, _ = read_trace(traces_dir / "azure2023_conv_head.csv")
    new, _ = read_trace(traces_dir / "azure2024_format_sample.csv")
    np.testing.assert_allclose(new.arrival_s, old.arrival_s, atol=1e-6)  # 2023 has 7 digits, 2024 6
    assert new.prompt_tokens.tolist() == old.prompt_tokens.tolist()


@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_utc_offsets_are_applied(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "tz.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-12 02:00:00+02:00,10,1\n"  # 00:00 UTC
        "2024-05-12 00:00:30Z,10,1\n"
        "2024-05-11 19:01:00.5-05:00,10,1\n"  # 00:01:00.5 UTC
    )
    workload, report = read_trace(path, engine=engine)
    assert report.format == "azure2024"
    np.testing.assert_allclose(workload.arrival_s, [0.0, 30.0, 60.5])


def test_mooncake_reader_converts_ms_and_keeps_block_ids(traces_dir: Path) -> None:
    path = traces_dir / "mooncake_conversation_head.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    workload, _ = read_trace(path)
    t0 = records[0]["timestamp"]
    np.testing.assert_allclose(workload.arrival_s, [(r["timestamp"] - t0) / 1000 for r in records])
    assert workload.prompt_tokens.tolist() == [r["input_length"] for r in records]
    assert workload.output_tokens.tolist() == [r["output_length"] for r in records]
    assert workload.prefix_block_ids is not None and workload.prefix_block_tokens == 512
    assert [b.tolist() for b in workload.prefix_block_ids] == [r["hash_ids"] for r in records]


def test_sharegpt_has_lengths_but_no_timestamps(traces_dir: Path) -> None:
    workload, report = read_trace(traces_dir / "sharegpt8k_head.csv")
    first = (traces_dir / "sharegpt8k_head.csv").read_text().splitlines()[1].split(",")
    assert not report.has_timestamps and np.all(workload.arrival_s == 0)
    assert (workload.prompt_tokens[0], workload.output_tokens[0]) == (int(first[0]), int(first[1]))


@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_twinfer_csv_ignores_extra_columns(traces_dir: Path, engine: str) -> None:
    workload, _ = read_trace(traces_dir / "twinfer_sample.csv", engine=engine)
    assert workload.arrival_s.tolist() == [0.0, 0.25, 0.25, 1.5, 3.0]
    assert workload.prompt_tokens.tolist() == [512, 1024, 100, 2048, 7]
    assert workload.output_tokens.tolist() == [128, 64, 1, 256, 9]


def test_twinfer_jsonl_with_partial_prefix_ids(traces_dir: Path) -> None:
    workload, _ = read_trace(traces_dir / "twinfer_sample.jsonl")
    assert workload.prefix_block_ids is not None
    assert [b.tolist() for b in workload.prefix_block_ids] == [[0, 1], [0, 1, 2], []]


def test_unsorted_rows_are_sorted_stably_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n5,1,1\n2,2,2\n5,3,3\n3,4,4\n")
    workload, report = read_trace(path)
    assert report.reordered
    assert workload.arrival_s.tolist() == [0.0, 1.0, 3.0, 3.0]
    assert workload.prompt_tokens.tolist() == [2, 4, 1, 3]


@pytest.mark.parametrize(
    ("name", "line", "text", "message"),
    [
        (
            "azure2023_conv_head.csv",
            17,
            "2023-11-16 18:16:30.0000000,abc,12",
            "ContextTokens 'abc' is not an integer",
        ),
        ("azure2023_conv_head.csv", 5, "2023-11-16 18:16:30.0000000,12", "expected 3 fields"),
        (
            "azure2023_conv_head.csv",
            9,
            "yesterday,12,3",
            "TIMESTAMP 'yesterday' is not a date-time",
        ),
        (
            "azure2023_conv_head.csv",
            30,
            "2023-11-16 18:16:30.0000000,12,0",
            "GeneratedTokens 0 is below the minimum 1",
        ),
        (
            "mooncake_conversation_head.jsonl",
            4,
            '{"timestamp": 1, "input_length": 5',
            "not valid JSON",
        ),
        (
            "mooncake_conversation_head.jsonl",
            6,
            '{"timestamp": 1, "input_length": 5}',
            "missing keys ['output_length']",
        ),
        (
            "mooncake_conversation_head.jsonl",
            7,
            '{"timestamp": 1, "input_length": 5.5, "output_length": 2}',
            "input_length 5.5 is not an integer",
        ),
        (
            "mooncake_conversation_head.jsonl",
            9,
            '{"timestamp": 1, "input_length": 5, "output_length": 2, "hash_ids": [1, 2.5]}',
            "hash_ids must be a list of integers",
        ),
        ("sharegpt8k_head.csv", 3, "12,-4,8,1.0", "num_decode_tokens -4 is below the minimum 1"),
        ("twinfer_sample.csv", 4, "x,1,1,", "arrival_s 'x' is not a number"),
    ],
)
@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_malformed_rows_name_file_line_and_problem(
    traces_dir: Path,
    corrupt: Callable[[Path, int, str], Path],
    name: str,
    line: int,
    text: str,
    message: str,
    engine: str,
) -> None:
    path = corrupt(traces_dir / name, line, text)
    with pytest.raises(DataError) as info:
        read_trace(path, engine=engine)
    assert f"{name} line {line}: {message}" in str(info.value)
    workload, report = read_trace(path, skip_bad_rows=True, engine=engine)
    total = len(read_trace(traces_dir / name)[0])
    assert report.rows_skipped == 1 and len(workload) == total - 1 == report.rows_read
    assert len(report.skipped) == 1 and report.skipped[0].startswith(f"line {line}: {message}")
    assert workload.skipped_rows == 1 and "skipped 1 malformed rows" in workload.notes[0]


@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_skipping_counts_every_bad_row(traces_dir: Path, tmp_path: Path, engine: str) -> None:
    lines = (traces_dir / "azure2023_conv_head.csv").read_text().splitlines()
    for i in (3, 10, 20):
        lines[i - 1] = lines[i - 1].replace(",", ";")
    path = tmp_path / "three_bad.csv"
    path.write_text("\n".join(lines))
    workload, report = read_trace(path, skip_bad_rows=True, engine=engine)
    assert report.rows_skipped == 3 and len(workload) == 27
    assert [s.split(":")[0] for s in report.skipped] == ["line 3", "line 10", "line 20"]


@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_blank_lines_are_ignored_and_extra_fields_are_errors(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n\n0,5,6\n\n1,7,8\n2,9,10,11\n3,1,1\n\n")
    with pytest.raises(DataError, match="gaps.csv line 6: expected 3 fields"):
        read_trace(path, engine=engine)
    workload, report = read_trace(path, skip_bad_rows=True, engine=engine)
    assert workload.prompt_tokens.tolist() == [5, 7, 1] and report.rows_skipped == 1
    # a bad value after a dropped line keeps its true line number
    path.write_text("arrival_s,prompt_tokens,output_tokens\n0,5,6\n1,2\n\n2,x,1\n")
    _, report = read_trace(path, skip_bad_rows=True, engine=engine)
    assert report.skipped == (
        "line 3: expected 3 fields (arrival_s,prompt_tokens,output_tokens), got 2",
        "line 5: prompt_tokens 'x' is not an integer",
    )


def test_unknown_header_and_missing_file_and_bad_format(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="matches no known trace format"):
        read_trace(path)
    with pytest.raises(DataError, match="does not exist"):
        read_trace(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="unknown trace format"):
        read_trace(path, format="parquet")


# --- the full public traces in ../shared/data (skipped when absent) -------------------------


def _csv_columns(path: Path, a: int, b: int) -> tuple[list[int], list[int]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [int(r[a]) for r in rows], [int(r[b]) for r in rows]


@pytest.mark.parametrize(
    ("name", "count", "mean_in", "mean_out", "rate"),
    # Statistics from /work/shared/data/README.md.
    [("azure2023_conv.csv", 19_366, 1155, 211, 5.5), ("azure2023_code.csv", 8_819, 2048, 28, 2.6)],
)
@pytest.mark.parametrize("engine", ["python", "arrow"])
def test_full_azure_traces_match_the_published_statistics(
    shared_dir: Path,
    name: str,
    count: int,
    mean_in: float,
    mean_out: float,
    rate: float,
    engine: str,
) -> None:
    path = shared_dir / "traces" / name
    prompt, output = _csv_columns(path, 1, 2)
    rows = _azure_rows(path)
    span_s = (rows[-1][0] - rows[0][0]).total_seconds()
    workload, report = read_trace(path, engine=engine)
    assert len(workload) == len(prompt) == count and report.format == "azure2023"
    assert (
        workload.mean_prompt_tokens
        == pytest.approx(sum(prompt) / count)
        == pytest.approx(mean_in, abs=0.5)
    )
    assert (
        workload.mean_output_tokens
        == pytest.approx(sum(output) / count)
        == pytest.approx(mean_out, abs=0.5)
    )
    assert workload.duration_s == pytest.approx(span_s, abs=1e-5)
    assert workload.mean_rate_per_s == pytest.approx(rate, abs=0.05)


def test_full_mooncake_and_sharegpt_traces(shared_dir: Path) -> None:
    path = shared_dir / "traces" / "mooncake_conversation.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    workload, _ = read_trace(path)
    assert len(workload) == len(records) == 12_031
    assert workload.mean_prompt_tokens == pytest.approx(
        sum(r["input_length"] for r in records) / len(records)
    )
    assert workload.mean_prompt_tokens == pytest.approx(12_035, abs=0.5)  # data README
    assert workload.mean_output_tokens == pytest.approx(343, abs=0.5)
    span_s = (records[-1]["timestamp"] - records[0]["timestamp"]) / 1000
    assert (
        workload.mean_rate_per_s
        == pytest.approx((len(records) - 1) / span_s)
        == pytest.approx(3.4, abs=0.05)
    )
    prompt, output = _csv_columns(shared_dir / "traces" / "sharegpt8k_lengths_llama2.csv", 0, 1)
    share, report = read_trace(shared_dir / "traces" / "sharegpt8k_lengths_llama2.csv")
    assert len(share) == len(prompt) == 30_731 and not report.has_timestamps
    assert share.mean_prompt_tokens == pytest.approx(2340, abs=0.5)
    assert (
        share.mean_output_tokens
        == pytest.approx(sum(output) / len(output))
        == pytest.approx(439, abs=0.5)
    )


def test_builtin_sample_is_a_verbatim_slice_of_the_full_trace(shared_dir: Path) -> None:
    from twinfer.workload import resolve_trace

    full = (shared_dir / "traces" / "azure2023_conv.csv").read_bytes().splitlines()
    sample = resolve_trace("builtin:azure-conv-sample").read_bytes().splitlines()
    assert sample[0] == full[0] and sample[1:] == full[5001:7001]  # data rows 5,001-7,000
