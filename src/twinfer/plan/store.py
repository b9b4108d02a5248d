"""The result store of a sweep: a folder of Parquet part files, written atomically, queried with DuckDB.

Each finished batch of scenarios becomes one ``part-NNNNNN.parquet`` file,
written under a temporary name and renamed, so a killed sweep leaves only
whole part files behind and a rerun knows exactly which ids are done.

Columns of every row (see also the metrics of the runner's summary):

==================  ========  ==============================================================
column              type      meaning
==================  ========  ==============================================================
scenario_id         string    16 hex digits: sha256 of the scenario's canonical JSON + seed
sweep_index         int64     position of the scenario in the sweep's expansion order
seed                int64     the simulation seed
status              string    ``ok`` or ``error``
error               string    the error (type: message) when status is ``error``, else null
wall_s              double    wall time the scenario took in its worker (not deterministic)
params_json         string    this scenario's overrides as JSON (dotted key -> value)
scenario_json       string    the whole scenario as canonical JSON
"<dotted key>"      any       one column per override key, e.g. "workload.arrivals.rate_per_s"
<metric>            any       one column per key of the runner's (flattened) summary dict
==================  ========  ==============================================================

Metric and override columns can differ between part files (an error row has
no metrics); the ``results`` view reads them with ``union_by_name``, so a
missing column reads as NULL. Override columns have dots in their names:
quote them in SQL, ``SELECT "workload.arrivals.rate_per_s" AS rate ...``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError, DataError

PART_GLOB = "part-*.parquet"
#: The write lock of a results folder (holds the pid of the sweep writing into it).
LOCK_NAME = ".twinfer.lock"
#: Bookkeeping columns, in the order they lead every part file.
BASE_COLUMNS = (
    "scenario_id", "sweep_index", "seed", "status", "error", "wall_s", "params_json", "scenario_json",
)


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists become JSON text."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value, sort_keys=True)
        else:
            out[name] = value
    return out


def _column(values: list[Any]) -> Any:
    """A pyarrow array of ``values``; mixed or unsupported types fall back to JSON text."""
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int} and kinds:
        return pa.array(values, type=pa.int64())
    if kinds <= {int, float} and kinds:
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    if kinds <= {bool}:
        return pa.array(values, type=pa.bool_() if kinds else pa.null())
    if kinds <= {str}:
        return pa.array(values, type=pa.string())
    return pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values],
                    type=pa.string())


def rows_to_table(rows: list[dict[str, Any]]) -> Any:
    """A pyarrow Table with the bookkeeping columns first, then every other key seen, in first-seen order."""
    import pyarrow as pa

    names = list(BASE_COLUMNS)
    for row in rows:
        for key in row:
            if key not in names:
                names.append(key)
    fixed = {"scenario_id": pa.string(), "sweep_index": pa.int64(), "seed": pa.int64(), "status": pa.string(),
             "error": pa.string(), "wall_s": pa.float64(), "params_json": pa.string(), "scenario_json": pa.string()}
    return pa.table({
        name: pa.array([row.get(name) for row in rows], type=fixed[name]) if name in fixed
        else _column([row.get(name) for row in rows])
        for name in names
    })


class ResultStore:
    """A sweep's output folder: which scenario ids are done, and appending finished batches."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def parts(self) -> list[Path]:
        """The finished part files, in name order."""
        return sorted(self.folder.glob(PART_GLOB)) if self.folder.exists() else []

    def done(self) -> dict[str, str]:
        """scenario_id -> status of every row already written."""
        import pyarrow.parquet as pq

        out: dict[str, str] = {}
        for part in self.parts():
            try:
                table = pq.read_table(part, columns=["scenario_id", "status"])
            except Exception as exc:  # a part file is written by rename, so this means outside damage
                raise DataError(f"{part}: unreadable result file ({exc}); move it away and rerun") from exc
            for sid, status in zip(table["scenario_id"].to_pylist(), table["status"].to_pylist(), strict=True):
                if out.get(sid) != "ok":  # a duplicate id (two writers once shared the folder): ok wins
                    out[sid] = status
        return out

    def prepare(self) -> None:
        """Create the folder and remove temporary files left by a killed writer."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for tmp in self.folder.glob(".part-*.tmp"):
            tmp.unlink()

    def check_free(self) -> None:
        """Raise the "in use by pid N" error now if another process holds the lock (then let it go)."""
        if self.folder.is_dir():
            with self.locked():
                pass

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's write lock (``.twinfer.lock``) while the block runs; refuse if another process has it.

        The lock is a POSIX record lock (``lockf``) on the file: it belongs to this process (forked
        workers do not inherit it) and the kernel drops it when the process dies, so the pid left in
        the file by a killed sweep is stale and the next sweep takes the lock over.
        """
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock (sweeps into one folder must not overlap)
            yield
            return
        path = self.folder / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                raise ConfigError(f"{self.folder} is in use by pid {holder} (another twinfer sweep or plan is "
                                  "writing into it); wait for it to finish or choose another --out") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _next_name(self) -> str:
        numbers = [int(p.stem.split("-")[1]) for p in self.parts() if p.stem.split("-")[1].isdigit()]
        return f"part-{(max(numbers) + 1) if numbers else 0:06d}.parquet"

    def write_part(self, rows: list[dict[str, Any]]) -> Path:
        """Write ``rows`` as the next part file: to a temporary name, fsync, then rename."""
        import pyarrow.parquet as pq

        name = self._next_name()
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(rows_to_table(rows), tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        final = self.folder / name
        os.replace(tmp, final)
        return final

    def drop_failed(self) -> int:
        """Rewrite part files without their ``error`` rows (so those scenarios rerun); returns how many."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        dropped = 0
        for part in self.parts():
            table = pq.read_table(part)
            keep = pc.equal(table["status"], "ok")
            n_bad = table.num_rows - int(pc.sum(keep).as_py() or 0)
            if n_bad == 0:
                continue
            dropped += n_bad
            if n_bad == table.num_rows:
                part.unlink()
                continue
            tmp = part.with_name(f".{part.name}.tmp")
            pq.write_table(table.filter(keep), tmp)
            os.replace(tmp, part)
        return dropped


#: Statement types ``twinfer results query`` runs; anything else (COPY, ATTACH, INSTALL, CREATE, SET ...) is refused.
READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")


def _unreadable_part(parts: list[Path]) -> Path | None:
    """The first part file pyarrow cannot read the footer of (outside damage), or None."""
    import pyarrow.parquet as pq

    for part in parts:
        try:
            pq.read_metadata(part)
        except Exception:
            return part
    return None


def connect(folder: str | Path) -> Any:
    """A sandboxed DuckDB connection with a table ``results``: every part in ``folder``, one row per scenario id.

    The rows are loaded into memory first; then the connection loses all access to
    files and the network (``enable_external_access=false``, no extension autoload or
    autoinstall) and its configuration is locked, so a query can read nothing but
    ``results``. A scenario id written twice (two sweeps once shared a folder) keeps
    one row: its ``ok`` row when there is one, else the latest.
    """
    import duckdb

    folder = Path(folder)
    parts = sorted(folder.glob(PART_GLOB)) if folder.is_dir() else []
    if not parts:
        raise ConfigError(f"{folder}: no result files ({PART_GLOB}); run `twinfer sweep ... --out {folder}` first")
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
    try:
        con.execute(
            "CREATE TABLE results AS SELECT * EXCLUDE (_rank, _file, _row) FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY scenario_id ORDER BY (status = 'ok') DESC, _file DESC,"
            "  _row DESC) AS _rank FROM ("
            "    SELECT * EXCLUDE (filename, file_row_number), filename AS _file, file_row_number AS _row"
            f"    FROM read_parquet([{files}], union_by_name = true, filename = true, file_row_number = true)"
            "  )) WHERE _rank = 1 ORDER BY _file, _row")
    except duckdb.Error as exc:
        bad = _unreadable_part(parts)
        where = f"{bad}: unreadable result file" if bad else f"{folder}: cannot read the result files"
        raise DataError(f"{where} ({str(exc).splitlines()[0]}); move it away and rerun the sweep") from None
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _check_read_only(con: Any, sql: str) -> None:
    """Refuse empty SQL, several statements, and anything but SELECT/EXPLAIN, with a message saying why."""
    import duckdb

    if not sql.strip():
        raise ConfigError('the SQL is empty; e.g. twinfer results query "SELECT * FROM results LIMIT 10" --dir OUT')
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ConfigError(f"give one SQL statement, got {len(statements)}; run them one at a time")
    kind = statements[0].type.name
    if kind not in READ_ONLY_STATEMENTS:
        word = sql.split()[0].upper()  # what the user wrote (DuckDB types INSTALL as LOAD)
        raise ConfigError(f"results query is read-only: {word} statements are refused (only SELECT, WITH ... "
                          "SELECT, DESCRIBE, SHOW and EXPLAIN); to export, use --format csv > FILE")


def query(folder: str | Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only ``sql`` statement over the ``results`` table of ``folder``; (column names, rows).

    The sandbox of :func:`connect` applies: no file, network or extension access.
    """
    import duckdb

    con = connect(folder)
    try:
        _check_read_only(con, sql)
        cur = con.execute(sql)
        names = [d[0] for d in cur.description] if cur.description else []
        return names, cur.fetchall()
    except duckdb.PermissionException as exc:
        raise ConfigError(f"query refused: it reaches outside the results ({str(exc).splitlines()[0]}); "
                          "results query reads only the `results` table") from None
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def dedupe_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """One row per ``scenario_id`` (its ``ok`` row when there is one, else the last), in first-seen order.

    Returns the rows kept and how many duplicates were dropped; rows without an id are all kept.
    """
    best: dict[Any, int] = {}
    for i, row in enumerate(rows):
        sid = row.get("scenario_id")
        if sid is None:
            continue
        j = best.get(sid)
        if j is None or row.get("status") == "ok" or rows[j].get("status") != "ok":
            best[sid] = i
    keep = {i for i in best.values()}
    kept = [row for i, row in enumerate(rows) if row.get("scenario_id") is None or i in keep]
    return kept, len(rows) - len(kept)
