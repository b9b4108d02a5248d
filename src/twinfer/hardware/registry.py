"""Look up hardware presets by name: GPUs and LPUs with :func:`get_hardware`, links with :func:`get_link`, racks with :func:`get_rack`.

The presets live in ``presets.toml`` beside this module (data, with a source
per value). A user's own file, read with :func:`load_hardware_file`, is passed
explicitly as ``extra``; there is no global registry to mutate.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import cast

from twinfer.errors import UnknownNameError
from twinfer.hardware.loader import HardwareSet, parse_hardware_tables
from twinfer.hardware.specs import HardwareSpec, LinkSpec, RackSpec


@lru_cache(maxsize=1)
def presets() -> HardwareSet:
    """The shipped presets (parsed once; specs are frozen so sharing them is safe)."""
    text = resources.files("twinfer.hardware").joinpath("presets.toml").read_text(encoding="utf-8")
    return parse_hardware_tables(tomllib.loads(text), "twinfer/hardware/presets.toml")


def _resolve(name: str, table: dict[str, object], aliases: dict[str, str]) -> str | None:
    key = name.strip().lower()
    if key in table:
        return key
    return aliases.get(key)


def _merged(extra: HardwareSet | None) -> tuple[dict, dict, dict, dict]:
    """(chips, links, aliases, racks): the presets with the user's entries on top."""
    base = presets()
    chips, links, aliases, racks = dict(base.chips), dict(base.links), dict(base.aliases), dict(base.racks)
    if extra is not None:
        chips.update(extra.chips)
        links.update(extra.links)
        racks.update(extra.racks)
        aliases.update(extra.aliases)
        for name in (*extra.chips, *extra.links, *extra.racks):  # a user entry shadows a preset alias of its name
            aliases.pop(name.lower(), None)
    return chips, links, aliases, racks


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

    ``extra`` adds a user's chips (from :func:`load_hardware_file`); they win over presets.
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
    """Preset aliases that resolve to ``name``."""
    return sorted(a for a, n in presets().aliases.items() if n == name)
