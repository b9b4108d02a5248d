"""Build hardware specs from TOML/YAML tables: the shipped presets and users' own files.

Both use one layout: top-level tables ``gpu``, ``lpu``, ``link`` and ``rack``,
each mapping a name to its fields. A field is either a plain value or a table
``{value = ..., source = "...", uncertain = true, range = [low, high]}`` so
every number can carry where it came from and, when it is a guess, the span
it may lie in (a range needs ``uncertain = true`` and must hold the value).
Plain values in a user file get the file as their source. Mistakes raise
:class:`ConfigError` naming the file, the entry and the field.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError
from twinfer.hardware.specs import GpuSpec, HardwareSpec, LinkSpec, LpuSpec, RackSpec

_KINDS: dict[str, type] = {"gpu": GpuSpec, "lpu": LpuSpec, "link": LinkSpec, "rack": RackSpec}
#: Fields that hold a mapping of name -> number (dtype -> rate; an LPU's micro-architecture parameters).
_RATE_FIELDS = {"peak_flops_per_s", "peak_ops_per_s", "microarch"}
#: Largest value any hardware field may hold: 1e18 is an exaFLOP/s or an exabyte on one chip or link.
MAX_FIELD_VALUE = 1e18
#: Fields filled by the loader itself, never by a file.
_META_FIELDS = {"name", "sources", "uncertain", "ranges", "kind"}


@dataclass(frozen=True)
class HardwareSet:
    """Chips (GPUs and LPUs) and links read from one file, keyed by name, with their aliases."""

    chips: Mapping[str, HardwareSpec] = field(default_factory=dict)
    links: Mapping[str, LinkSpec] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # alias -> name (chips, links and racks)
    racks: Mapping[str, RackSpec] = field(default_factory=dict)
    origin: str = ""  # the file it was read from (named in error messages)

    def tables(self) -> dict[str, Mapping[str, Any]]:
        """The entries by family: chip (GPUs and LPUs share one name space), link, rack."""
        return {"chip": self.chips, "link": self.links, "rack": self.racks}

    def family(self, name: str) -> tuple[str, Mapping[str, Any]]:
        """(family, table) of the entry called exactly ``name``; ("", {}) when there is none."""
        return next(((f, t) for f, t in self.tables().items() if name in t), ("", {}))


def _unwrap(raw: Any, where: str, default_source: str) -> tuple[Any, str, bool, Any]:
    """Split a field into (value, source, uncertain, range or None)."""
    if isinstance(raw, Mapping) and "value" in raw:
        extra = set(raw) - {"value", "source", "uncertain", "range"}
        if extra:
            raise ConfigError(f"{where}: unknown keys {sorted(extra)}; a field table may hold value, source, uncertain, range")
        return raw["value"], str(raw.get("source", default_source)), bool(raw.get("uncertain", False)), raw.get("range")
    return raw, default_source, False, None


def _range(raw: Any, value: float, uncertain: bool, where: str, cls: type) -> tuple[float, float]:
    """Check a ``range = [low, high]`` beside ``value``: two numbers, low <= value <= high, on an uncertain field."""
    if "ranges" not in {f.name for f in dataclasses.fields(cls)}:
        raise ConfigError(f"{where}.range: these entries do not take ranges yet; give one value and uncertain = true")
    if not uncertain:
        raise ConfigError(f"{where}.range: a range belongs to a guessed value; add uncertain = true (and say why in source)")
    if isinstance(raw, str) or not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ConfigError(f"{where}.range: expected [low, high], got {raw!r}")
    low, high = (float(_number(v, f"{where}.range", want_int=False)) for v in raw)
    if not low <= value <= high:
        raise ConfigError(f"{where}.range: [{low:g}, {high:g}] must hold the value {value:g} (low <= value <= high)")
    return low, high


def _number(value: Any, where: str, want_int: bool, allow_zero: bool = False) -> float | int:
    """Coerce a field to a positive number (YAML reads '80e9' as a string, so parse strings too)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if value > MAX_FIELD_VALUE:
        raise ConfigError(f"{where}: {value!r} is above {MAX_FIELD_VALUE:g}, absurd for one chip or link; "
                          "check the unit (bytes, bytes/s, FLOP/s, W, USD/h)")
    if value < 0 or (value == 0 and not allow_zero
                     and not where.endswith(("power_idle_w", "price_per_hour_usd", "latency_s"))):
        raise ConfigError(f"{where}: must be positive, got {value!r}")
    if want_int:
        if float(value) != int(value):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return int(value)
    return float(value)


