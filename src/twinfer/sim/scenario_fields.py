"""Reading scenario mappings: key checks, numbers with their ceilings, strings (shared by the scenario modules)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twinfer.errors import ConfigError, yaml_number_hint

#: Instances per pool the simulator accepts: each instance is a scheduler with its own queues, and the
#: router looks at every instance per request, so millions would not finish (10,000 instances of 8 GPUs
#: is an 80,000-GPU fleet; measured here: 10,000 instances serving 300 requests take 3.7 s and 85 MB).
MAX_POOL_INSTANCES = 10_000
#: Ceilings of scenario numbers (by key), checked before anything is built; absurd values are refused.
_CEILINGS: dict[str, float] = {
    "count": MAX_POOL_INSTANCES, "tp": 1024, "pp": 1024, "chips": 100_000, "token_budget": 10_000_000,
    "max_batch_seqs": 1_000_000, "block_tokens": 65_536, "price_per_hour_usd": 1e6, "power_idle_w": 1e8,
    "power_max_w": 1e8, "ttft_s": 1e6, "tpot_s": 1e6, "attainment": 1.0, "sample_interval_s": 1e9,
    "interval_s": 1e9, "window_s": 1e9, "percentile": 100.0, "reconfigure_delay_s": 1e9, "patience_windows": 1000,
    "ep": 1024, "micro_batches": 64,
}
#: Keys of a pool that an AFD pool sets per group instead (under attention: and ffn:).
GROUP_KEYS = ("hardware", "tp", "pp", "ep", "chips", "engine")


def check_keys(d: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    """``d`` as a mapping holding only ``allowed`` keys (else a ConfigError naming ``where`` and the key)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__} {d!r}")
    for k in d:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {k!r}; allowed keys are {', '.join(allowed)}")
    return d


def number(d: Mapping[str, Any], key: str, where: str, default: Any = None, *, integer: bool = False,
           minimum: float = 0.0, strict: bool = True) -> Any:
    """``d[key]`` as a number >= ``minimum`` (> 0 when ``strict`` and 0) under its ceiling, or ``default``."""
    v = d.get(key)
    if v is None:  # absent or an explicit null: the default (None for optional keys)
        v = default
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok or not math.isfinite(v) or v < minimum or (strict and v == minimum == 0):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key}: expected {kind} >= {minimum}{' (> 0)' if strict and minimum == 0 else ''}, "
                          f"got {v!r}{yaml_number_hint(v)}")
    limit = _CEILINGS.get(key)
    if limit is not None and v > limit:
        raise ConfigError(f"{where}.{key}: {v!r} is above the limit of {limit:,g}; use a smaller value")
    return v


def text(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    """``d[key]`` as a string (or ``default``)."""
    v = d.get(key, default)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {v!r}")
    return v
