"""Typed columns from a CSV trace, with the file line of every malformed row.

Two engines give the same arrays and the same errors:

``python``
    the csv module plus one vectorised numpy conversion per column (the
    19,366-row Azure conv trace in ~0.1-0.2 s).
``arrow``
    pyarrow's C++ CSV reader and casts (the same trace in ~0.015 s; 2 M rows in
    ~1-2 s, so the week-long Azure 2024 traces fit). Lines that pyarrow cannot split into the
    header's field count are reported through its invalid-row handler; values
    that fail a cast are re-checked in blocks by the python converters, so the
    messages are identical. pyarrow is imported only here, only when used.

``auto`` picks arrow for files of at least :data:`ARROW_MIN_BYTES`.
Rows whose fields are all empty (blank lines) are ignored by both.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinfer.errors import ConfigError
from twinfer.workload.columns import (
    MAX_TIME_S,
    MAX_TOKENS,
    BadRows,
    checked_rows,
    field_count_reason,
    float_column,
    int_column,
    timestamp_column,
)

#: Files at least this large are read with pyarrow under engine="auto". Measured here on the
#: 19,366-row (0.7 MB) Azure conv trace: csv module ~0.1-0.2 s, pyarrow ~0.015 s plus a one-off
#: ~0.14 s import; below this size (the shipped 75 kB sample) the csv module wins.
ARROW_MIN_BYTES = 256 * 1024
#: Rows converted per block when a cast fails and values are re-checked in Python.
FALLBACK_BLOCK_ROWS = 1 << 20
ENGINES = ("auto", "python", "arrow")


@dataclass(frozen=True)
class ColumnSpec:
    """One column to extract: its position, the name used in messages, and its type."""

    index: int  # 0-based field position
    name: str  # header name shown in error messages
    kind: str  # "timestamp" (ISO-8601 -> epoch seconds), "int" (>= 1), "float" (>= 0, finite)


def _convert(
    spec: ColumnSpec, values: list[str], lines: list[int] | np.ndarray, bad: BadRows
) -> np.ndarray:
    if spec.kind == "timestamp":
        return timestamp_column(values, lines, spec.name, bad)  # type: ignore[arg-type]
    if spec.kind == "int":
        return int_column(values, lines, spec.name, bad)  # type: ignore[arg-type]
    return float_column(values, lines, spec.name, bad)  # type: ignore[arg-type]


def read_header(path: Path) -> list[str]:
    """The stripped header fields of a CSV file."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]


def _python_columns(path: Path, specs: list[ColumnSpec], bad: BadRows) -> list[np.ndarray]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if all(not f.strip() for f in row):
                continue
            rows.append(row)
            lines.append(reader.line_num)
    width = len(header)
    checked_rows(rows, lines, width, bad, lambda _: ",".join(c.strip() for c in header))
    out = []
    for spec in specs:
        values = [r[spec.index].strip() if spec.index < len(r) else "" for r in rows]
        out.append(_convert(spec, values, lines, bad))
    return out


