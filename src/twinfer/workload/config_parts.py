"""Parts of a workload section: synthetic arrivals (incl. diurnal and rate profiles), length distributions, chat sessions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError
from twinfer.workload.arrivals import ARRIVAL_KINDS
from twinfer.workload.config_fields import (
    check_keys,
    integer,
    number,
    path_of,
    string,
)
from twinfer.workload.diurnal import DiurnalProfile
from twinfer.workload.lengths import LENGTH_KINDS
from twinfer.workload.rate_profile import RateProfile, profile_from_pairs
from twinfer.workload.sessions import SessionShape

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
        d = check_keys(
            d, ("kind", "rate_per_s", "cv", "timestamps_file", "format", *DIURNAL_KEYS), where
        )
        kind = d.get("kind")
        if kind not in ARRIVAL_KINDS:
            raise ConfigError(
                f"{where}.kind: expected one of {', '.join(ARRIVAL_KINDS)}, got {kind!r}"
            )
        cfg = cls(
            kind=kind,
            rate_per_s=number(d, "rate_per_s", where),
            cv=number(d, "cv", where),
            timestamps_file=path_of(d, "timestamps_file", where, base_dir),
            format=string(d, "format", where),
            diurnal=diurnal_profile(d, where) if kind == "diurnal" else None,
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
        d = check_keys(d, ("kind", *keys[kind]), where)
        cfg = cls(
            kind=str(kind),
            value=integer(d, "value", where),
            low=integer(d, "low", where),
            high=integer(d, "high", where),
            mean=number(d, "mean", where),
            median=number(d, "median", where),
            sigma=number(d, "sigma", where, positive=False),
            trace=path_of(d, "trace", where, base_dir),
            column=(string(d, "column", where) or default_column) if kind == "empirical" else None,
            format=string(d, "format", where),
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


def diurnal_profile(d: Mapping[str, Any], where: str) -> DiurnalProfile:
    """The DiurnalProfile of a diurnal ``arrivals`` mapping (defaults for absent keys)."""
    given = {k: number(d, k, where, positive=k != "peak_at_s") for k in DIURNAL_KEYS}
    try:
        return DiurnalProfile(**{k: v for k, v in given.items() if v is not None})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def rate_profile_of(d: Any, where: str) -> RateProfile | None:
    """A ``rate_profile`` mapping (duration_s, points, optional repeat) as a RateProfile."""
    if d is None:
        return None
    d = check_keys(d, ("duration_s", "points", "repeat"), where)
    duration = number(d, "duration_s", where)
    points = d.get("points")
    if duration is None or not isinstance(points, list):
        raise ConfigError(f"{where}: needs duration_s and points: [[time_s, rate], ...]")
    try:
        return profile_from_pairs(duration, points, integer(d, "repeat", where) or 1)
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
        d = check_keys(d, keys, where)
        missing = [k for k in ("turns", "user_tokens", "reply_tokens") if d.get(k) is None]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)} (length distributions)")
        think = number(d, "think_time_s", where, positive=False)
        cfg = cls(
            turns=LengthConfig.from_dict(d["turns"], f"{where}.turns", base),
            user_tokens=LengthConfig.from_dict(d["user_tokens"], f"{where}.user_tokens", base),
            reply_tokens=LengthConfig.from_dict(
                d["reply_tokens"], f"{where}.reply_tokens", base, default_column="output_tokens"
            ),
            num_sessions=integer(d, "num_sessions", where),
            system_prompts=integer(d, "system_prompts", where) or 1,
            system_prompt_tokens=integer(d, "system_prompt_tokens", where, minimum=0) or 0,
            think_time_s=30.0 if think is None else think,
            block_tokens=integer(d, "block_tokens", where) or 16,
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

    def check_in(self, workload: Any, where: str) -> None:
        """Raise when the rest of the workload section (a WorkloadConfig) conflicts with sessions."""
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
