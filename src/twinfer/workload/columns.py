"""Column conversion for trace readers: fast numpy paths, exact per-line errors.

Readers hand over raw string columns with the file line of every row. Each
column is converted in one vectorised numpy call; only when that fails (or a
value breaks a constraint) do we walk the values one by one to name the line
and the problem. A bad row either raises a :class:`DataError` ("file line 17:
ContextTokens 'abc' is not an integer") or, with ``skip_bad_rows``, is dropped
and counted in a :class:`ReadReport`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twinfer.errors import DataError

#: How many skipped lines a report lists verbatim (the count is always exact).
MAX_LISTED_BAD_ROWS = 20

#: Largest token count of one request a trace may hold (the longest model contexts are ~1-10 M tokens).
MAX_TOKENS = 10_000_000
#: Largest time a trace or workload may hold, in seconds (~32 years).
MAX_TIME_S = 1e9


@dataclass(frozen=True)
class ReadReport:
    """What a trace reader did: format, rows kept, rows skipped and why."""

    path: str  # the file read
    format: str  # detected or given format name
    rows_read: int  # rows kept in the workload
    rows_skipped: int = 0  # malformed rows dropped (skip_bad_rows=True)
    skipped: tuple[str, ...] = field(default=())  # first few "line N: reason" messages
    has_timestamps: bool = True  # False for length-only traces (ShareGPT)
    reordered: bool = False  # True when rows were stably sorted by arrival time

    def describe(self) -> str:
        """One line for logs and CLI output."""
        text = f"{Path(self.path).name}: {self.rows_read} requests ({self.format})"
        if self.rows_skipped:
            text += f", skipped {self.rows_skipped} malformed rows"
            if self.skipped:
                text += " (" + "; ".join(self.skipped[:3])
                text += ", ...)" if self.rows_skipped > 3 else ")"
        if self.reordered:
            text += ", rows sorted by arrival time"
        return text


class BadRows:
    """Collects malformed rows of one file; raises on the first unless skipping."""

    def __init__(self, path: Path, skip: bool) -> None:
        self.path = path
        self.skip = skip
        self.reasons: dict[int, tuple[int, str]] = {}  # row index -> (line, "line N: reason")
        self.dropped: list[tuple[int, str]] = []  # rows the parser already left out (line, message)

    def _check(self, message: str) -> None:
        if not self.skip:
            raise DataError(
                f"{self.path.name} {message} (file {self.path}; pass skip_bad_rows / "
                "--skip-bad-rows to drop malformed rows and count them)"
            )

    def add(self, row: int, line: int, reason: str) -> None:
        """Record that row ``row`` (file line ``line``) is bad because ``reason``."""
        message = f"line {line}: {reason}"
        self._check(message)
        self.reasons.setdefault(row, (int(line), message))

    def drop(self, line: int, reason: str) -> None:
        """Record a bad line that never became a row (e.g. wrong field count in a CSV parser)."""
        message = f"line {line}: {reason}"
        self._check(message)
        self.dropped.append((int(line), message))

    @property
    def count(self) -> int:
        """Malformed rows seen so far."""
        return len(self.reasons) + len(self.dropped)

    def keep_mask(self, n: int) -> np.ndarray:
        """Boolean mask of rows to keep."""
        mask = np.ones(n, dtype=bool)
        if self.reasons:
            mask[np.fromiter(self.reasons, dtype=np.int64)] = False
        return mask

    def listed(self) -> tuple[str, ...]:
        """The first few reasons, in file order."""
        every = sorted([*self.reasons.values(), *self.dropped])
        return tuple(message for _, message in every[:MAX_LISTED_BAD_ROWS])


def _int_reason(column: str, text: str, min_value: int) -> str | None:
    try:
        value = int(text)
    except ValueError:
        return f"{column} {text!r} is not an integer"
    if value < min_value:
        return f"{column} {value} is below the minimum {min_value}"
    return None


def int_column(
    values: list[str], lines: list[int], column: str, bad: BadRows, min_value: int = 1
) -> np.ndarray:
    """``values`` as int64; rows that are not integers >= ``min_value`` go to ``bad``."""
    try:
        out = np.array(values, dtype=np.str_).astype(np.int64)
    except (ValueError, OverflowError):
        out = np.zeros(len(values), dtype=np.int64)
        for i, text in enumerate(values):
            reason = _int_reason(column, text, min_value)
            if reason is None:
                out[i] = int(text)
            else:
                bad.add(i, lines[i], reason)
        return out
    for j in np.flatnonzero(out < min_value):
        i = int(j)
        bad.add(i, lines[i], f"{column} {out[i]} is below the minimum {min_value}")
    for j in np.flatnonzero(out > MAX_TOKENS):
        i = int(j)
        bad.add(i, lines[i], f"{column} {out[i]} is above the limit {MAX_TOKENS:,}")
    return out


def float_column(
    values: list[str], lines: list[int], column: str, bad: BadRows, min_value: float = 0.0
) -> np.ndarray:
    """``values`` as float64; non-numbers, non-finite or < ``min_value`` go to ``bad``."""
    try:
        out = np.array(values, dtype=np.str_).astype(np.float64)
    except ValueError:
        out = np.zeros(len(values), dtype=np.float64)
        for i, text in enumerate(values):
            try:
                out[i] = float(text)
            except ValueError:
                bad.add(i, lines[i], f"{column} {text!r} is not a number")
    for j in np.flatnonzero(~np.isfinite(out) | (out < min_value) | (out > MAX_TIME_S)):
        i = int(j)
        bad.add(i, lines[i], f"{column} {values[i]!r} must be a finite number from {min_value:g} to {MAX_TIME_S:g}")
    return out


def _parse_datetimes(values: list[str]) -> np.ndarray:
    # numpy parses ISO-8601 with a space or 'T', 0-9 fractional digits, and a
    # "+HH:MM"/"Z" offset (converted to UTC); it warns that datetime64 has no
    # time zones, which is fine: we only use differences between rows.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.array(values, dtype=np.str_).astype("datetime64[ns]")


def timestamp_column(values: list[str], lines: list[int], column: str, bad: BadRows) -> np.ndarray:
    """ISO-8601 date-times as float64 seconds since the epoch (UTC for offset-aware text)."""
    try:
        stamps = _parse_datetimes(values)
    except ValueError:
        stamps = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
        for i, text in enumerate(values):
            with contextlib.suppress(ValueError):
                stamps[i] = _parse_datetimes([text])[0]
    for j in np.flatnonzero(np.isnat(stamps)):
        i = int(j)
        bad.add(
            i,
            lines[i],
            f"{column} {values[i]!r} is not a date-time (YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM])",
        )
    ns = stamps.astype(np.int64)
    return ns.astype(np.float64) / 1e9


def checked_rows(
    rows: list[list[str]],
    lines: list[int],
    width: int,
    bad: BadRows,
    describe: Callable[[int], str],
) -> None:
    """Send rows without exactly ``width`` fields to ``bad`` (``describe`` names the columns)."""
    for i, row in enumerate(rows):
        if len(row) != width:
            bad.add(i, lines[i], field_count_reason(width, len(row), describe(width)))


def field_count_reason(width: int, got: int, columns: str) -> str:
    """The message for a row with ``got`` fields where the header has ``width``."""
    return f"expected {width} fields ({columns}), got {got}"
