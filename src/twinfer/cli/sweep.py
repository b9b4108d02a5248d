"""``twinfer sweep``: run a grid or list of scenarios in parallel, streaming results to Parquet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from twinfer.cli.hardware import load_extra

DEFAULT_RUNNER = "twinfer.plan.runner:run_scenario"


def check_scenarios(jobs: list) -> None:  # type: ignore[type-arg]
    """Parse every job's scenario before anything runs, so a malformed override is refused up front (exit 2)."""
    from pathlib import Path

    from twinfer.errors import ConfigError
    from twinfer.sim.scenario import Scenario

    for job in jobs:
        try:
            Scenario.from_dict(job.scenario, where=f"scenario {job.index}",
                               base_dir=Path(job.base_dir) if job.base_dir else None)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (sweep overrides {job.params!r})") from None


def sweep_command(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML: a base scenario plus a grid and/or cases.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the Parquet part files (resumes if it exists).")],
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Worker processes (default: CPU cores; 1 runs in-process).")
    ] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Run on a local Ray instance (pip install 'twinfer\\[ray]').")] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Join the Ray cluster at ADDR (e.g. ray://head:10001 or auto).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Scenarios per Parquet part file.")] = 32,
    flush_s: Annotated[float, typer.Option("--flush-s", help="Also write a part file at least this often (s).")] = 10.0,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Rerun scenarios recorded with an error.")] = False,
    extend: Annotated[
        bool, typer.Option("--extend", help="Allow --out to already hold results of another sweep.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only expand the sweep and say what would run.")] = False,
    hardware_file: Annotated[
        Path | None, typer.Option("--hardware-file", help="Your own chips and links (TOML/YAML) for every scenario.")
    ] = None,
    runner: Annotated[
        str, typer.Option("--runner", hidden=True, help="module:function run per scenario (for tests/plug-ins).")
    ] = "twinfer.plan.runner:run_scenario",  # DEFAULT_RUNNER
) -> None:
    """Run every scenario of SWEEP_FILE (local processes by default, or Ray) into --out as Parquet.

    Rerunning the same command after an interruption skips the scenarios already
    written. Query the results with `twinfer results query "SELECT ..." --dir OUT`.
    """
    import json
    import signal

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from twinfer.cli import checks
    from twinfer.plan.grid import expand, load_sweep
    from twinfer.plan.store import ResultStore
    from twinfer.plan.sweep import run_sweep

    checks.number_in_range("--workers", workers, 1, 4096)
    checks.number_in_range("--batch-size", batch_size, 1, 1_000_000)
    checks.number_in_range("--flush-s", flush_s, 0, 1e6, low_open=True, unit=" s")
    checks.output_folder(out, "--out")
    spec = load_sweep(sweep_file)
    from twinfer.sim.scenario import resolve_hardware_file

    if hardware_file is not None:
        from dataclasses import replace

        path = resolve_hardware_file({"hardware_file": str(hardware_file)}, "--hardware-file", Path.cwd())
        spec = replace(spec, base={**spec.base, "hardware_file": path})
    base_hardware = resolve_hardware_file(spec.base, f"{sweep_file}: base", sweep_file.parent)
    if base_hardware is not None:
        load_extra(Path(base_hardware))  # says on stderr which presets the file replaces
    jobs = expand(spec)
    if runner == DEFAULT_RUNNER:
        check_scenarios(jobs)
    store = ResultStore(out)
    err = Console(stderr=True)
    n_workers = workers or os.cpu_count() or 1
    if dry_run:
        done = store.done()
        todo = sum(1 for j in jobs if j.scenario_id not in done)
        typer.echo(f"sweep {spec.name!r}: {len(jobs)} scenarios, {len(jobs) - todo} already in {out}, {todo} to run")
        return
    store.check_free()  # before sweep.json is rewritten
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"name": spec.name, "scenarios": len(jobs), "grid": spec.grid, "cases": spec.cases,
                "seeds": spec.seeds, "base": spec.base}
    (out / "sweep.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    stop_requested: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        """First Ctrl-C/SIGTERM: finish cleanly (stop workers, write what is done); a second one: abort now."""
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    try:
        with Progress(*columns, console=err) as bar:
            task = bar.add_task(spec.name, total=None, failed=0)

            def progress(finished: int, total: int, failed: int) -> None:
                bar.update(task, completed=finished, total=total, failed=failed)

            outcome = run_sweep(
                jobs, store, runner=runner, workers=n_workers, backend="ray" if (ray or ray_address) else "local",
                ray_address=ray_address, batch_size=batch_size, flush_s=flush_s, retry_failed=retry_failed,
                extend=extend, progress=progress, stop=lambda: bool(stop_requested),
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    err.print(
        f"{outcome.ran} run ({outcome.failed} failed), {outcome.skipped} already done, "
        f"{outcome.total} in the sweep; results in {out}/part-*.parquet"
    )
    if outcome.failed:
        err.print(f'see the errors: twinfer results query "SELECT scenario_id, error FROM results '
                  f"WHERE status = 'error'\" --dir {out}")
    if outcome.interrupted:
        err.print("interrupted: rerun the same command to finish the sweep")
        raise typer.Abort()  # twinfer.cli.main turns it into exit status 130
    if outcome.ran and outcome.failed == outcome.ran:
        typer.echo(f"error: every scenario that ran failed ({outcome.failed} of {outcome.ran}); fix the cause "
                   "shown by the query above and rerun with --retry-failed", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``twinfer sweep`` to ``app``."""
    app.command("sweep")(sweep_command)
