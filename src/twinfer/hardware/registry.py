"""Look up hardware presets by name: GPUs and LPUs with :func:`get_hardware`, links with :func:`get_link`, racks with :func:`get_rack`.

The presets live in ``presets.toml`` beside this module (data, with a source
per value). A user's own file, read with :func:`load_hardware_file`, is passed
explicitly as ``extra``; there is no global registry to mutate.

One physical name must mean one spec, so a user entry named like a preset's
canonical name (``[gpu.h100-sxm]``) replaces that preset under all of its names
(``h100``, ``h100-sxm5`` ...), while an entry or alias named like a preset's
*alias* (``[gpu.h100]``) is refused: it would leave the preset's other names on
the shipped chip and give one fleet two different H100s.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import cast

from twinfer.errors import ConfigError, UnknownNameError
from twinfer.hardware.loader import HardwareSet, parse_hardware_tables, read_hardware_file
from twinfer.hardware.specs import HardwareSpec, LinkSpec, RackSpec


@lru_cache(maxsize=1)
def presets() -> HardwareSet:
    """The shipped presets (parsed once; specs are frozen so sharing them is safe)."""
    text = resources.files("twinfer.hardware").joinpath("presets.toml").read_text(encoding="utf-8")
    return parse_hardware_tables(tomllib.loads(text), "twinfer/hardware/presets.toml")


def _exact(name: str, table: Mapping[str, object]) -> str | None:
    """The key of ``table`` equal to ``name`` ignoring case and surrounding spaces, or None."""
    key = name.strip().lower()
    return next((n for n in table if n.lower() == key), None)


def _resolve(name: str, table: dict[str, object], aliases: dict[str, str]) -> str | None:
    return _exact(name, table) or aliases.get(name.strip().lower())


def _merged(extra: HardwareSet | None) -> tuple[dict, dict, dict, dict]:
    """(chips, links, aliases, racks): the presets with the user's entries on top (checked by :func:`check_user_hardware`)."""
    base = presets()
    chips, links, aliases, racks = dict(base.chips), dict(base.links), dict(base.aliases), dict(base.racks)
    if extra is not None:
        check_user_hardware(extra)
        chips.update(extra.chips)
        links.update(extra.links)
        racks.update(extra.racks)
        aliases.update(extra.aliases)
    return chips, links, aliases, racks


def _preset_named(name: str, family: str) -> str | None:
    """The preset of ``family`` (chip, link, rack) that ``name`` means, as its name or an alias; None if none."""
    base = presets()
    table = base.tables()[family]
    found = _exact(name, table)
    if found is not None:
        return found
    target = base.aliases.get(name.strip().lower())
    return target if target in table else None


def _label(spec: object) -> str:
    """The table a spec sits in: gpu, lpu, link or rack."""
    return str(getattr(spec, "kind", "link"))


def replaced_presets(extra: HardwareSet) -> dict[str, str]:
    """User entry name -> the preset it replaces (entries named like a preset's canonical name, any case)."""
    base = presets().tables()
    out = {}
    for family, table in extra.tables().items():
        for name in table:
            found = _exact(name, base[family])
            if found is not None:
                out[name] = found
    return out


def replacement_notes(extra: HardwareSet | None) -> list[str]:
    """One line per preset ``extra`` replaces, naming every name that now means the user's entry."""
    if extra is None:
        return []
    notes = []
    for name, preset in sorted(replaced_presets(extra).items()):
        _, table = extra.family(name)
        names = ", ".join(aliases_of(preset)) or "no aliases"
        notes.append(f"{extra.origin or 'hardware file'}: [{_label(table[name])}.{name}] replaces the preset "
                     f"{preset} under all its names ({preset}, {names})")
    return notes


