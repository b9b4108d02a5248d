"""Which chip each pool of a fleet to deploy runs on: a preset, a user's hardware file, or what a run recorded.

``twinfer deploy`` reads a plan or a simulation, whose pools name their chips.
A user chip (a ``--hardware-file`` entry) is found the way the run found it:
an explicit hardware file wins (as ``simulate --hardware-file`` replaces a
scenario's); otherwise a plan's own ``hardware_file`` or, for a simulation, the
specs its ``summary.json`` recorded under ``inputs.hardware``; otherwise the
presets. A name found nowhere is an error that says which file to pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError, TwinferError
from twinfer.hardware import (
    GpuSpec,
    HardwareSet,
    HardwareSpec,
    LpuSpec,
    get_hardware,
    load_hardware_file,
    spec_table,
)
from twinfer.hardware.loader import parse_hardware_tables

#: Recorded spec fields the loader fills itself (a hardware file may not set them).
_LOADER_FIELDS = {"name", "sources", "uncertain", "ranges", "kind"}


def recorded_hardware(recorded: Any, file: Path) -> HardwareSet | None:
    """The chips a simulation's ``summary.json`` recorded (``inputs.hardware``: name -> spec fields), or None.

    They are the specs the run priced and timed, user chips and replaced presets
    included, so a deployment of that run needs no hardware file.
    """
    if not isinstance(recorded, Mapping) or not recorded:
        return None
    tables: dict[str, dict[str, Any]] = {}
    for name, fields in recorded.items():
        if not isinstance(fields, Mapping) or fields.get("kind") not in ("gpu", "lpu"):
            raise ConfigError(f"{file}: inputs.hardware.{name} is not a recorded GPU or LPU spec; rerun "
                              "`twinfer simulate --out DIR` or pass the run's --hardware-file")
        # fields this version's specs do not have (a record from another version) are left out
        known = {f.name for f in dataclasses.fields(GpuSpec if fields["kind"] == "gpu" else LpuSpec)}
        tables.setdefault(str(fields["kind"]), {})[str(name)] = {
            k: v for k, v in fields.items() if k in known - _LOADER_FIELDS and v not in (None, "", {})}
    return parse_hardware_tables(tables, f"{file} (inputs.hardware)")


def plan_hardware(path: Any, file: Path) -> HardwareSet | None:
    """The hardware file a plan searched with (``hardware_file`` in plan.json), loaded; None when it had none."""
    if path is None:
        return None
    try:
        return load_hardware_file(str(path))
    except ConfigError as exc:
        raise ConfigError(f"{file}: the plan's hardware_file: {exc}; pass the file with --hardware-file") from None


def pool_chip(name: str, role: str, fleet: str, extra: HardwareSet | None, recorded_kind: str | None,
              file: Path) -> HardwareSpec:
    """The chip of ``fleet``'s ``role`` pool, checked against the kind the run recorded for it (if any)."""
    try:
        spec = get_hardware(name, extra)
    except TwinferError:
        where = f"hardware file {extra.origin}" if extra is not None and extra.origin else "the presets"
        raise ConfigError(f"{file}: fleet {fleet!r}, {role} pool runs on {name!r}, which is not in {where}; pass "
                          "the hardware file the plan or simulation used with --hardware-file FILE") from None
    if recorded_kind in ("gpu", "lpu") and spec.kind != recorded_kind:
        raise ConfigError(f"{file}: fleet {fleet!r}, {role} pool ran {name!r} as {recorded_kind.upper()}, but "
                          f"the hardware given defines it as {spec.kind.upper()}; pass the file the run used")
    return spec


def is_preset(spec: HardwareSpec) -> bool:
    """Whether ``spec`` is a shipped preset, value for value (sources aside): not a user's chip or replacement."""
    try:
        return spec_table(get_hardware(spec.name)) == spec_table(spec)
    except TwinferError:  # not a preset name
        return False
