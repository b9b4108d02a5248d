"""Each LPU's own micro-architecture parameter set, read from data shipped in the package or a user's file.

``data/microarch.toml`` holds one table per LPU preset: every value with its
source, the uncertain ([U]) ones with the plausible ``range`` they may take,
and the chip's native precision. ``data/calibrated.json`` (written by
``twinfer calibrate-lpu``) replaces the fitted values and lists the parameter
sets that stay consistent with the measurements, which span the uncertainty
bands. A user LPU (``--hardware-file``) brings a ``microarch`` table, either
complete or on top of a named preset (``microarch_based_on``): no LPU takes
another chip's parameters unless it says so.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from twinfer.errors import ConfigError
from twinfer.hardware.specs import LpuSpec

_TOML = "microarch.toml"
CALIBRATED_FILE = "calibrated.json"


@dataclass(frozen=True)
class MicroarchSet:
    """One chip's micro-architecture values, their sources, [U] ranges and calibration-consistent sets."""

    chip: str
    values: Mapping[str, float]
    sources: Mapping[str, str]
    ranges: Mapping[str, tuple[float, float]]  # [U] parameters: plausible (low, high)
    precision: tuple[str, str, str]  # native (weights, activations, kv_cache)
    band_sets: tuple[Mapping[str, float], ...]  # parameter overrides spanning the uncertainty band
    calibrated: bool  # band_sets come from a fit to measurements (else: the ends of the ranges)

    def band_overrides(self) -> tuple[Mapping[str, float], ...]:
        """Parameter sets to evaluate for a band: calibrated consistent sets, or the low and high ends of the ranges."""
        if self.band_sets:
            return self.band_sets
        return ({k: lo for k, (lo, _) in self.ranges.items()}, {k: hi for k, (_, hi) in self.ranges.items()})


def _parse_table(name: str, body: Mapping[str, Any], origin: str) -> tuple[dict, dict, dict, tuple[str, str, str]]:
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    ranges: dict[str, tuple[float, float]] = {}
    prec = ("int8", "fp16", "fp16")
    for key, raw in body.items():
        where = f"{origin}: {name}.{key}"
        if key == "precision":
            prec = (str(raw["weights"]), str(raw["activations"]), str(raw["kv_cache"]))
            continue
        if not isinstance(raw, Mapping) or "value" not in raw:
            raise ConfigError(f"{where}: expected {{ value = ..., source = \"...\" }}")
        values[key] = raw["value"]
        sources[key] = str(raw.get("source", origin))
        if "range" in raw:
            lo, hi = raw["range"]
            if not lo <= raw["value"] <= hi:
                raise ConfigError(f"{where}: value {raw['value']} lies outside its range [{lo}, {hi}]")
            ranges[key] = (lo, hi)
    return values, sources, ranges, prec


@lru_cache(maxsize=1)
def calibrated_data() -> Mapping[str, Any]:
    """The shipped calibration (``data/calibrated.json``); empty when none was written."""
    f = resources.files("twinfer.lpu").joinpath("data").joinpath(CALIBRATED_FILE)
    if not f.is_file():
        return {}
    return json.loads(f.read_text(encoding="utf-8"))


@lru_cache(maxsize=2)
def shipped_sets(calibrated: bool = True) -> Mapping[str, MicroarchSet]:
    """Every LPU preset's parameter set, calibrated values applied (``calibrated=False``: as in the TOML)."""
    text = resources.files("twinfer.lpu").joinpath("data").joinpath(_TOML).read_text(encoding="utf-8")
    cal = calibrated_data().get("chips", {}) if calibrated else {}
    out: dict[str, MicroarchSet] = {}
    for name, body in tomllib.loads(text).items():
        values, sources, ranges, prec = _parse_table(name, body, f"twinfer/lpu/data/{_TOML}")
        entry = cal.get(name)
        bands: tuple[Mapping[str, float], ...] = ()
        if entry:
            for k, v in entry["fitted"].items():
                values[k] = v
                sources[k] = f"calibrated by twinfer calibrate-lpu ({entry['source']}); was: {sources.get(k, '')}"
            bands = tuple(entry["consistent_sets"])
        out[name] = MicroarchSet(chip=name, values=values, sources=sources, ranges=ranges, precision=prec,
                                 band_sets=bands, calibrated=bool(entry))
    return out


def _preset_name(name: str) -> str:
    """The canonical preset name of ``name`` (an alias such as ``tsp``), or ``name`` when no preset has it."""
    from twinfer.errors import UnknownNameError
    from twinfer.hardware.registry import get_hardware

    try:
        return get_hardware(name).name
    except UnknownNameError:
        return name


def microarch_for(spec: LpuSpec, field_names: tuple[str, ...]) -> MicroarchSet:
    """The parameter set of ``spec``: its own ``microarch`` table (user file) or its shipped preset set.

    ``field_names`` are the parameters a chip needs (``ChipParams`` fields); a
    user table without ``microarch_based_on`` must give them all.
    """
    sets = shipped_sets()
    if not spec.microarch and not spec.microarch_based_on:
        if spec.name in sets:
            return sets[spec.name]
        raise ConfigError(
            f"LPU {spec.name!r} has no micro-architecture parameters; in its hardware file add "
            f"`microarch_based_on = \"groq-tsp-v1\"` (start from a preset's set: {', '.join(sorted(sets))}) "
            f"and/or a `microarch` table with fields: {', '.join(field_names)}"
        )
    unknown = sorted(set(spec.microarch) - set(field_names))
    if unknown:
        raise ConfigError(f"LPU {spec.name!r}: unknown microarch field(s) {unknown}; known: {', '.join(field_names)}")
    if spec.microarch_based_on:
        base = sets.get(spec.microarch_based_on) or sets.get(_preset_name(spec.microarch_based_on))
        if base is None:
            raise ConfigError(f"LPU {spec.name!r}: microarch_based_on = {spec.microarch_based_on!r} is not an LPU "
                              f"with a parameter set; use one of {', '.join(sorted(sets))}")
    else:
        missing = [f for f in field_names if f not in spec.microarch]
        if missing:
            raise ConfigError(f"LPU {spec.name!r}: microarch table lacks {', '.join(missing)}; give them or add "
                              f"`microarch_based_on = \"groq-tsp-v1\"` to start from a preset's set")
        base = None
    values = dict(base.values) if base else {}
    sources = dict(base.sources) if base else {}
    for k, v in spec.microarch.items():
        values[k] = v
        sources[k] = spec.sources.get(f"microarch.{k}", "user hardware file")
    ranges = {k: r for k, r in (base.ranges.items() if base else ()) if k not in spec.microarch}
    bands = tuple({k: v for k, v in s.items() if k not in spec.microarch} for s in base.band_sets) if base else ()
    return MicroarchSet(chip=spec.name, values=values, sources=sources, ranges=ranges,
                        precision=base.precision if base else ("int8", "fp16", "fp16"), band_sets=bands,
                        calibrated=bool(base and base.calibrated))