def _arrow_columns(path: Path, specs: list[ColumnSpec], bad: BadRows) -> list[np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    header = read_header(path)
    width = len(header)
    invalid: list[tuple[int, int]] = []  # (line, fields) of rows pyarrow could not split

    def on_invalid(row: object) -> str:
        number = getattr(row, "number", None)
        text = getattr(row, "text", "")
        if not str(text).strip():
            return "skip"
        invalid.append(
            (int(number) if number is not None else -1, int(getattr(row, "actual_columns", 0)))
        )
        return "skip"

    names = [f"f{i}" for i in range(width)]
    table = pacsv.read_csv(
        path,
        # Single-threaded so the invalid-row handler is told each bad row's line number.
        read_options=pacsv.ReadOptions(
            skip_rows=1, column_names=names, use_threads=False, encoding="utf8"
        ),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    columns = ",".join(header)
    for line, fields in invalid:
        bad.drop(line, field_count_reason(width, fields, columns))
    # Kept rows are every line after the header except the invalid ones (blank lines
    # included, as rows of empty strings): row k sits at line k + 2 + (invalid lines before it).
    inv_idx = np.sort(np.asarray([ln - 2 for ln, _ in invalid if ln > 0], dtype=np.int64))
    kept_before = inv_idx - np.arange(len(inv_idx))

    def lines_of(rows: np.ndarray) -> np.ndarray:
        return rows + 2 + np.searchsorted(kept_before, rows, side="right")

    # Blank lines come through as rows of empty strings: find them from the first column
    # (one vectorised compare), then confirm on the few candidates.
    candidates = np.flatnonzero(np.asarray(pc.equal(table[names[0]], "")))
    blank = [
        int(i) for i in candidates if all(not str(table[n][int(i)].as_py()).strip() for n in names)
    ]
    keep_rows = np.arange(table.num_rows)
    if blank:
        keep_rows = np.delete(keep_rows, blank)
        table = table.take(pa.array(keep_rows))
    all_lines = lines_of(keep_rows)

    out = []
    for spec in specs:
        out.append(_arrow_convert(spec, table[f"f{spec.index}"], all_lines, bad))
    return out


def _arrow_convert(spec: ColumnSpec, col: object, lines: np.ndarray, bad: BadRows) -> np.ndarray:
    """Fast cast with pyarrow; on failure, the python converters find and name the bad values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if spec.kind == "int":
            values = np.asarray(pc.cast(col, pa.int64()))
            for j in np.flatnonzero(values < 1):
                bad.add(int(j), int(lines[j]), f"{spec.name} {values[j]} is below the minimum 1")
            for j in np.flatnonzero(values > MAX_TOKENS):
                bad.add(int(j), int(lines[j]), f"{spec.name} {values[j]} is above the limit {MAX_TOKENS:,}")
            return values
        if spec.kind == "float":
            values = np.asarray(pc.cast(col, pa.float64()))
            for j in np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > MAX_TIME_S)):
                bad.add(
                    int(j), int(lines[j]),
                    f"{spec.name} {values[j]!r} must be a finite number from 0 to {MAX_TIME_S:g}",
                )
            return values
        first = next((v.strip() for v in col.slice(0, 1).to_pylist()), "")  # type: ignore[attr-defined]
        aware = any(c in first[10:] for c in "+Z") or "-" in first[10:]
        stamps = pc.cast(col, pa.timestamp("ns", tz="UTC") if aware else pa.timestamp("ns"))
        return np.asarray(pc.cast(stamps, pa.int64())).astype(np.float64) / 1e9
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parts = []
    n = len(col)  # type: ignore[arg-type]
    for start in range(0, n, FALLBACK_BLOCK_ROWS):
        block = [v.strip() for v in col.slice(start, FALLBACK_BLOCK_ROWS).to_pylist()]  # type: ignore[attr-defined]
        sub = _SubBad(bad, start)
        parts.append(_convert(spec, block, lines[start : start + len(block)], sub))  # type: ignore[arg-type]
    return np.concatenate(parts) if parts else np.zeros(0)


class _SubBad(BadRows):
    """A view of ``BadRows`` for one block: row indices shifted by the block's start."""

    def __init__(self, parent: BadRows, offset: int) -> None:
        self.parent = parent
        self.offset = offset

    def add(self, row: int, line: int, reason: str) -> None:
        self.parent.add(row + self.offset, line, reason)


def read_csv_columns(
    path: Path, specs: list[ColumnSpec], bad: BadRows, engine: str = "auto"
) -> list[np.ndarray]:
    """Arrays for ``specs`` from CSV ``path`` (header on line 1); bad rows go to ``bad``.

    Rows flagged in ``bad`` still have a (meaningless) entry in every array so
    indices stay aligned; drop them with ``bad.keep_mask``.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown CSV engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "auto":
        engine = "arrow" if path.stat().st_size >= ARROW_MIN_BYTES else "python"
    if engine == "arrow":
        return _arrow_columns(path, specs, bad)
    return _python_columns(path, specs, bad)
