"""``twinfer simulate``: run a scenario (or the built-in one) and print one comparison table.

Files (only when asked): ``--out DIR`` writes ``requests.parquet`` (one row per
request and fleet, with a ``fleet`` column; columns in twinfer.sim.results),
``summary.json`` and ``series.json`` (queue-length samples per pool);
``--trace FILE`` writes a Chrome/Perfetto trace of batches per instance and KV
transfers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from twinfer.cli.console import out_console


def _progress_factory(total_fleets: int):  # pragma: no cover - interactive display
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), transient=True)
    tasks: dict[str, Any] = {}

    def update(done: int, total: int, fleet: str) -> None:
        if fleet not in tasks:
            tasks[fleet] = prog.add_task(fleet, total=total)
        prog.update(tasks[fleet], completed=done)

    return prog, update


def _fmt(v: Any, kind: str) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if kind == "ms":
        return f"{v * 1e3:,.0f}" if v >= 0.1 else f"{v * 1e3:,.1f}"
    if kind == "pct":
        return f"{v * 100:.0f}%"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "usd":
        return f"{v:,.2f}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


COLUMNS = [
    ("fleet", "fleet", "str"), ("devices", "devices", "int"), ("$/h", "price_per_hour_usd", "num"),
    ("TTFT p50 ms", "ttft_p50_s", "ms"), ("TTFT p99 ms", "ttft_p99_s", "ms"), ("TPOT p50 ms", "tpot_p50_s", "ms"),
    ("TPOT p99 ms", "tpot_p99_s", "ms"), ("TBT p99 ms", "tbt_p99_s", "ms"), ("out tok/s", "throughput_output_tok_s", "num"),
    ("tok/s/user", "tokens_per_s_per_user_mean", "num"), ("SLO met", "slo_attainment", "pct"),
    ("goodput req/s", "goodput_rps", "num"), ("$/M out tok", "cost_per_m_output_tok_usd", "usd"),
    ("J/out tok", "energy_per_output_tok_j", "num"), ("tok/s/MW", "tokens_per_s_per_mw", "num"),
]


def comparison_table(summaries: list[dict[str, Any]], title: str) -> Any:
    """A rich Table with one row per fleet (the columns above) and a pool detail line."""
    from rich.table import Table

    table = Table(title=title)
    for head, _, kind in COLUMNS:
        table.add_column(head, justify="left" if kind == "str" else "right")
    for s in summaries:
        table.add_row(*[str(s.get(key, "-")) if kind == "str" else _fmt(s.get(key), kind) for _, key, kind in COLUMNS])
    return table


def pool_lines(summaries: list[dict[str, Any]]) -> list[str]:
    """One line per fleet: per-pool hardware, utilisation and when KV/batch caps bound."""
    lines = []
    for s in summaries:
        parts = []
        for role in ("mixed", "prefill", "decode"):
            k = f"pool.{role}"
            if f"{k}.utilisation" not in s:
                continue
            parts.append(
                f"{role}: {s[f'{k}.instances']}x {s[f'{k}.hardware']} busy {s[f'{k}.utilisation'] * 100:.0f}%, "
                f"KV {s[f'{k}.kv_capacity_tokens']:,} tok/inst (KV-bound {s[f'{k}.kv_blocked_frac'] * 100:.0f}%, "
                f"batch-cap-bound {s[f'{k}.batch_full_frac'] * 100:.0f}%), {s[f'{k}.mean_batch_seqs']:.1f} seqs/step"
                + _speculative_part(s, k))
            if f"{k}.afd" in s:  # an attention/FFN-disaggregated pool: name its groups
                parts[-1] += f" (AFD: {s[f'{k}.afd']})"
        extra = f"; KV moved {s['kv_bytes_transferred'] / 1e9:,.1f} GB, link busy {s['kv_link_utilisation'] * 100:.0f}%" \
            if s.get("kv_bytes_transferred") else ""
        extra += prefix_text(s)
        lines.append(f"{s['fleet']}: " + "; ".join(parts) + extra +
                     (f"; {s['rejected']} rejected" if s.get("rejected") else "") +
                     (f"; {s['preemptions']} preemptions" if s.get("preemptions") else ""))
    return lines


def prefix_text(s: dict[str, Any]) -> str:
    """The prefix-cache part of a fleet's pool line (empty for a fleet without a prefix cache)."""
    if "prefix_hit_rate" not in s:
        return ""
    text = (f"; prefix cache hit {_fmt(s['prefix_hit_rate'], 'pct')} of prompt tokens, saved "
            f"{s['prefix_saved_prefill_s']:,.1f} s of prefill")
    if s.get("prefix_tier_hit_tokens"):
        text += f" ({s['prefix_tier_hit_tokens']:,} tokens reloaded from offload tiers in {s['prefix_reload_s']:.2f} s)"
    best = s.get("prefix_route_best_frac")
    if best == best and best is not None:
        text += (f", router chose a longest-prefix instance for {_fmt(best, 'pct')} of requests "
                 f"({_fmt(s['prefix_route_cached_frac'], 'pct')} of the best cached blocks)")
    return text