def _build(kind: str, name: str, body: Any, origin: str) -> tuple[Any, list[str]]:
    """One spec of ``kind`` from its table; returns the spec and its aliases."""
    where = f"{origin}: {kind}.{name}"
    if not isinstance(body, Mapping):
        raise ConfigError(f"{where}: expected a table of fields, got {type(body).__name__}")
    cls = _KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = [n for n, f in fields.items() if n not in _META_FIELDS
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    kwargs: dict[str, Any] = {"name": name}
    sources: dict[str, str] = {}
    uncertain: list[str] = []
    ranges: dict[str, tuple[float, float]] = {}
    aliases = body.get("aliases", [])
    if isinstance(aliases, str) or not isinstance(aliases, list):
        raise ConfigError(f"{where}.aliases: expected a list of names")
    for key, raw in body.items():
        if key == "aliases":
            continue
        if key not in fields or key in _META_FIELDS:
            allowed = ", ".join(n for n in fields if n not in _META_FIELDS)
            raise ConfigError(f"{where}: unknown field {key!r}; {kind} fields are: {allowed}")
        fwhere = f"{where}.{key}"
        if key in _RATE_FIELDS:
            if not isinstance(raw, Mapping) or "value" in raw:
                raise ConfigError(f"{fwhere}: expected a table of names -> numbers, e.g. {key}.bf16 = 989e12")
            rates = {}
            for dtype, rraw in raw.items():
                value, src, unc, span = _unwrap(rraw, f"{fwhere}.{dtype}", f"user file {origin}")
                rates[str(dtype)] = _number(value, f"{fwhere}.{dtype}", want_int=False, allow_zero=key == "microarch")
                sources[f"{key}.{dtype}"] = src
                if unc:
                    uncertain.append(f"{key}.{dtype}")
                if span is not None:
                    ranges[f"{key}.{dtype}"] = _range(span, rates[str(dtype)], unc, f"{fwhere}.{dtype}", cls)
            if not rates and key != "microarch":
                raise ConfigError(f"{fwhere}: needs at least one dtype rate")
            kwargs[key] = rates
            continue
        value, src, unc, span = _unwrap(raw, fwhere, f"user file {origin}")
        ftype = str(fields[key].type)
        if ftype == "str":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{fwhere}: expected a name, got {value!r}")
            kwargs[key] = value
        else:
            kwargs[key] = _number(value, fwhere, want_int=ftype == "int")
        sources[key] = src
        if unc:
            uncertain.append(key)
        if span is not None:
            if ftype == "str":
                raise ConfigError(f"{fwhere}.range: only numbers take a range")
            ranges[key] = _range(span, kwargs[key], unc, fwhere, cls)
    missing = [n for n in required if n not in kwargs]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    if kwargs.get("power_idle_w", 0) > kwargs.get("power_max_w", math.inf):
        raise ConfigError(f"{where}.power_idle_w: {kwargs['power_idle_w']!r} W is above power_max_w "
                          f"{kwargs['power_max_w']!r} W; idle power must not exceed peak power")
    meta: dict[str, Any] = {"sources": sources, "uncertain": tuple(uncertain)}
    if ranges:
        meta["ranges"] = ranges
    spec = cls(**kwargs, **meta)
    return spec, [str(a) for a in aliases]


def parse_hardware_tables(data: Any, origin: str) -> HardwareSet:
    """Specs from parsed TOML/YAML ``data``; ``origin`` names the file in error messages.

    Names are case-insensitive (lookups are), so within one file two entries of a family may not
    differ only by case, and an alias may name only one entry and no other entry of its family.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: expected top-level tables gpu, lpu, link and/or rack")
    unknown = set(data) - set(_KINDS)
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key(s) {sorted(unknown)}; use gpu, lpu, link, rack")
    chips: dict[str, HardwareSpec] = {}
    links: dict[str, LinkSpec] = {}
    racks: dict[str, RackSpec] = {}
    aliases: dict[str, str] = {}
    for kind, entries in data.items():
        if not isinstance(entries, Mapping):
            raise ConfigError(f"{origin}: {kind} must be a table of named entries")
        for name, body in entries.items():
            spec, names = _build(kind, str(name), body, origin)
            targets: dict[str, dict[str, Any]] = {"link": links, "rack": racks}
            target = targets.get(kind, chips)
            twin = next((n for n in target if n.lower() == spec.name.lower()), None)
            if twin is not None:
                raise ConfigError(f"{origin}: {kind}.{spec.name} and {twin} differ only by case; names are "
                                  "case-insensitive, so rename or merge one of them")
            target[spec.name] = spec
            for alias in names:
                key = alias.strip().lower()
                if aliases.get(key, spec.name) != spec.name:
                    raise ConfigError(f"{origin}: {kind}.{spec.name}: alias {alias!r} is already an alias of "
                                      f"{aliases[key]}; an alias names one entry")
                aliases[key] = spec.name
    found = HardwareSet(chips=chips, links=links, aliases=aliases, racks=racks, origin=origin)
    for key, name in aliases.items():
        _, table = found.family(name)
        other = next((n for n in table if n.lower() == key and n != name), None)
        if other is not None:
            raise ConfigError(f"{origin}: alias {key!r} of {name} is the name of the entry {other}; "
                              "drop the alias or rename one of them")
    return found


def spec_table(spec: HardwareSpec | LinkSpec | RackSpec) -> dict[str, Any]:
    """The table a hardware file holds for ``spec`` (every value; rates and micro-architecture as mappings).

    The inverse of the loader, less the sources: a file built from it, e.g.
    ``{"gpu": {"vr200": {**spec_table(spec), "price_per_hour_usd": 12.0}}}``,
    loads back to the same values. Meta fields and empty ones are left out.
    """
    table: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.name in _META_FIELDS or value is None or value == "" or (isinstance(value, Mapping) and not value):
            continue
        table[f.name] = dict(value) if isinstance(value, Mapping) else value
    return table


def read_hardware_file(path: str | Path) -> HardwareSet:
    """Read users' own chips and links from a ``.toml``, ``.yaml`` or ``.yml`` file (the file alone).

    Same layout as the shipped ``presets.toml``; a field may be a plain number
    (its source becomes the file) or ``{value, source, uncertain}``. Checking its
    names against the presets is :func:`twinfer.hardware.load_hardware_file`'s job.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"hardware file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"hardware file {p}: use a .toml, .yaml or .yml file")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"hardware file {p} is not valid TOML: {exc}") from None
    except ConfigError:
        raise
    except Exception as exc:  # yaml.YAMLError, imported lazily
        raise ConfigError(f"hardware file {p} is not valid YAML: {exc}") from None
    return parse_hardware_tables(data, str(p))
