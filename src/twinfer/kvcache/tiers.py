"""KV offload tiers: capacity and bandwidth of host DRAM, local SSD and shared pools, with sources.

A :class:`TierSpec` is one storage level below the accelerator's memory, per
GPU. Presets live in ``tiers.toml`` beside this module; each value there is a
``{value, source}`` table, marked ``uncertain`` (with a ``range``) when it is a
guess. An LPU has no host-attached tier in this model: its KV lives in on-chip
SRAM (hundreds of MB per chip), so its prefix cache is tiny and a miss is
recomputed; model host offload for LPUs with your own TierSpec if a system has
one.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError, UnknownNameError

_NUMBERS = ("capacity_bytes", "read_bw_bytes_per_s", "write_bw_bytes_per_s", "latency_s")


@dataclass(frozen=True)
class TierSpec:
    """One offload tier, per GPU: how much KV it holds and how fast it moves to and from the GPU."""

    name: str
    capacity_bytes: float  # KV bytes the tier can hold
    read_bw_bytes_per_s: float  # tier -> device (reload)
    write_bw_bytes_per_s: float  # device -> tier (offload)
    latency_s: float  # fixed cost of one transfer
    shared: bool = False  # one pool for the whole fleet (Mooncake Store) instead of per instance
    description: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)  # field -> where its value comes from
    uncertain: tuple[str, ...] = ()  # fields whose value is a guess or an upper bound
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # field -> plausible range

    def for_gpus(self, gpus: int) -> TierSpec:
        """The tier of an instance spanning ``gpus`` GPUs: capacity and bandwidth times ``gpus``."""
        if gpus < 1:
            raise ConfigError(f"tier {self.name!r}: an instance needs >= 1 GPU, got {gpus}")
        return replace(
            self,
            capacity_bytes=self.capacity_bytes * gpus,
            read_bw_bytes_per_s=self.read_bw_bytes_per_s * gpus,
            write_bw_bytes_per_s=self.write_bw_bytes_per_s * gpus,
        )


def _field(raw: Any, where: str) -> tuple[float, str, bool, tuple[float, float] | None]:
    if not isinstance(raw, Mapping) or "value" not in raw or "source" not in raw:
        raise ConfigError(f"{where}: expected a table {{value = ..., source = \"...\"}}, got {raw!r}")
    extra = set(raw) - {"value", "source", "uncertain", "range"}
    if extra:
        raise ConfigError(f"{where}: unknown keys {sorted(extra)}; allowed: value, source, uncertain, range")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: value must be a finite number >= 0, got {value!r}")
    span = raw.get("range")
    if span is not None and (not isinstance(span, list) or len(span) != 2 or not span[0] <= value <= span[1]):
        raise ConfigError(f"{where}: range must be [low, high] around the value, got {span!r}")
    bounds = (float(span[0]), float(span[1])) if span is not None else None
    return float(value), str(raw["source"]), bool(raw.get("uncertain", False)), bounds


def _tier(name: str, body: Any, origin: str) -> TierSpec:
    where = f"{origin}: tier.{name}"
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where}: expected a table of fields")
    unknown = set(body) - {*_NUMBERS, "shared", "description"}
    if unknown:
        raise ConfigError(f"{where}: unknown fields {sorted(unknown)}; allowed: {', '.join(_NUMBERS)}, shared, description")
    missing = [k for k in _NUMBERS if k not in body]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    uncertain: list[str] = []
    ranges: dict[str, tuple[float, float]] = {}
    for key in _NUMBERS:
        values[key], sources[key], guess, span = _field(body[key], f"{where}.{key}")
        if guess:
            uncertain.append(key)
        if span is not None:
            ranges[key] = span
    for key in ("read_bw_bytes_per_s", "write_bw_bytes_per_s"):
        if values[key] <= 0:
            raise ConfigError(f"{where}.{key}: must be > 0")
    return TierSpec(
        name=name,
        shared=bool(body.get("shared", False)),
        description=str(body.get("description", "")),
        sources=sources,
        uncertain=tuple(uncertain),
        ranges=ranges,
        **values,
    )


def load_tiers(path: str | Path | None = None) -> dict[str, TierSpec]:
    """Tier presets from a TOML file (``[tier.NAME]`` tables); the shipped ``tiers.toml`` by default."""
    if path is None:
        text = (resources.files("twinfer.kvcache") / "tiers.toml").read_text(encoding="utf-8")
        origin = "tiers.toml"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"tier file {str(p)!r} does not exist")
        text, origin = p.read_text(encoding="utf-8"), str(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    tables = data.get("tier")
    if not isinstance(tables, Mapping) or set(data) != {"tier"}:
        raise ConfigError(f"{origin}: expected only [tier.NAME] tables")
    return {name: _tier(name, body, origin) for name, body in tables.items()}


def get_tier(name: str) -> TierSpec:
    """A shipped tier preset by name."""
    presets = load_tiers()
    if name not in presets:
        raise UnknownNameError(f"unknown KV tier {name!r}; available: {', '.join(sorted(presets))}")
    return presets[name]