def check_user_hardware(extra: HardwareSet) -> None:
    """Refuse user entries that would give one physical name two specs; ConfigError saying how to fix it.

    An entry may take a preset's canonical name (it then replaces the preset under
    every alias, and must be of the same kind: a GPU for a GPU). It may not take a
    preset's alias, and its own aliases may not be names or aliases of other presets.
    """
    origin = extra.origin or "hardware file"
    replaced = replaced_presets(extra)
    for family, table in extra.tables().items():
        for name, spec in table.items():
            where = f"{origin}: {_label(spec)}.{name}"
            if name in replaced:
                if name != replaced[name]:
                    raise ConfigError(f"{where}: write the preset's name as it is, [{_label(spec)}.{replaced[name]}], "
                                      "to replace it (names are case-insensitive; one spelling keeps one entry)")
                old = presets().chips.get(replaced[name]) if family == "chip" else None
                if old is not None and old.kind != _label(spec):
                    raise ConfigError(f"{where}: {replaced[name]} is a {old.kind.upper()} preset; a user "
                                      f"{_label(spec)} cannot replace it; give your chip a new name")
                continue
            canonical = _preset_named(name, family)
            if canonical is not None:
                others = ", ".join([canonical, *aliases_of(canonical)])
                raise ConfigError(
                    f"{where}: {name!r} is an alias of the preset {canonical} (names: {others}); an entry under an "
                    f"alias would leave the other names on the preset. Name it [{_label(spec)}.{canonical}] to "
                    f"replace the preset under all its names, or give it a new name")
    for alias, name in extra.aliases.items():
        family, table = extra.family(name)
        where = f"{origin}: {_label(table[name])}.{name}" if family else origin
        canonical = _preset_named(alias, family) if family else None
        if canonical is not None and canonical != replaced.get(name):
            raise ConfigError(f"{where}: alias {alias!r} already names the preset {canonical}; drop it from the "
                              f"aliases (or name the entry [{_label(table[name])}.{canonical}] to replace that preset)")
        target = presets().aliases.get(alias)
        if target is not None and presets().family(target)[0] != family:
            raise ConfigError(f"{where}: alias {alias!r} is an alias of the preset {target} (aliases of chips, "
                              "links and racks share one name space); drop it from the aliases")


def load_hardware_file(path: str | Path) -> HardwareSet:
    """Read users' own chips, links and racks from a ``.toml``, ``.yaml`` or ``.yml`` file, checked against the presets.

    Same layout as the shipped ``presets.toml``; a field may be a plain number
    (its source becomes the file) or ``{value, source, uncertain}``. An entry
    named like a preset replaces it under all its names; one named like a
    preset's alias is refused (see :func:`check_user_hardware`).
    """
    found = read_hardware_file(path)
    check_user_hardware(found)
    return found


def _lookup(kind: str, name: str, table: dict, aliases: dict[str, str], hint: str = "") -> object:
    """The entry of ``table`` called ``name`` or one of its aliases; UnknownNameError listing the presets."""
    key = _resolve(name, table, aliases)
    if key is None or key not in table:
        raise UnknownNameError(
            f"unknown {kind} {name!r}; presets: {', '.join(sorted(table))} "
            f"(add your own {hint}with a --hardware-file TOML/YAML)"
        )
    return table[key]


def get_hardware(name: str | HardwareSpec, extra: HardwareSet | None = None) -> HardwareSpec:
    """The GPU or LPU spec called ``name`` (or an alias: h100 -> h100-sxm); a spec passes through.

    ``extra`` adds a user's chips (from :func:`load_hardware_file`); one named like a preset replaces it.
    """
    if not isinstance(name, str):
        return name
    chips, _, aliases, _ = _merged(extra)
    return cast(HardwareSpec, _lookup("hardware", name, chips, aliases))


def get_link(name: str | LinkSpec, extra: HardwareSet | None = None) -> LinkSpec:
    """The link spec called ``name`` (or an alias: nvlink -> nvlink4, ib -> ib-ndr); a spec passes through."""
    if isinstance(name, LinkSpec):
        return name
    _, links, aliases, _ = _merged(extra)
    return cast(LinkSpec, _lookup("link", name, links, aliases))


def get_rack(name: str | RackSpec, extra: HardwareSet | None = None) -> RackSpec:
    """The rack spec called ``name`` (or an alias: nvl72 -> vr200-nvl72, lpx -> groq3-lpx); a spec passes through."""
    if isinstance(name, RackSpec):
        return name
    _, _, aliases, racks = _merged(extra)
    return cast(RackSpec, _lookup("rack", name, racks, aliases, "[rack.NAME] table "))


def _names(preset: Mapping[str, object], user: Mapping[str, object]) -> list[str]:
    """Preset names sorted, then the user's new ones sorted."""
    base = sorted(preset)
    return base + sorted(n for n in user if n not in base)


def hardware_names(extra: HardwareSet | None = None) -> list[str]:
    """Names of all chips (presets first, then the user's), sorted within each group."""
    return _names(presets().chips, extra.chips if extra else {})


def link_names(extra: HardwareSet | None = None) -> list[str]:
    """Names of all links (presets first, then the user's)."""
    return _names(presets().links, extra.links if extra else {})


def rack_names(extra: HardwareSet | None = None) -> list[str]:
    """Names of all racks (presets first, then the user's)."""
    return _names(presets().racks, extra.racks if extra else {})


def aliases_of(name: str) -> list[str]:
    """Preset aliases that resolve to ``name`` (a preset's canonical name)."""
    return sorted(a for a, n in presets().aliases.items() if n == name)
