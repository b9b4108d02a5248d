"""``twinfer calibrate-lpu``: fit the LPU's uncertain parameters to published measurements and report the fit."""

from __future__ import annotations

from typing import Annotated

import typer

from twinfer.cli.console import out_console


def calibrate_lpu_command(
    hardware: Annotated[str, typer.Option("--hardware", help="LPU preset whose [U] parameters to fit.")] = "groq-tsp-v1",
    measurements: Annotated[str | None, typer.Option("--measurements", help="Measurements TOML (default: the one shipped in twinfer/lpu/data).")] = None,
    write: Annotated[bool, typer.Option("--write", help="Write the fit into the package's twinfer/lpu/data/calibrated.json (what the presets ship with).")] = False,
    output: Annotated[str | None, typer.Option("--output", help="Write the fit as JSON to this file instead.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Fit HARDWARE's uncertain micro-architecture parameters to measurements; report values, residuals, bands."""
    import json
    from importlib import resources
    from pathlib import Path

    from twinfer.lpu.calibrate import calibrate, calibration_json, load_measurements
    from twinfer.lpu.microarch import CALIBRATED_FILE

    cal = calibrate(hardware, load_measurements(measurements))
    data = calibration_json([cal])
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    target = None
    if write:
        target = Path(str(resources.files("twinfer.lpu").joinpath("data").joinpath(CALIBRATED_FILE)))
    if output:
        target = Path(output)
    if target is not None:
        target.write_text(text, encoding="utf-8")
    if as_json:
        typer.echo(text)
        return
    _print(cal, target)


def _fmt(metric: str, v: float) -> str:
    return f"{v * 1e3:.3f} ms" if metric.endswith("_s") else f"{v:.0f} tok/s"


def _print(cal, target) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    con = out_console()
    con.print(f"[bold]{cal.hardware}[/bold]: {cal.evaluations:,} closed-form evaluations "
              f"(one partition plan per measurement, no compiles)")
    t = Table(title="fitted [U] parameters (best set) and their span over all consistent sets")
    for col in ("parameter", "fitted", "consistent span"):
        t.add_column(col)
    for k, v in sorted(cal.fitted.items()):
        lo, hi = cal.spans[k]
        t.add_row(k, f"{v:.6g}", f"{lo:.6g} .. {hi:.6g}")
    con.print(t)
    r = Table(title="measurements: best-fit prediction, error, and the band of the consistent sets")
    for col in ("id", "role", "measured", "predicted", "error", "band", "inside"):
        r.add_column(col)
    for row in cal.rows:
        m = row.meas
        r.add_row(m.id, m.role, _fmt(m.metric, m.value), _fmt(m.metric, row.predicted), f"{row.error:+.1%}",
                  f"{_fmt(m.metric, row.band[0])} .. {_fmt(m.metric, row.band[1])}", "yes" if row.inside_band else "no")
    con.print(r)
    for m, why in cal.skipped:
        con.print(f"skipped {m.id} ({m.role}): {why}")
    con.print(f"The fit is not unique: {cal.consistent_count} parameter sets on the grid fit the 'fit' rows within "
              "their tolerance plus the best fit's own worst residual. A few per-user speeds cannot separate "
              "on-chip costs (MXM install rate, stage sync) from fixed per-token costs (host loop); the bands "
              "span those sets.")
    if target is not None:
        con.print(f"written to {target}")


def register(app: typer.Typer) -> None:
    """Add ``twinfer calibrate-lpu`` to ``app``."""
    app.command("calibrate-lpu")(calibrate_lpu_command)
