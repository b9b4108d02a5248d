"""``twinfer results``: query sweep and plan results (Parquet part files) with DuckDB SQL.

The files of a results folder are loaded as one table named ``results``
(columns: see :mod:`twinfer.plan.store`; one row per scenario id). Queries are
read-only and sandboxed: one SELECT (or WITH/DESCRIBE/SHOW/EXPLAIN) statement,
no access to other files, the network or extensions. Examples::

    twinfer results query "SELECT status, count(*) FROM results GROUP BY status" --dir out/
    twinfer results query "SELECT \\"workload.arrivals.rate_per_s\\" AS rate, avg(goodput_rps)
        FROM results WHERE status = 'ok' GROUP BY rate ORDER BY rate" --dir out/
    twinfer results query "SELECT scenario_id, error FROM results WHERE status = 'error'" --dir out/
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twinfer.cli.console import out_console

results_app = typer.Typer(help="Query sweep/plan results (Parquet) with DuckDB SQL.", no_args_is_help=True)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return "" if value is None else str(value)


@results_app.command("query")
def query_command(
    sql: Annotated[str, typer.Argument(help="DuckDB SQL; the result files are the view `results`.")],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Results folder (a sweep's --out).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
) -> None:
    """Run SQL over the Parquet results in --dir and print the rows."""
    import csv
    import json
    import sys

    from twinfer.errors import ConfigError
    from twinfer.plan.store import query

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format {fmt!r}: use table, csv or json")
    names, rows = query(directory, sql)
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    elif fmt == "json":
        typer.echo(json.dumps([dict(zip(names, r, strict=True)) for r in rows], indent=2, default=str))
    else:
        from rich import box
        from rich.table import Table

        table = Table(caption=f"{len(rows)} rows", box=box.SIMPLE_HEAD)
        for name in names:
            table.add_column(name, overflow="fold")
        for r in rows:
            table.add_row(*(_fmt(v) for v in r))
        out_console(200).print(table)


@results_app.command("columns")
def columns_command(
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Results folder (a sweep's --out).")],
) -> None:
    """List the columns of the `results` view and their types."""
    from twinfer.plan.store import query

    _, rows = query(directory, "DESCRIBE results")
    for r in rows:
        typer.echo(f"{r[0]}\t{r[1]}")


def register(app: typer.Typer) -> None:
    """Add ``twinfer results`` to ``app``."""
    app.add_typer(results_app, name="results")
