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
(e.g. a one-hour trace over a day; see :mod:`twinfer.workload.rate_profile`),
and ``prefix_block_tokens`` to set the block size of a trace's prefix block ids
(default 512, Mooncake's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError, yaml_number_hint
from twinfer.workload.arrivals import ARRIVAL_KINDS
from twinfer.workload.columns import MAX_TIME_S, MAX_TOKENS
from twinfer.workload.diurnal import DiurnalProfile
from twinfer.workload.lengths import LENGTH_KINDS
from twinfer.workload.rate_profile import RateProfile, profile_from_pairs
from twinfer.workload.sessions import SessionShape

BUILTIN_PREFIX = "builtin:"
EMPIRICAL_COLUMNS = ("prompt_tokens", "output_tokens")
#: Keys of a diurnal ``arrivals`` mapping beyond kind and rate_per_s (DiurnalProfile fields).
DIURNAL_KEYS = (
    "period_s",
    "peak_to_trough",
    "peak_at_s",
    "burst_every_s",
    "burst_duration_s",
    "burst_factor",
)

# Upper limits, checked before anything is allocated. Measured here: a 100,000-request run of
# `twinfer simulate` peaks at 129 MB resident against 85 MB for 300 requests, ~0.45 kB per request,
# so 10 M requests need ~5 GB (and hours of simulation); far more would not fit in memory.
MAX_REQUESTS = 10_000_000
MAX_RATE_PER_S = 1e6  # requests per second (a million: far beyond any single fleet studied here)
MAX_DURATION_S = MAX_TIME_S  # ~32 years of simulated time
#: Per-key ceilings of the numbers in a workload section (keys not listed: MAX_TOKENS).
_CEILINGS = {"rate_per_s": MAX_RATE_PER_S, "rate_scale": 1e6, "cv": 100.0, "sigma": 10.0,
             "duration_s": MAX_DURATION_S, "max_requests": MAX_REQUESTS, "num_requests": MAX_REQUESTS}


def _check_keys(d: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(allowed)}"
        )
    return d


def _number(d: Mapping[str, Any], key: str, where: str, *, positive: bool = True) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}{yaml_number_hint(value)}")
    if positive and value <= 0:
        raise ConfigError(f"{where}.{key}: must be > 0, got {value!r}")
    if not positive and value < 0:
        raise ConfigError(f"{where}.{key}: must be >= 0, got {value!r}")
    _ceiling(key, value, where)
    return float(value)


def _ceiling(key: str, value: float, where: str) -> None:
    limit = _CEILINGS.get(key, MAX_TOKENS)
    if value > limit:
        raise ConfigError(f"{where}.{key}: {value!r} is above the limit of {limit:g}; use a smaller value")


def _integer(d: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key}: expected an integer >= {minimum}, got {value!r}"
                          f"{yaml_number_hint(value)}")
    _ceiling(key, value, where)
    return int(value)


def _path(d: Mapping[str, Any], key: str, where: str, base_dir: Path | None) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ConfigError(f"{where}.{key}: expected a file path or builtin:NAME, got {value!r}")
    text = str(value).strip()
    if text.startswith(BUILTIN_PREFIX) or base_dir is None or Path(text).is_absolute():
        return text
    return str(base_dir / text)


