"""Trace readers: Azure LLM inference CSV (2023, 2024), Mooncake JSONL, ShareGPT lengths, twinfer's own.

Formats (detected from the header / first line when ``format`` is None):

``azure2023`` / ``azure2024``
    CSV ``TIMESTAMP,ContextTokens,GeneratedTokens`` (Azure/AzurePublicDataset,
    CC-BY-4.0). 2023 (Splitwise, ISCA'24) timestamps look like
    ``2023-11-16 18:15:46.6805900``; the 2024 week-long files (DynamoLLM,
    HPCA'25) have the same columns with offset-aware timestamps such as
    ``2024-05-12 00:00:01.234567+00:00`` whose fractional part may be absent or
    of varying length. One parser reads both.
``mooncake``
    JSONL ``{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}``
    (kvcache-ai/Mooncake, Apache-2.0); each hash id is a 512-token prompt block.
``sharegpt``
    CSV ``num_prefill_tokens,num_decode_tokens,...`` (microsoft/sarathi-serve
    processed traces): lengths only, no timestamps; every row gets arrival 0
    and the report says ``has_timestamps=False`` so the caller supplies arrivals.
``twinfer-csv`` / ``twinfer-jsonl``
    twinfer's documented format: columns / keys ``arrival_s`` (seconds, float),
    ``prompt_tokens`` and ``output_tokens`` (integers >= 1); the JSONL form may
    add ``prefix_block_ids`` (list of ints). Extra columns are ignored.

Arrival times are shifted so the first request arrives at 0; rows out of time
order are stably sorted (and the report says so).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from twinfer.errors import ConfigError, DataError
from twinfer.workload.columns import MAX_TIME_S, MAX_TOKENS, BadRows, ReadReport
from twinfer.workload.csvread import ColumnSpec, read_csv_columns, read_header
from twinfer.workload.types import MOONCAKE_BLOCK_TOKENS, Workload

FORMATS = ("azure2023", "azure2024", "mooncake", "sharegpt", "twinfer-csv", "twinfer-jsonl")
#: Alternative spellings accepted for ``format``.
FORMAT_ALIASES = {
    "azure": "azure2023",
    "azure-2023": "azure2023",
    "azure-2024": "azure2024",
    "splitwise": "azure2023",
    "twinfer": "twinfer-csv",
    "csv": "twinfer-csv",
    "jsonl": "twinfer-jsonl",
}
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SHAREGPT_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
TWINFER_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


def _first_lines(path: Path, count: int = 2) -> list[str]:
    lines: list[str] = []
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            if line.strip():
                lines.append(line.strip())
            if len(lines) >= count:
                break
    return lines


def detect_format(path: Path) -> str:
    """The trace format of ``path`` judged from its first lines (see module doc)."""
    lines = _first_lines(path)
    if not lines:
        raise DataError(f"{path}: the trace file is empty")
    first = lines[0]
    if first.startswith("{"):
        try:
            keys = set(json.loads(first))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name} line 1: not valid JSON ({exc.msg})") from exc
        if set(MOONCAKE_KEYS) <= keys:
            return "mooncake"
        if set(TWINFER_COLUMNS) <= keys:
            return "twinfer-jsonl"
        raise DataError(
            f"{path.name} line 1: JSON keys {sorted(keys)} match no known trace format; "
            f"Mooncake needs {list(MOONCAKE_KEYS)}, twinfer JSONL needs {list(TWINFER_COLUMNS)}"
        )
    header = [c.strip() for c in first.split(",")]
    if tuple(header[:3]) == AZURE_COLUMNS:
        offset_aware = len(lines) > 1 and _has_utc_offset(lines[1].split(",")[0])
        return "azure2024" if offset_aware else "azure2023"
    if tuple(header[:2]) == SHAREGPT_COLUMNS:
        return "sharegpt"
    if set(TWINFER_COLUMNS) <= set(header):
        return "twinfer-csv"
    raise DataError(
        f"{path.name} line 1: header {first[:80]!r} matches no known trace format; expected "
        f"{','.join(AZURE_COLUMNS)} (Azure), {','.join(SHAREGPT_COLUMNS)},... (ShareGPT), "
        f"{','.join(TWINFER_COLUMNS)} (twinfer CSV), or JSON lines; or pass format= one of {FORMATS}"
    )


def _has_utc_offset(stamp: str) -> bool:
    time_part = stamp.strip()[10:]
    return time_part.endswith("Z") or "+" in time_part or time_part.count("-") > 0


def normalise_format(name: str) -> str:
    """Canonical format name for ``name`` (aliases accepted)."""
    key = name.strip().lower()
    key = FORMAT_ALIASES.get(key, key)
    if key not in FORMATS:
        raise ConfigError(f"unknown trace format {name!r}; use one of {', '.join(FORMATS)}")
    return key


def _finish(
    path: Path,
    fmt: str,
    arrival: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    bad: BadRows,
    block_ids: list[np.ndarray] | None = None,
    has_timestamps: bool = True,
) -> tuple[Workload, ReadReport]:
    keep = bad.keep_mask(len(arrival))
    arrival, prompt, output = arrival[keep], prompt[keep], output[keep]
    if block_ids is not None:
        block_ids = [b for b, k in zip(block_ids, keep, strict=True) if k]
    reordered = bool(len(arrival) > 1 and np.any(np.diff(arrival) < 0))
    if reordered:
        order = np.argsort(arrival, kind="stable")
        arrival, prompt, output = arrival[order], prompt[order], output[order]
        if block_ids is not None:
            block_ids = [block_ids[int(i)] for i in order]
    if len(arrival):
        arrival = arrival - arrival[0]
    if not len(arrival):
        raise DataError(f"{path}: no usable rows (read {len(keep)}, all malformed)")
    report = ReadReport(
        path=str(path),
        format=fmt,
        rows_read=int(len(arrival)),
        rows_skipped=bad.count,
        skipped=bad.listed(),
        has_timestamps=has_timestamps,
        reordered=reordered,
    )
    notes = (report.describe(),) if report.rows_skipped or reordered else ()
    workload = Workload(
        arrival_s=arrival,
        prompt_tokens=prompt,
        output_tokens=output,
        name=path.stem,
        source=str(path),
        prefix_block_ids=tuple(block_ids) if block_ids is not None else None,
        prefix_block_tokens=MOONCAKE_BLOCK_TOKENS if block_ids is not None else None,
        skipped_rows=report.rows_skipped,
        notes=notes,
    )
    return workload, report


def _read_azure(path: Path, fmt: str, skip: bool, engine: str) -> tuple[Workload, ReadReport]:
    bad = BadRows(path, skip)
    specs = [
        ColumnSpec(0, "TIMESTAMP", "timestamp"),
        ColumnSpec(1, "ContextTokens", "int"),
        ColumnSpec(2, "GeneratedTokens", "int"),
    ]
    stamps, prompt, output = read_csv_columns(path, specs, bad, engine)
    return _finish(path, fmt, stamps, prompt, output, bad)


def _read_sharegpt(path: Path, skip: bool, engine: str) -> tuple[Workload, ReadReport]:
    bad = BadRows(path, skip)
    specs = [ColumnSpec(0, "num_prefill_tokens", "int"), ColumnSpec(1, "num_decode_tokens", "int")]
    prompt, output = read_csv_columns(path, specs, bad, engine)
    zeros = np.zeros(len(prompt))
    return _finish(path, "sharegpt", zeros, prompt, output, bad, has_timestamps=False)


def _read_twinfer_csv(path: Path, skip: bool, engine: str) -> tuple[Workload, ReadReport]:
    header = read_header(path)
    missing = [c for c in TWINFER_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path.name} line 1: missing columns {missing}; need {list(TWINFER_COLUMNS)}"
        )
    kinds = {"arrival_s": "float", "prompt_tokens": "int", "output_tokens": "int"}
    specs = [ColumnSpec(header.index(c), c, kinds[c]) for c in TWINFER_COLUMNS]
    bad = BadRows(path, skip)
    arrival, prompt, output = read_csv_columns(path, specs, bad, engine)
    return _finish(path, "twinfer-csv", arrival, prompt, output, bad)


def _json_int(record: dict, key: str, min_value: int) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} {value!r} is not an integer")
    if value < min_value:
        raise ValueError(f"{key} {value} is below the minimum {min_value}")
    if value > MAX_TOKENS:
        raise ValueError(f"{key} {value} is above the limit {MAX_TOKENS:,}")
    return value


def _json_time(record: dict, key: str) -> float:
    value = record[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not np.isfinite(value)
        or value < 0
        or value > MAX_TIME_S
    ):
        raise ValueError(f"{key} {value!r} is not a finite number from 0 to {MAX_TIME_S:g}")
    return float(value)


def _block_ids(ids: object, key: str) -> np.ndarray:
    """A JSON list of integers as int64 (numpy infers the dtype: one C pass, no Python loop)."""
    if not isinstance(ids, list):
        raise ValueError(f"{key} must be a list of integers")
    if not ids:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.asarray(ids)
    except (ValueError, OverflowError):
        arr = np.asarray([0.5])  # ragged or huge: report as not integers below
    if arr.ndim != 1 or arr.dtype.kind not in "iu":  # bools are kind "b", floats "f", mixed "O"/"U"
        raise ValueError(f"{key} must be a list of integers")
    return arr.astype(np.int64, copy=False)


def _read_jsonl(path: Path, fmt: str, skip: bool) -> tuple[Workload, ReadReport]:
    mooncake = fmt == "mooncake"
    keys = MOONCAKE_KEYS if mooncake else TWINFER_COLUMNS
    ids_key = "hash_ids" if mooncake else "prefix_block_ids"
    bad = BadRows(path, skip)
    arrival: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    block_ids: list[np.ndarray] = []
    any_ids = False
    with path.open(encoding="utf-8-sig") as fh:
        for line_no, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            row = len(arrival)
            arrival.append(0.0)
            prompt.append(1)
            output.append(1)
            block_ids.append(np.zeros(0, dtype=np.int64))
            try:
                record = json.loads(text)
                if not isinstance(record, dict):
                    raise ValueError("line is not a JSON object")
                missing = [k for k in keys if k not in record]
                if missing:
                    raise ValueError(f"missing keys {missing}")
                arrival[row] = _json_time(record, keys[0]) / (1e3 if mooncake else 1.0)
                prompt[row] = _json_int(record, keys[1], 1)
                output[row] = _json_int(record, keys[2], 1)
                ids = record.get(ids_key)
                if ids is not None:
                    block_ids[row] = _block_ids(ids, ids_key)
                    any_ids = True
            except json.JSONDecodeError as exc:
                bad.add(row, line_no, f"not valid JSON ({exc.msg})")
            except ValueError as exc:
                bad.add(row, line_no, str(exc))
    return _finish(
        path,
        fmt,
        np.asarray(arrival, dtype=np.float64),
        np.asarray(prompt, dtype=np.int64),
        np.asarray(output, dtype=np.int64),
        bad,
        block_ids if any_ids else None,
    )


def read_trace(
    path: str | Path, format: str | None = None, skip_bad_rows: bool = False, engine: str = "auto"
) -> tuple[Workload, ReadReport]:
    """Read a request trace into a :class:`Workload` plus a :class:`ReadReport`.

    ``format`` is detected from the first lines when None (see the module doc
    for the formats). A malformed row raises :class:`DataError` naming the file,
    line and problem; with ``skip_bad_rows`` such rows are dropped and counted.
    ``engine`` picks the CSV reader (see :mod:`twinfer.workload.csvread`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"trace file {str(path)!r} does not exist (or is not a file)")
    fmt = normalise_format(format) if format else detect_format(path)
    if fmt in ("azure2023", "azure2024"):
        return _read_azure(path, fmt, skip_bad_rows, engine)
    if fmt == "sharegpt":
        return _read_sharegpt(path, skip_bad_rows, engine)
    if fmt == "twinfer-csv":
        return _read_twinfer_csv(path, skip_bad_rows, engine)
    return _read_jsonl(path, fmt, skip_bad_rows)