AUTOSCALE_COLUMNS = [
    ("fleet", "fleet", "str"), ("instances min", "autoscale.min_instances", "int"),
    ("peak", "autoscale.peak_instances", "int"), ("instance-h", "autoscale.instance_hours", "num"),
    ("cost $", "autoscale.cost_usd", "usd"), ("SLO met", "slo_attainment", "pct"), ("TTFT p99 ms", "ttft_p99_s", "ms"),
    ("| static instances", "autoscale.static_instances", "int"), ("instance-h", "autoscale.static_instance_hours", "num"),
    ("cost $", "autoscale.static_cost_usd", "usd"), ("SLO met", "autoscale.static_slo_attainment", "pct"),
    ("TTFT p99 ms", "autoscale.static_ttft_p99_s", "ms"), ("| saving", "autoscale.saving_fraction", "pct"),
    ("add/rm/move", "autoscale.adds", "changes"),
]


def autoscale_table(summaries: list[dict[str, Any]]) -> Any:
    """Autoscaled fleets against the same fleets held static at their peak, side by side (None when none autoscaled)."""
    from rich.table import Table

    scaled = [s for s in summaries if "autoscale.policy" in s]
    if not scaled:
        return None
    table = Table(title="autoscaled vs the same fleet static at its peak (cost over each run)")
    for head, _, kind in AUTOSCALE_COLUMNS:
        table.add_column(head, justify="left" if kind == "str" else "right")
    for s in scaled:
        changes = f"{s['autoscale.adds']}/{s['autoscale.removes']}/{s['autoscale.moves']}"
        table.add_row(*[str(s[key]) if kind == "str" else changes if kind == "changes" else _fmt(s.get(key), kind)
                        for _, key, kind in AUTOSCALE_COLUMNS])
    return table


def _speculative_part(s: dict[str, Any], k: str) -> str:
    """``, speculative eagle k=4: 3.13 tokens per verify step (3.13 expected)`` for a speculative pool, else ``""``."""
    sp = f"{k}.speculative"
    if f"{sp}.k" not in s:
        return ""
    return (f", speculative {s[f'{sp}.method']} k={s[f'{sp}.k']}: {s[f'{sp}.tokens_per_step']:.2f} tokens per "
            f"verify step ({s[f'{sp}.expected_tokens_per_step']:.2f} expected)")


def verdict(summaries: list[dict[str, Any]], slo: Any) -> str:
    """One line: which fleets meet the SLOs and the cheapest of them per output token, or that none does."""
    target = f"TTFT <= {slo.ttft_s * 1e3:.0f} ms and TPOT <= {slo.tpot_s * 1e3:.0f} ms for >= {slo.attainment:.0%}"
    ok = [s for s in summaries if (s.get("slo_attainment") or 0.0) >= slo.attainment]
    if not ok:
        best = max(summaries, key=lambda s: s.get("slo_attainment") or 0.0)
        return (f"verdict: no fleet meets the SLOs ({target} of requests); the closest, {best['fleet']}, meets "
                f"them for {(best.get('slo_attainment') or 0.0):.0%}. Their $/M tokens compare fleets that all "
                "fail: add capacity or relax the SLOs before choosing by cost.")
    def cost(s: dict[str, Any]) -> float:
        c = s.get("cost_per_m_output_tok_usd")
        return c if isinstance(c, int | float) and c == c else float("inf")

    cheapest = min(ok, key=cost)
    return (f"verdict: {len(ok)} of {len(summaries)} fleets meet the SLOs ({target} of requests); the cheapest "
            f"per output token among them is {cheapest['fleet']} (${cost(cheapest):,.2f}/M).")


