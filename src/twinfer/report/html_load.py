"""Find and read what ``twinfer report`` was given: a simulation's output, a sweep, or a plan.

* a simulation folder (``twinfer simulate --out DIR``): ``summary.json``,
  per-request Parquet (one row per request, a ``fleet`` column) and
  ``series.json`` (queue lengths over time per fleet and pool);
* a sweep folder (``twinfer sweep``): Parquet result parts, one row per
  scenario, possibly in sub-folders;
* a plan (``twinfer plan``): a JSON file with the Pareto frontier, the
  recommendation and the rate table, optionally beside its sweep's Parquet.

The readers only parse: they keep the files' values as they are (the report
must show the numbers in the files, not recomputed ones) and record a SHA-256
of every file read so the report names exactly what it was built from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinfer.errors import DataError

#: Names the simulator gives its summary file.
SUMMARY_NAMES = ("summary.json",)
#: Per-request columns the report plots (the rest of the Parquet file is not read: it can be large).
REQUEST_COLUMNS = ("fleet", "ttft_s", "tpot_s", "e2e_s", "kv_transfer_start_s", "kv_transfer_end_s")
#: The simulator's sampled queue lengths per fleet and pool (optional).
SERIES_NAME = "series.json"
#: Top-level keys that mark a JSON file as a plan (``twinfer plan``'s plan.json, schema twinfer.plan/1).
PLAN_KEYS = ("pareto", "recommended", "candidates", "by_rate")


@dataclass(frozen=True)
class SourceFile:
    """A results file the report read: its short name in the page, path, and content hash."""

    name: str  # the key cells cite in data-src ("summary.json", "plan.json", "sweep")
    path: str  # as given on the command line / found in the folder
    sha256: str


@dataclass(frozen=True, eq=False)
class SimResults:
    """One ``twinfer simulate --out`` folder: its summary and per-request columns."""

    folder: Path
    summary: dict[str, Any]
    requests: dict[str, np.ndarray]  # REQUEST_COLUMNS -> values, all parts concatenated; {} when absent
    files: tuple[SourceFile, ...]
    series: dict[str, Any] = field(default_factory=dict)  # series.json: {fleet: {role: {t_s, waiting, running}}}
    kind: str = "simulation"


@dataclass(frozen=True, eq=False)
class SweepResults:
    """A sweep's result parts: one row per scenario, in sorted-file then row order."""

    folder: Path
    rows: tuple[dict[str, Any], ...]
    columns: tuple[str, ...]
    files: tuple[SourceFile, ...]
    kind: str = "sweep"


@dataclass(frozen=True, eq=False)
class PlanResults:
    """A plan JSON and, when it sits beside its sweep's Parquet parts, that sweep."""

    path: Path
    plan: dict[str, Any]
    sweep: SweepResults | None
    files: tuple[SourceFile, ...] = field(default=())
    kind: str = "plan"


Results = SimResults | SweepResults | PlanResults


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object from ``path`` or raise DataError saying which file is wrong."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as JSON ({exc}); pass a twinfer results file") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object at the top level, found {type(doc).__name__}")
    return doc


def _parquet_files(folder: Path) -> list[Path]:
    """Parquet files under ``folder`` (recursively), sorted by relative path for a fixed order."""
    return sorted(folder.rglob("*.parquet"), key=lambda p: p.relative_to(folder).as_posix())