def _string(d: Mapping[str, Any], key: str, where: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
    return value


@dataclass(frozen=True)
class ArrivalConfig:
    """How requests arrive (see :mod:`twinfer.workload.arrivals`)."""

    kind: str  # poisson | gamma | fixed | replay | diurnal
    rate_per_s: float | None = None  # mean arrival rate; required except for replay
    cv: float | None = None  # gamma only: coefficient of variation of the gaps
    timestamps_file: str | None = None  # replay only: trace or one-time-per-line text file
    format: str | None = None  # replay only: trace format when not detectable
    diurnal: DiurnalProfile | None = None  # diurnal only: the day's shape and bursts

    @classmethod
    def from_dict(
        cls, d: Any, where: str = "arrivals", base_dir: Path | None = None
    ) -> ArrivalConfig:
        """Parse and check an ``arrivals`` mapping; errors name ``where`` and the key."""
        d = _check_keys(
            d, ("kind", "rate_per_s", "cv", "timestamps_file", "format", *DIURNAL_KEYS), where
        )
        kind = d.get("kind")
        if kind not in ARRIVAL_KINDS:
            raise ConfigError(
                f"{where}.kind: expected one of {', '.join(ARRIVAL_KINDS)}, got {kind!r}"
            )
        cfg = cls(
            kind=kind,
            rate_per_s=_number(d, "rate_per_s", where),
            cv=_number(d, "cv", where),
            timestamps_file=_path(d, "timestamps_file", where, base_dir),
            format=_string(d, "format", where),
            diurnal=_diurnal(d, where) if kind == "diurnal" else None,
        )
        if kind != "diurnal" and any(d.get(k) is not None for k in DIURNAL_KEYS):
            raise ConfigError(f"{where}: {', '.join(DIURNAL_KEYS)} only apply to diurnal arrivals")
        if kind != "replay" and cfg.rate_per_s is None:
            raise ConfigError(f"{where}: {kind} arrivals need rate_per_s (requests per second)")
        if kind == "gamma" and cfg.cv is None:
            raise ConfigError(
                f"{where}: gamma arrivals need cv (coefficient of variation of gaps; 1 = Poisson)"
            )
        if kind != "gamma" and cfg.cv is not None:
            raise ConfigError(f"{where}.cv: only gamma arrivals take cv")
        if kind == "replay" and cfg.timestamps_file is None:
            raise ConfigError(f"{where}: replay arrivals need timestamps_file")
        if kind != "replay" and (cfg.timestamps_file is not None or cfg.format is not None):
            raise ConfigError(f"{where}: timestamps_file/format only apply to replay arrivals")
        return cfg


@dataclass(frozen=True)
class LengthConfig:
    """A token-length distribution (see :mod:`twinfer.workload.lengths`)."""

    kind: str  # fixed | uniform | lognormal | empirical
    value: int | None = None  # fixed
    low: int | None = None  # uniform, inclusive
    high: int | None = None  # uniform, inclusive
    mean: float | None = None  # lognormal: mean of the distribution ...
    median: float | None = None  # ... or its median
    sigma: float | None = None  # lognormal: standard deviation of ln X
    trace: str | None = None  # empirical: trace path or builtin:NAME
    column: str | None = None  # empirical: prompt_tokens | output_tokens
    format: str | None = None  # empirical: trace format when not detectable

    @classmethod
    def from_dict(
        cls, d: Any, where: str, base_dir: Path | None = None, default_column: str = "prompt_tokens"
    ) -> LengthConfig:
        """Parse and check a length mapping; errors name ``where`` and the key."""
        keys = {
            "fixed": ("value",),
            "uniform": ("low", "high"),
            "lognormal": ("mean", "median", "sigma"),
            "empirical": ("trace", "column", "format"),
        }
        if isinstance(d, int) and not isinstance(d, bool):
            d = {"kind": "fixed", "value": d}  # shorthand: prompt_tokens: 512
        if not isinstance(d, Mapping):
            raise ConfigError(
                f"{where}: expected a mapping such as {{kind: fixed, value: 512}}, got {d!r}"
            )
        kind = d.get("kind")
        if kind not in LENGTH_KINDS:
            raise ConfigError(
                f"{where}.kind: expected one of {', '.join(LENGTH_KINDS)}, got {kind!r}"
            )
        d = _check_keys(d, ("kind", *keys[kind]), where)
        cfg = cls(
            kind=str(kind),
            value=_integer(d, "value", where),
            low=_integer(d, "low", where),
            high=_integer(d, "high", where),
            mean=_number(d, "mean", where),
            median=_number(d, "median", where),
            sigma=_number(d, "sigma", where, positive=False),
            trace=_path(d, "trace", where, base_dir),
            column=(_string(d, "column", where) or default_column) if kind == "empirical" else None,
            format=_string(d, "format", where),
        )
        missing = {
            "fixed": [k for k in ("value",) if d.get(k) is None],
            "uniform": [k for k in ("low", "high") if d.get(k) is None],
            "lognormal": [k for k in ("sigma",) if d.get(k) is None],
            "empirical": [k for k in ("trace",) if d.get(k) is None],
        }[cfg.kind]
        if missing:
            raise ConfigError(f"{where}: {cfg.kind} lengths need {', '.join(missing)}")
        if (
            cfg.kind == "uniform"
            and cfg.low is not None
            and cfg.high is not None
            and cfg.low > cfg.high
        ):
            raise ConfigError(
                f"{where}: uniform needs low <= high, got low={cfg.low}, high={cfg.high}"
            )
        if cfg.kind == "lognormal" and (cfg.mean is None) == (cfg.median is None):
            raise ConfigError(f"{where}: lognormal lengths need exactly one of mean or median")
        if cfg.kind == "empirical" and cfg.column not in EMPIRICAL_COLUMNS:
            raise ConfigError(
                f"{where}.column: expected one of {', '.join(EMPIRICAL_COLUMNS)}, got {cfg.column!r}"
            )
        return cfg


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
        d = _check_keys(d, allowed, where)
        base = Path(base_dir) if base_dir is not None else None
        skip = d.get("skip_bad_rows", False)
        if not isinstance(skip, bool):
            raise ConfigError(f"{where}.skip_bad_rows: expected true or false, got {skip!r}")
        arrivals = d.get("arrivals")
        cfg = cls(
            trace=_path(d, "trace", where, base),
            format=_string(d, "format", where),
            rate_scale=_number(d, "rate_scale", where) or 1.0,
            max_requests=_integer(d, "max_requests", where),
            skip_bad_rows=skip,
            num_requests=_integer(d, "num_requests", where),
            duration_s=_number(d, "duration_s", where),
            arrivals=ArrivalConfig.from_dict(arrivals, f"{where}.arrivals", base)
            if arrivals is not None
            else None,
            prompt_tokens=cls._length(d, "prompt_tokens", where, base),
            output_tokens=cls._length(d, "output_tokens", where, base),
            name=_string(d, "name", where),
            sessions=SessionConfig.from_dict(d["sessions"], f"{where}.sessions", base)
            if d.get("sessions") is not None
            else None,
            rate_profile=_rate_profile(d.get("rate_profile"), f"{where}.rate_profile"),
            prefix_block_tokens=_integer(d, "prefix_block_tokens", where),
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


def _diurnal(d: Mapping[str, Any], where: str) -> DiurnalProfile:
    """The DiurnalProfile of a diurnal ``arrivals`` mapping (defaults for absent keys)."""
    given = {k: _number(d, k, where, positive=k != "peak_at_s") for k in DIURNAL_KEYS}
    try:
        return DiurnalProfile(**{k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _rate_profile(d: Any, where: str) -> RateProfile | None:
    """A ``rate_profile`` mapping (duration_s, points, optional repeat) as a RateProfile."""
    if d is None:
        return None
    d = _check_keys(d, ("duration_s", "points", "repeat"), where)
    duration = _number(d, "duration_s", where)
    points = d.get("points")
    if duration is None or not isinstance(points, list):
        raise ConfigError(f"{where}: needs duration_s and points: [[time_s, rate], ...]")
    try:
        return profile_from_pairs(duration, points, _integer(d, "repeat", where) or 1)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class SessionConfig:
    """The ``sessions`` section: multi-turn chats over shared system prompts."""

    turns: LengthConfig  # turns per session
    user_tokens: LengthConfig  # tokens of each user message
    reply_tokens: LengthConfig  # tokens of each reply (the request's output)
    num_sessions: int | None = None  # how many sessions (else until duration_s)
    system_prompts: int = 1  # distinct shared system prompts
    system_prompt_tokens: int = 0  # tokens of each
    think_time_s: float = 30.0  # mean gap between a session's turns
    block_tokens: int = 16  # KV block size of the prefix block ids

    @classmethod
    def from_dict(cls, d: Any, where: str, base: Path | None = None) -> SessionConfig:
        """Parse and check a ``sessions`` mapping."""
        keys = (
            "num_sessions",
            "system_prompts",
            "system_prompt_tokens",
            "turns",
            "user_tokens",
            "reply_tokens",
            "think_time_s",
            "block_tokens",
        )
        d = _check_keys(d, keys, where)
        missing = [k for k in ("turns", "user_tokens", "reply_tokens") if d.get(k) is None]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)} (length distributions)")
        think = _number(d, "think_time_s", where, positive=False)
        cfg = cls(
            turns=LengthConfig.from_dict(d["turns"], f"{where}.turns", base),
            user_tokens=LengthConfig.from_dict(d["user_tokens"], f"{where}.user_tokens", base),
            reply_tokens=LengthConfig.from_dict(
                d["reply_tokens"], f"{where}.reply_tokens", base, default_column="output_tokens"
            ),
            num_sessions=_integer(d, "num_sessions", where),
            system_prompts=_integer(d, "system_prompts", where) or 1,
            system_prompt_tokens=_integer(d, "system_prompt_tokens", where, minimum=0) or 0,
            think_time_s=30.0 if think is None else think,
            block_tokens=_integer(d, "block_tokens", where) or 16,
        )
        cfg.shape()  # checks the numbers
        return cfg

    def shape(self) -> SessionShape:
        """The fixed knobs as a :class:`SessionShape`."""
        return SessionShape(
            system_prompts=self.system_prompts,
            system_prompt_tokens=self.system_prompt_tokens,
            think_time_s=self.think_time_s,
            block_tokens=self.block_tokens,
        )

    def check_in(self, workload: WorkloadConfig, where: str) -> None:
        """Raise when the rest of the workload section conflicts with sessions."""
        clash = [
            k
            for k in ("trace", "format", "prompt_tokens", "output_tokens", "num_requests")
            if getattr(workload, k) is not None
        ] + (["skip_bad_rows"] if workload.skip_bad_rows else [])
        if clash:
            raise ConfigError(
                f"{where}.sessions: drop {', '.join(clash)}; a sessions workload draws its own "
                "prompts and replies (use sessions.num_sessions, or max_requests to cap requests)"
            )
        if workload.arrivals is None:
            raise ConfigError(f"{where}.sessions: add arrivals (when sessions start)")
        replay = workload.arrivals.kind == "replay"
        if self.num_sessions is None and workload.duration_s is None and not replay:
            raise ConfigError(f"{where}.sessions: give sessions.num_sessions or workload.duration_s")
