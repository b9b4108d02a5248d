"""``twinfer report``: one self-contained HTML file from a simulation, a sweep or a plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    results: Annotated[Path, typer.Argument(
        help="A `twinfer simulate --out` folder (or its summary.json), a sweep folder, or a plan JSON.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write an HTML report (opens offline: plotly.js is inlined) of simulation, sweep or plan results."""
    from twinfer.cli.checks import output_file
    from twinfer.report.html_report import write_report

    output_file(out, "--out")

    path = write_report(results, out)
    size_mb = path.stat().st_size / 1e6
    typer.echo(f"wrote {path} ({size_mb:.1f} MB)")


def register(app: typer.Typer) -> None:
    """Add ``twinfer report`` to ``app``."""
    app.command("report")(report_command)
