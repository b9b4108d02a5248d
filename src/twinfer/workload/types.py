"""Workload: the requests a fleet must serve, as parallel numpy arrays.

A workload is what the simulator consumes: for each request its arrival time,
its prompt length and how many tokens it wants generated, plus (for traces that
carry them, e.g. Mooncake) the ids of the fixed-size KV blocks of its prompt, so
shared ids mean shared prefixes. Arrays are read-only so a workload can be
shared between scenarios without copies or surprises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from twinfer.errors import ConfigError

#: Tokens per prefix block in Mooncake traces ("each hash id is a 512-token block",
#: kvcache-ai/Mooncake FAST'25 trace README; /work/shared/data/README.md).
MOONCAKE_BLOCK_TOKENS = 512


def _frozen(values: np.ndarray, dtype: type) -> np.ndarray:
    """A read-only contiguous copy of ``values`` with ``dtype``."""
    out: np.ndarray = np.array(values, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests to serve: arrival times and token counts, one entry per request.

    ``arrival_s`` is sorted ascending (seconds from the start of the workload);
    ``prompt_tokens`` and ``output_tokens`` are >= 1. ``prefix_block_ids``, when
    present, holds per request the ids of its prompt's KV blocks of
    ``prefix_block_tokens`` tokens each (requests sharing leading ids share a
    prefix). ``skipped_rows`` counts malformed trace rows dropped while reading
    and ``notes`` says which, so a report can show them.
    """

    arrival_s: np.ndarray  # float64 [N], sorted, seconds from workload start
    prompt_tokens: np.ndarray  # int64 [N], >= 1
    output_tokens: np.ndarray  # int64 [N], >= 1 (tokens the request wants generated)
    name: str = "workload"  # short label for tables
    source: str = ""  # where it came from: a file path, a builtin name, or a synthetic recipe
    prefix_block_ids: tuple[np.ndarray, ...] | None = None  # per request int64 block ids
    prefix_block_tokens: int | None = None  # tokens per prefix block (512 for Mooncake)
    skipped_rows: int = 0  # malformed rows dropped by the reader (skip_bad_rows)
    notes: tuple[str, ...] = field(default=())  # human-readable remarks (skipped lines, ...)

    def __post_init__(self) -> None:
        arrival = _frozen(self.arrival_s, np.float64)
        prompt = _frozen(self.prompt_tokens, np.int64)
        output = _frozen(self.output_tokens, np.int64)
        n = arrival.shape[0]
        if arrival.ndim != 1 or prompt.shape != (n,) or output.shape != (n,):
            raise ConfigError(
                f"workload {self.name!r}: arrival_s, prompt_tokens and output_tokens must be "
                f"1-D arrays of one length; got shapes {arrival.shape}, {prompt.shape}, {output.shape}"
            )
        if n and not np.all(np.isfinite(arrival)):
            raise ConfigError(f"workload {self.name!r}: arrival_s has non-finite values")
        if n > 1 and np.any(np.diff(arrival) < 0):
            raise ConfigError(f"workload {self.name!r}: arrival_s must be sorted ascending")
        if n and (prompt.min() < 1 or output.min() < 1):
            raise ConfigError(
                f"workload {self.name!r}: prompt_tokens and output_tokens must be >= 1 "
                f"(min prompt {prompt.min()}, min output {output.min()})"
            )
        object.__setattr__(self, "arrival_s", arrival)
        object.__setattr__(self, "prompt_tokens", prompt)
        object.__setattr__(self, "output_tokens", output)
        if self.prefix_block_ids is not None:
            ids = tuple(_frozen(b, np.int64) for b in self.prefix_block_ids)
            if len(ids) != n:
                raise ConfigError(
                    f"workload {self.name!r}: prefix_block_ids has {len(ids)} entries for {n} requests"
                )
            object.__setattr__(self, "prefix_block_ids", ids)
        object.__setattr__(self, "notes", tuple(self.notes))

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def len(self) -> int:
        """Number of requests (same as ``len(workload)``)."""
        return len(self)

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival (0 for fewer than two requests)."""
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) > 1 else 0.0

    @property
    def mean_rate_per_s(self) -> float:
        """Mean arrival rate: (N - 1) / (last - first arrival), the inverse mean gap.

        Uses the N - 1 gaps between arrivals, so it does not depend on where the
        workload's clock starts. 0.0 for fewer than two requests; inf when all
        requests arrive at the same instant.
        """
        if len(self) < 2:
            return 0.0
        span = self.duration_s
        return float("inf") if span == 0 else (len(self) - 1) / span

    @property
    def mean_prompt_tokens(self) -> float:
        """Mean prompt length in tokens (0.0 when empty)."""
        return float(self.prompt_tokens.mean()) if len(self) else 0.0

    @property
    def mean_output_tokens(self) -> float:
        """Mean requested output length in tokens (0.0 when empty)."""
        return float(self.output_tokens.mean()) if len(self) else 0.0

    def _take(self, index: slice, shift_s: float = 0.0) -> Workload:
        """The requests selected by ``index``, arrival times reduced by ``shift_s``."""
        ids = self.prefix_block_ids
        return replace(
            self,
            arrival_s=self.arrival_s[index] - shift_s,
            prompt_tokens=self.prompt_tokens[index],
            output_tokens=self.output_tokens[index],
            prefix_block_ids=ids[index] if ids is not None else None,
        )

    def scaled(self, rate_factor: float) -> Workload:
        """The same requests arriving ``rate_factor`` times faster (times divided by it).

        ``rate_factor`` 2 halves every arrival time, doubling the request rate;
        0.5 stretches time. Lengths are unchanged.
        """
        if not (rate_factor > 0 and np.isfinite(rate_factor)):
            raise ConfigError(f"rate factor must be a positive finite number, got {rate_factor!r}")
        return replace(
            self,
            arrival_s=self.arrival_s / float(rate_factor),
            source=f"{self.source} (rate x{rate_factor:g})" if rate_factor != 1 else self.source,
        )

    def head(self, n: int) -> Workload:
        """The first ``n`` requests (all of them when ``n`` >= len)."""
        if n < 0:
            raise ConfigError(f"head(n) needs n >= 0, got {n}")
        return self._take(slice(0, int(n)))

    def window(self, start_s: float, end_s: float) -> Workload:
        """Requests arriving in [start_s, end_s), with times shifted so start_s becomes 0."""
        if not end_s >= start_s:
            raise ConfigError(f"window needs end_s >= start_s, got [{start_s}, {end_s})")
        lo, hi = np.searchsorted(self.arrival_s, [start_s, end_s], side="left")
        sel = slice(int(lo), int(hi))
        return self._take(sel, float(start_s))

    def summary(self) -> dict[str, float | int | str]:
        """Request count, span, mean rate and mean lengths, for reports."""
        return {
            "name": self.name,
            "source": self.source,
            "requests": len(self),
            "duration_s": self.duration_s,
            "mean_rate_per_s": self.mean_rate_per_s,
            "mean_prompt_tokens": self.mean_prompt_tokens,
            "mean_output_tokens": self.mean_output_tokens,
            "skipped_rows": self.skipped_rows,
        }


def concat_block_ids(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, ...]:
    """Per-request block-id lists as a tuple of int64 arrays."""
    return tuple(np.asarray(r, dtype=np.int64) for r in rows)
