"""Checks of command-line values at the boundary: numbers in range and output paths that can be written.

Every check raises :class:`~twinfer.errors.ConfigError` naming the option and
the fix, so :func:`twinfer.cli.main` prints one line and exits 2 before any
model or simulator sees the value.
"""

from __future__ import annotations

import math
from pathlib import Path

from twinfer.errors import ConfigError

#: Largest seed numpy's default_rng accepts without a sequence (any non-negative int works; this keeps
#: seeds printable and the same on every platform).
MAX_SEED = 2**63 - 1


def number_in_range(option: str, value: float | int | None, low: float, high: float, *,
                    low_open: bool = False, unit: str = "") -> None:
    """Refuse a NaN, infinite or out-of-range ``value`` of ``option`` (None passes: an unset option)."""
    if value is None:
        return
    bad = (isinstance(value, float) and not math.isfinite(value)) or value > high or \
        (value <= low if low_open else value < low)
    if bad:
        rng = f"{'>' if low_open else '>='} {low:g} and <= {high:g}"
        raise ConfigError(f"{option}: expected a number {rng}{unit}, got {value!r}")


def seed(value: int) -> int:
    """A workload seed must be a non-negative integer (numpy's generators take no negative seed)."""
    if value < 0 or value > MAX_SEED:
        raise ConfigError(f"--seed: expected an integer from 0 to {MAX_SEED}, got {value}; e.g. --seed 0")
    return value


def output_file(path: Path | None, option: str) -> None:
    """``option`` names a file to (over)write: refuse a folder, or a parent that is a file."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file path such as {path / 'out.json'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a folder; choose another path")
            break


def output_folder(path: Path | None, option: str) -> None:
    """``option`` names a folder to create or fill: refuse an existing file (here or above)."""
    if path is None:
        return
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"is inside the file {p}"
                raise ConfigError(f"{option} {path}: {what}; give a folder path (it is created if missing)")
            break


def calibration_warning(path: Path, hardware: str) -> str | None:
    """A warning when the calibration file at ``path`` was measured on a CPU or on other hardware than
    ``hardware`` (its efficiencies then describe that device, e.g. a CPU's: estimates become CPU-slow)."""
    import json

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the loader reports unreadable files
    if not isinstance(doc, dict):
        return None
    device, ref = doc.get("device"), doc.get("reference_hardware")
    name = doc.get("device_name") or device
    if device == "cpu":
        return (f"warning: {path} was measured on a CPU ({name}); applied to {hardware} it predicts CPU "
                f"efficiencies. Run twinfer calibrate on that GPU itself, or drop --calibration")
    if isinstance(ref, str) and ref != hardware:
        return (f"warning: {path} was measured on {name} (relative to {ref}), not on {hardware}; its "
                "efficiencies may not carry over")
    return None
