"""``twinfer plan``: search fleets for a model, workload and SLOs; print the choice, write Parquet + JSON."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from twinfer.cli.console import out_console


def _money(v: Any) -> str:
    return "-" if v is None else f"${v:,.2f}"


def _secs(v: Any, scale: float = 1.0, unit: str = "s") -> str:
    return "-" if v is None else f"{v * scale:.3g} {unit}"


def print_plan(plan: dict[str, Any], top: int = 10) -> None:
    """The terminal view of a plan: best fleets at the target rate, then the choice per rate."""

    from rich import box
    from rich.table import Table

    con = out_console(140)
    target = f"{plan['target_rate_per_s']:g}"
    pct = plan["slo"]["latency_percentile"]
    s = plan["search"]
    con.print(f"[bold]{plan['name']}[/]: {plan['model']}, objective {plan['objective']}, SLO "
              f"TTFT {plan['slo']['ttft_s']:g} s / TPOT {plan['slo']['tpot_s'] * 1e3:g} ms at "
              f"{plan['slo']['percentile']:g} %; {s['candidates']} fleets x {len(plan['rates_per_s'])} rates, "
              f"{s['pruned']} pruned by bounds/limits ({', '.join(f'{k} {v}' for k, v in sorted(s['pruned_by'].items()))}), "
              f"{s['simulated']} simulated ({s['failed']} failed)")
    rec = plan["recommended"]["key"] if plan["recommended"] else None
    rows = [c for c in plan["candidates"] if c["by_rate"][target]["feasible"]]
    rows.sort(key=lambda c: (c["price_per_hour_usd"], c["key"]))
    shown = rows[:top]
    if rec is not None and rec not in {c["key"] for c in shown}:  # the objective's pick, below the cut
        shown += [c for c in rows if c["key"] == rec]
    table = Table(title=f"Feasible fleets at {target} req/s (cheapest {min(top, len(rows))} of {len(rows)}, by $/h"
                        f"{'; the recommended one last' if len(shown) > top else ''})",
                  caption=f"* recommended; TTFT/TPOT at {pct}; SLO = share of requests meeting both; goodput = "
                          "highest grid rate met (req/s); kW = peak power; P = on the Pareto frontier",
                  box=box.SIMPLE_HEAD)
    for col in ("", "fleet", "$/h", "dev", "kW", "TTFT", "TPOT", "SLO", "goodput", "$/M tok", "P"):
        table.add_column(col, justify="left" if col in ("", "fleet") else "right", no_wrap=col == "fleet")
    for c in shown:
        r = c["by_rate"][target]
        table.add_row("*" if c["key"] == rec else "", c["key"], _money(c["price_per_hour_usd"]), str(c["devices"]),
                      f"{c['power_max_w'] / 1e3:.1f}", _secs(r["ttft_s"]), _secs(r["tpot_s"], 1e3, "ms"),
                      f"{r['slo_attainment']:.0%}", f"{c['goodput_rps']:g}",
                      _money(r["cost_per_m_output_tok_usd"]), "P" if c["pareto"] else "")
    con.print(table)
    if plan["recommended"]:
        con.print(f"[bold green]Recommended:[/] {plan['recommended']['why']}")
    else:
        con.print("[bold red]No fleet in the search space meets the SLOs at the target rate[/]: widen the "
                  "hardware, parallelism, instance counts or limits, or relax the SLOs.")
    by_rate = Table(title="Choice as the request rate grows", box=box.SIMPLE_HEAD)
    for col in ("req/s", "recommended fleet", "$/h", "devices", "feasible / simulated"):
        by_rate.add_column(col, justify="left" if col == "recommended fleet" else "right",
                           no_wrap=col == "recommended fleet")
    for row in plan["by_rate"]:
        by_rate.add_row(f"{row['rate_per_s']:g}", row["recommended"] or "(none feasible)",
                        _money(row["price_per_hour_usd"]), str(row["devices"] or "-"),
                        f"{row['feasible']} / {row['simulated']}")
    con.print(by_rate)


def plan_command(
    plan_file: Annotated[Path, typer.Argument(help="Plan YAML: model, workload, rates, SLOs, objective, hardware, limits.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for results/*.parquet and plan.json (resumes).")],
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="Worker processes (default: CPU cores).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Simulate on a local Ray instance (pip install 'twinfer\\[ray]').")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Join the Ray cluster at ADDR.")] = None,
    top: Annotated[int, typer.Option("--top", help="Rows of the feasible-fleet table.")] = 10,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only enumerate and prune; say what would be simulated.")] = False,
    runner: Annotated[str | None, typer.Option("--runner", hidden=True, help="module:function per scenario (tests).")] = None,
    hardware_file: Annotated[
        Path | None, typer.Option("--hardware-file", help="Your own chips and links (TOML/YAML) the plan may name.")
    ] = None,
) -> None:
    """Find the fleet that meets the SLOs best by the objective; write OUT/plan.json and OUT/results/.

    Configurations are enumerated (aggregated / disaggregated, hardware, TP or LPU
    chips, instance counts, batch caps), pruned by memory fit, limits and provable
    throughput/latency bounds, and the survivors simulated at every rate.
    """
    import json

    from rich.console import Console

    from twinfer.cli import checks
    from twinfer.plan.planner import prune
    from twinfer.plan.space import load_plan

    checks.number_in_range("--workers", workers, 1, 4096)
    checks.number_in_range("--top", top, 1, 1_000_000)
    checks.output_folder(out, "--out")
    spec = load_plan(plan_file)
    if hardware_file is not None:
        from dataclasses import replace

        from twinfer.sim.scenario import resolve_hardware_file

        spec = replace(spec, hardware_file=resolve_hardware_file({"hardware_file": str(hardware_file)},
                                                                 "--hardware-file", Path.cwd()))
    from twinfer.hardware import replacement_notes

    for note in replacement_notes(spec.extra_hardware()):
        typer.echo(f"note: {note}", err=True)
    if dry_run:
        report = prune(spec)
        tags: dict[str, int] = {}
        for reason in report.reasons.values():
            tags[reason.split(":", 1)[0]] = tags.get(reason.split(":", 1)[0], 0) + 1
        typer.echo(f"{len(report.candidates)} fleets x {len(spec.rates_per_s)} rates; pruned {len(report.reasons)} "
                   f"({tags}); {len(report.survivors)} pairs survive ({spec.strategy} search simulates "
                   f"{'all of them' if spec.strategy == 'exhaustive' else 'about log2(counts) + 1 per group of fleets'})")
        return
    err = Console(stderr=True)
    started_ray = False
    if ray or ray_address:  # one Ray session for every search round (the sweep engine reuses it)
        try:
            import logging

            import ray as ray_mod
        except ImportError as exc:
            from twinfer.errors import ConfigError
            from twinfer.plan.sweep import RAY_HINT

            raise ConfigError(f"--ray needs the optional Ray extra: {RAY_HINT}") from exc
        if not ray_mod.is_initialized():
            if ray_address:
                ray_mod.init(address=ray_address, logging_level=logging.WARNING)
            else:
                ray_mod.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
            started_ray = True
    try:
        plan = _run(spec, out, runner, workers, ray or bool(ray_address), ray_address, err)
    finally:
        if started_ray:
            ray_mod.shutdown()
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print_plan(plan, top=top)
    err.print(f"wrote {out}/plan.json and {out}/results/part-*.parquet "
              f'(query: twinfer results query "SELECT * FROM results" --dir {out}/results)')
    searched = plan["search"]
    if searched["simulated"] and searched["failed"] >= searched["simulated"]:
        typer.echo(f"error: every simulation of the plan failed ({searched['failed']}); see why: twinfer results "
                   f"query \"SELECT scenario_id, error FROM results WHERE status = 'error'\" --dir {out}/results",
                   err=True)
        raise typer.Exit(1)


def _run(spec: Any, out: Path, runner: str | None, workers: int | None, use_ray: bool, ray_address: str | None,
         err: Any) -> dict[str, Any]:
    """run_plan with a progress bar on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from twinfer.plan.planner import run_plan

    with Progress(TextColumn("[bold]simulating, round {task.fields[round]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("plan", total=None, round=0)
        rounds = RoundProgress(lambda done, total, n: bar.update(task, completed=done, total=total, round=n))
        return run_plan(
            spec, out / "results", runner=runner, workers=workers or os.cpu_count() or 1,
            backend="ray" if use_ray else "local", ray_address=ray_address, progress=rounds,
        )


class RoundProgress:
    """Adds up the per-round progress of a plan's search (each round is one sweep that counts from 0)
    into one bar over all rounds so far: ``show(done, total, round)``."""

    def __init__(self, show: Any) -> None:
        self.show = show
        self.before = 0  # scenarios finished in earlier rounds
        self.round = 0
        self.last_done = 0

    def __call__(self, done: int, total: int, failed: int) -> None:
        if done == 0:  # a new round starts (run_sweep reports 0 first)
            self.before += self.last_done
            self.round += 1
        self.last_done = done
        self.show(self.before + done, self.before + total, self.round)


def register(app: typer.Typer) -> None:
    """Add ``twinfer plan`` to ``app``."""
    app.command("plan")(plan_command)