def simulate_command(
    scenario: Annotated[str | None, typer.Argument(help="Scenario YAML, or builtin:factory-2026 (default: the built-in comparison).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the workload.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Write requests.parquet, summary.json, series.json here.")] = None,
    trace: Annotated[Path | None, typer.Option("--trace", help="Write a Perfetto/Chrome trace JSON of batches and KV transfers.")] = None,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="Drop malformed trace rows and count them.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON instead of a table.")] = False,
    no_bands: Annotated[bool, typer.Option("--no-bands", help="Skip the LPU uncertainty bands (two extra runs per fleet with an LPU pool).")] = False,
    hardware_file: Annotated[Path | None, typer.Option("--hardware-file", help="Your own chips and links (TOML/YAML, as `twinfer hardware --hardware-file`); the scenario's hardware_file if it has none.")] = None,
) -> None:
    """Simulate fleets serving a workload and compare latency, goodput, cost and energy."""
    import json
    from dataclasses import replace

    from rich.console import Console

    from twinfer.cli import checks
    from twinfer.sim import default_scenario, load_scenario
    from twinfer.sim.run import build_scenario_workload, load_scenario_model, simulate_fleet

    checks.seed(seed)
    checks.output_folder(out, "--out")
    checks.output_file(trace, "--trace")
    console = Console(stderr=True)
    notes: list[str] = []
    if scenario is None:
        scen, notes = default_scenario(hardware_file=hardware_file)
    else:
        scen = load_scenario(scenario, hardware_file)
    from twinfer.hardware import replacement_notes

    notes = [*notes, *replacement_notes(scen.extra_hardware())]
    if skip_bad_rows and scen.workload.trace is not None:
        scen = replace(scen, workload=replace(scen.workload, skip_bad_rows=True))
    workload = build_scenario_workload(scen, seed)
    if getattr(workload, "skipped_rows", 0):
        notes.append(f"skipped {workload.skipped_rows} malformed trace rows")
    model = load_scenario_model(scen)
    cache: dict = {}
    results = []
    interactive = sys.stderr.isatty() and not as_json
    prog = None
    update = None
    if interactive:
        prog, update = _progress_factory(len(scen.fleets))
        prog.start()
    try:
        for fleet in scen.fleets:
            results.append(simulate_fleet(scen, fleet, seed, update, workload=workload, model=model,
                                          cost_cache=cache, record_timeline=trace is not None))
    finally:
        if prog is not None:
            prog.stop()
    if not no_bands:
        from twinfer.sim.lpu_bands import add_lpu_bands

        add_lpu_bands(scen, results, seed, workload=workload, model=model, cost_cache=cache)
    summaries = [r.summary for r in results]
    if out is not None:
        import pyarrow.parquet as pq

        from twinfer.sim.export import requests_table, series_document, summary_document

        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(requests_table(results), out / "requests.parquet")
        from twinfer.report.html_inputs_doc import inputs_document

        doc = summary_document(scen.name, seed, results, notes)
        # The inputs (model, workload, hardware with the source of each number, LPU partitions)
        # make the results folder, and the report built from it, stand alone.
        doc["inputs"] = inputs_document(scen, model, workload, cache)
        (out / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
        (out / "series.json").write_text(json.dumps(series_document(results)) + "\n")
    if trace is not None:
        from twinfer.sim.timeline import chrome_trace

        trace.parent.mkdir(parents=True, exist_ok=True)
        trace.write_text(json.dumps(chrome_trace(results)) + "\n")
    if as_json:
        typer.echo(json.dumps({"scenario": scen.name, "seed": seed, "notes": notes, "fleets": summaries},
                              indent=2, default=float))
        return
    wl = workload
    title = (f"{scen.name}: {model.name}, {len(wl.arrival_s):,} requests "
             f"({wl.mean_rate_per_s:.1f} req/s, mean {wl.mean_prompt_tokens:,.0f} in / {wl.mean_output_tokens:,.0f} out), "
             f"SLO TTFT <= {scen.slo.ttft_s * 1e3:.0f} ms, TPOT <= {scen.slo.tpot_s * 1e3:.0f} ms")
    table_out = out_console(220)
    table_out.print(comparison_table(summaries, title))
    for line in pool_lines(summaries):
        table_out.print(f"  {line}", highlight=False)
    scaled = autoscale_table(summaries)
    if scaled is not None:
        table_out.print(scaled)
    from twinfer.sim.lpu_bands import band_lines

    for line in band_lines(summaries):
        table_out.print(f"  {line}", highlight=False)
    for note in notes:
        table_out.print(f"  note: {note}", highlight=False, markup=False)
    table_out.print(verdict(summaries, scen.slo), highlight=False)
    if out is not None:
        console.print(f"wrote {out}/requests.parquet, summary.json, series.json")
    if trace is not None:
        console.print(f"wrote {trace} (open in https://ui.perfetto.dev)")


def register(app: typer.Typer) -> None:
    """Add ``twinfer simulate`` to ``app``."""
    app.command("simulate")(simulate_command)
