"""WorkloadConfig: the ``workload:`` section of a scenario, parsed and checked.

Two shapes (YAML shown; ``from_dict`` takes the parsed mapping):

A trace (file path, or a built-in name such as ``builtin:azure-conv-sample``)::

    workload:
      trace: builtin:azure-conv-sample   # or traces/conv.csv (relative to the scenario file)
      format: azure2023                  # optional; detected from the header when absent
      rate_scale: 2.0                    # optional; 2 = arrivals twice as fast
      max_requests: 1000                 # optional; first N requests (after rate_scale)
      duration_s: 600                    # optional; requests arriving before 600 s
      skip_bad_rows: false               # optional; drop and count malformed rows
      arrivals: {kind: poisson, rate_per_s: 4}   # optional, required for ShareGPT (no timestamps)

Synthetic::

    workload:
      num_requests: 2000                 # and/or duration_s
      arrivals: {kind: gamma, rate_per_s: 5.0, cv: 2.0}    # poisson | gamma | fixed | replay
      prompt_tokens: {kind: lognormal, mean: 1155, sigma: 1.0}   # or median: ...
      output_tokens: {kind: empirical, trace: builtin:azure-conv-sample}

Arrival kinds: ``poisson`` (rate_per_s), ``gamma`` (rate_per_s, cv), ``fixed``
(rate_per_s), ``replay`` (timestamps_file: a trace or a text file of one time in
seconds per line; optional rate_per_s rescales it), ``diurnal`` (rate_per_s, the
mean; optional period_s, peak_to_trough, peak_at_s, burst_every_s,
burst_duration_s, burst_factor; see :mod:`twinfer.workload.diurnal`). A trace
without ``arrivals`` is replayed with its own timestamps. Length kinds: ``fixed``
(value), ``uniform`` (low, high; inclusive), ``lognormal`` (sigma and mean or
median), ``empirical`` (trace, optional column ``prompt_tokens`` or
``output_tokens`` defaulting to the field's own, optional format). When both
lengths are empirical from the same trace, requests are drawn as whole rows, so
the prompt/output correlation of the trace is kept.

Chat sessions with shared system prompts (instead of prompt_tokens/output_tokens;
``arrivals`` then gives session starts; see :mod:`twinfer.workload.sessions`)::

    workload:
      duration_s: 3600                   # or sessions.num_sessions
      arrivals: {kind: poisson, rate_per_s: 0.5}
      sessions:
        num_sessions: 500
        system_prompts: 4
        system_prompt_tokens: 1500
        turns: {kind: uniform, low: 1, high: 8}
        user_tokens: {kind: lognormal, median: 120, sigma: 1.0}
        reply_tokens: {kind: lognormal, median: 250, sigma: 0.8}
        think_time_s: 60
        block_tokens: 16

Any workload may add ``rate_profile: {duration_s, points: [[time_s, rate], ...],
repeat}`` to stretch it over ``duration_s`` following a piecewise-linear rate
(e.g. a one-hour trace over a day; see :mod:`twinfer.workload.rate_profile`).
A trace may add ``prefix_block_tokens`` to set the block size of its prefix block
ids (default 512, Mooncake's; sessions set theirs with ``sessions.block_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError
from twinfer.workload.config_fields import (
    BUILTIN_PREFIX,
    MAX_DURATION_S,
    MAX_RATE_PER_S,
    MAX_REQUESTS,
    check_keys,
    integer,
    number,
    path_of,
    string,
)
from twinfer.workload.config_parts import (
    EMPIRICAL_COLUMNS,
    ArrivalConfig,
    LengthConfig,
    SessionConfig,
    rate_profile_of,
)
from twinfer.workload.rate_profile import RateProfile

__all__ = ["BUILTIN_PREFIX", "EMPIRICAL_COLUMNS", "MAX_DURATION_S", "MAX_RATE_PER_S", "MAX_REQUESTS", "ArrivalConfig",
           "LengthConfig", "SessionConfig", "WorkloadConfig"]


@dataclass(frozen=True)
class WorkloadConfig:
    """The requests of a scenario: a trace or a synthetic recipe (see the module doc)."""

    trace: str | None = None  # file path or builtin:NAME
    format: str | None = None  # trace format when not detectable from the file
    rate_scale: float = 1.0  # arrival-rate multiplier (times divided by it)
    max_requests: int | None = None  # keep the first N requests
    skip_bad_rows: bool = False  # drop and count malformed trace rows instead of failing
    num_requests: int | None = None  # synthetic: how many requests
    duration_s: float | None = None  # keep requests arriving before this time
    arrivals: ArrivalConfig | None = None  # synthetic arrivals (or replacing a trace's)
    prompt_tokens: LengthConfig | None = None  # synthetic prompt lengths
    output_tokens: LengthConfig | None = None  # synthetic output lengths
    name: str | None = None  # label for tables; defaults from the trace or recipe
    sessions: SessionConfig | None = None  # synthetic chat sessions (instead of lengths)
    rate_profile: RateProfile | None = None  # stretch the requests over a span by a rate shape
    prefix_block_tokens: int | None = None  # block size of a trace's prefix block ids

    @classmethod
    def default(cls) -> WorkloadConfig:
        """The built-in default: the shipped Azure 2023 conversation sample, as recorded."""
        return cls(trace=f"{BUILTIN_PREFIX}azure-conv-sample")

    @classmethod
    def from_dict(
        cls, d: Any, where: str = "workload", base_dir: Path | str | None = None
    ) -> WorkloadConfig:
        """Parse and check a ``workload`` mapping.

        ``where`` prefixes error messages (e.g. ``"scenario.yaml: workload"``);
        ``base_dir`` resolves relative file paths (the scenario file's folder).
        """
        allowed = (
            "trace",
            "format",
            "rate_scale",
            "max_requests",
            "skip_bad_rows",
            "num_requests",
            "duration_s",
            "arrivals",
            "prompt_tokens",
            "output_tokens",
            "name",
            "sessions",
            "rate_profile",
            "prefix_block_tokens",
        )
        d = check_keys(d, allowed, where)
        base = Path(base_dir) if base_dir is not None else None
        skip = d.get("skip_bad_rows", False)
        if not isinstance(skip, bool):
            raise ConfigError(f"{where}.skip_bad_rows: expected true or false, got {skip!r}")
        arrivals = d.get("arrivals")
        cfg = cls(
            trace=path_of(d, "trace", where, base),
            format=string(d, "format", where),
            rate_scale=number(d, "rate_scale", where) or 1.0,
            max_requests=integer(d, "max_requests", where),
            skip_bad_rows=skip,
            num_requests=integer(d, "num_requests", where),
            duration_s=number(d, "duration_s", where),
            arrivals=ArrivalConfig.from_dict(arrivals, f"{where}.arrivals", base)
            if arrivals is not None
            else None,
            prompt_tokens=cls._length(d, "prompt_tokens", where, base),
            output_tokens=cls._length(d, "output_tokens", where, base),
            name=string(d, "name", where),
            sessions=SessionConfig.from_dict(d["sessions"], f"{where}.sessions", base)
            if d.get("sessions") is not None
            else None,
            rate_profile=rate_profile_of(d.get("rate_profile"), f"{where}.rate_profile"),
            prefix_block_tokens=integer(d, "prefix_block_tokens", where),
        )
        cfg.check(where)
        return cfg

    @staticmethod
    def _length(
        d: Mapping[str, Any], key: str, where: str, base: Path | None
    ) -> LengthConfig | None:
        if d.get(key) is None:
            return None
        return LengthConfig.from_dict(d[key], f"{where}.{key}", base, default_column=key)

    def check(self, where: str = "workload") -> None:
        """Raise :class:`ConfigError` when the fields do not describe one workload."""
        if self.prefix_block_tokens is not None and self.trace is None:
            fix = ("sessions make their own ids in blocks of sessions.block_tokens: set that instead"
                   if self.sessions is not None else "a synthetic workload has no ids: remove it")
            raise ConfigError(f"{where}.prefix_block_tokens: sets the block size of a trace's prefix block ids; {fix}")
        if self.sessions is not None:
            self.sessions.check_in(self, where)
            return
        if self.trace is not None:
            for key in ("prompt_tokens", "output_tokens"):
                if getattr(self, key) is not None:
                    raise ConfigError(
                        f"{where}.{key}: a trace already gives lengths; drop 'trace' for a synthetic "
                        f"workload, or use {key}: {{kind: empirical, trace: ...}} to sample from it"
                    )
            if self.num_requests is not None:
                raise ConfigError(
                    f"{where}.num_requests: with a trace use max_requests to keep the first N"
                )
            return
        if self.format is not None or self.skip_bad_rows:
            raise ConfigError(f"{where}: format/skip_bad_rows apply to a trace; add trace: PATH")
        missing = [
            k for k in ("arrivals", "prompt_tokens", "output_tokens") if getattr(self, k) is None
        ]
        if missing:
            raise ConfigError(
                f"{where}: give either trace: PATH (or builtin:azure-conv-sample) or a synthetic "
                f"workload; missing {', '.join(missing)}"
            )
        replay = self.arrivals is not None and self.arrivals.kind == "replay"
        if self.num_requests is None and self.duration_s is None and not replay:
            raise ConfigError(f"{where}: a synthetic workload needs num_requests or duration_s")
        rate = self.arrivals.rate_per_s if self.arrivals is not None else None
        if self.num_requests is None and self.duration_s is not None and rate is not None and not replay:
            expected = rate * self.duration_s * self.rate_scale
            if expected > MAX_REQUESTS:
                raise ConfigError(
                    f"{where}.duration_s: {self.duration_s:g} s at {rate * self.rate_scale:g} req/s is "
                    f"~{expected:.3g} requests, above the limit of {MAX_REQUESTS:,} that fit in memory; "
                    f"shorten duration_s or set num_requests")
