"""Reading workload mappings: key checks, numbers under their ceilings, integers, paths and strings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError, yaml_number_hint
from twinfer.workload.columns import MAX_TIME_S, MAX_TOKENS

BUILTIN_PREFIX = "builtin:"

# Upper limits, checked before anything is allocated. Measured here: a 100,000-request run of
# `twinfer simulate` peaks at 129 MB resident against 85 MB for 300 requests, ~0.45 kB per request,
# so 10 M requests need ~5 GB (and hours of simulation); far more would not fit in memory.
MAX_REQUESTS = 10_000_000
MAX_RATE_PER_S = 1e6  # requests per second (a million: far beyond any single fleet studied here)
MAX_DURATION_S = MAX_TIME_S  # ~32 years of simulated time
#: Per-key ceilings of the numbers in a workload section (keys not listed: MAX_TOKENS).
_CEILINGS = {"rate_per_s": MAX_RATE_PER_S, "rate_scale": 1e6, "cv": 100.0, "sigma": 10.0,
             "duration_s": MAX_DURATION_S, "max_requests": MAX_REQUESTS, "num_requests": MAX_REQUESTS}


def check_keys(d: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(d).__name__}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(allowed)}"
        )
    return d


def number(d: Mapping[str, Any], key: str, where: str, *, positive: bool = True) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}{yaml_number_hint(value)}")
    if positive and value <= 0:
        raise ConfigError(f"{where}.{key}: must be > 0, got {value!r}")
    if not positive and value < 0:
        raise ConfigError(f"{where}.{key}: must be >= 0, got {value!r}")
    ceiling(key, value, where)
    return float(value)


def ceiling(key: str, value: float, where: str) -> None:
    limit = _CEILINGS.get(key, MAX_TOKENS)
    if value > limit:
        raise ConfigError(f"{where}.{key}: {value!r} is above the limit of {limit:g}; use a smaller value")


def integer(d: Mapping[str, Any], key: str, where: str, minimum: int = 1) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key}: expected an integer >= {minimum}, got {value!r}"
                          f"{yaml_number_hint(value)}")
    ceiling(key, value, where)
    return int(value)


def path_of(d: Mapping[str, Any], key: str, where: str, base_dir: Path | None) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str | Path) or not str(value).strip():
        raise ConfigError(f"{where}.{key}: expected a file path or builtin:NAME, got {value!r}")
    text = str(value).strip()
    if text.startswith(BUILTIN_PREFIX) or base_dir is None or Path(text).is_absolute():
        return text
    return str(base_dir / text)


def string(d: Mapping[str, Any], key: str, where: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
    return value