def _read_parquet(files: list[Path], columns: tuple[str, ...] | None = None) -> Any:
    """Concatenate Parquet files into one pyarrow Table (schemas are unified; missing columns -> null).

    ``columns`` limits what is read to those names (the ones present in each file).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for path in files:
        try:
            names = None if columns is None else [c for c in columns if c in pq.read_schema(path).names]
            tables.append(pq.read_table(path, columns=names))
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(f"{path}: cannot read it as Parquet ({exc})") from exc
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")


def _is_plan(doc: dict[str, Any]) -> bool:
    return str(doc.get("schema", "")).startswith("twinfer.plan") or all(key in doc for key in PLAN_KEYS)


def _is_plan_file(path: Path) -> bool:
    """True when ``path`` holds a plan JSON (other JSON files in a folder are ignored)."""
    try:
        return _is_plan(_read_json(path))
    except DataError:
        return False


def load_sim(folder: Path) -> SimResults:
    """Read a simulation output folder (``summary.json`` + per-request Parquet)."""
    summary_path = next((folder / n for n in SUMMARY_NAMES if (folder / n).is_file()), None)
    if summary_path is None:
        raise DataError(f"{folder}: no summary.json; pass the folder written by `twinfer simulate --out`")
    summary = _read_json(summary_path)
    files = [SourceFile("summary.json", str(summary_path), _sha256(summary_path))]
    series: dict[str, Any] = {}
    if (folder / SERIES_NAME).is_file():
        series = _read_json(folder / SERIES_NAME)
        files.append(SourceFile(SERIES_NAME, str(folder / SERIES_NAME), _sha256(folder / SERIES_NAME)))
    parts = _parquet_files(folder)
    requests: dict[str, np.ndarray] = {}
    if parts:
        tab = _read_parquet(parts, REQUEST_COLUMNS)
        for name in tab.column_names:
            requests[name] = tab.column(name).to_numpy(zero_copy_only=False)
        files += [SourceFile(p.relative_to(folder).as_posix(), str(p), _sha256(p)) for p in parts]
    return SimResults(folder=folder, summary=summary, requests=requests, files=tuple(files), series=series)


def load_sweep(folder: Path) -> SweepResults:
    """Read every Parquet result part under a sweep folder, one row per scenario."""
    parts = _parquet_files(folder)
    if not parts:
        raise DataError(f"{folder}: no Parquet result parts found; pass the folder `twinfer sweep` wrote")
    from twinfer.plan.store import dedupe_rows

    tab = _read_parquet(parts)
    rows = tuple(dedupe_rows(tab.to_pylist())[0])  # one row per scenario id (ok rows win)
    files = tuple(SourceFile(p.relative_to(folder).as_posix(), str(p), _sha256(p)) for p in parts)
    return SweepResults(folder=folder, rows=rows, columns=tuple(tab.column_names), files=files)


def load_plan(path: Path) -> PlanResults:
    """Read a plan JSON, with its sweep when Parquet parts sit in the same folder."""
    plan = _read_json(path)
    sweep = load_sweep(path.parent) if _parquet_files(path.parent) else None
    files = (SourceFile("plan.json", str(path), _sha256(path)),) + (sweep.files if sweep else ())
    return PlanResults(path=path, plan=plan, sweep=sweep, files=files)


def load_results(path: Path | str) -> Results:
    """Detect what ``path`` is (simulation folder, sweep folder, plan JSON) and read it.

    A summary JSON or per-request Parquet file given directly stands for its
    folder. Raises DataError, naming the path, when it is none of these.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass a `twinfer simulate --out` folder, a sweep folder or a plan JSON")
    if path.is_file():
        if path.suffix == ".json":
            doc = _read_json(path)
            if _is_plan(doc):
                return load_plan(path)
            if path.name in SUMMARY_NAMES or "fleets" in doc:
                return load_sim(path.parent)
            raise DataError(
                f"{path}: not a twinfer summary (no 'fleets') nor a plan (no schema 'twinfer.plan/...')"
            )
        if path.suffix == ".parquet":
            folder = path.parent
            return load_sim(folder) if (folder / "summary.json").is_file() else load_sweep(folder)
        raise DataError(f"{path}: expected a folder, a .json or a .parquet file")
    if any((path / n).is_file() for n in SUMMARY_NAMES):
        return load_sim(path)
    plans = sorted(p for p in path.glob("*.json") if _is_plan_file(p))
    if plans:
        return load_plan(plans[0])
    return load_sweep(path)
