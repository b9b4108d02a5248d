"""Report sections for a sweep (Parquet result parts, one row per scenario) and a plan (its JSON, plus its sweep).

Sweep rows are the planner's store rows (:mod:`twinfer.plan.store`): the
bookkeeping columns (``scenario_id``, ``status``, ``error``, ``params_json`` ...),
one column per overridden scenario key (dotted, e.g.
``workload.arrivals.rate_per_s``) and one per metric of the simulator's
flattened summary (``throughput_rps``, ``goodput_rps``, ``ttft_p99_s``,
``cost_per_m_output_tok_usd``, ``avg_power_w`` ...). Tables cite each cell as
``sweep`` + ``/<row>/<column>`` (rows in sorted-part-file order) or
``plan.json`` + a JSON Pointer. The only thing derived here is which sweep
points are Pareto-optimal (a selection, not a number); a plan's own frontier is
shown as the plan wrote it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from twinfer.report import charts
from twinfer.report.html_format import (
    Cell,
    is_number,
    note,
    pointer,
    table,
)
from twinfer.report.html_load import PlanResults, SweepResults
from twinfer.report.html_page import Figure, Section, render_page
from twinfer.report.html_plan import plan_sections

#: Candidate column names, best first, for the quantities the charts need.
RATE_COLS = ("workload.arrivals.rate_per_s", "rate_per_s", "request_rate_per_s", "target_rate_per_s", "rate")
COST_COLS = ("cost_per_m_output_tok_usd", "price_per_hour_usd")
LATENCY_COLS = ("ttft_p99_s", "e2e_p99_s", "tpot_p99_s", "ttft_p50_s")
POWER_COLS = ("avg_power_w", "power_w", "tokens_per_s_per_mw")
THROUGHPUT_COLS = ("throughput_rps", "goodput_rps", "throughput_output_tok_s")
BOOKKEEPING = ("scenario_id", "sweep_index", "seed", "status", "error", "wall_s", "params_json", "scenario_json")
#: Most sweep rows listed in the table (all rows are in the Parquet files; charts use all of them).
MAX_TABLE_ROWS = 300


def pick(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first candidate present in ``columns``, or, failing that, a column ending with one."""
    for c in candidates:
        if c in columns:
            return c
    for c in candidates:
        for col in columns:
            if col.endswith("." + c):
                return col
    return None


def _ok_rows(sweep: SweepResults) -> list[tuple[int, dict[str, Any]]]:
    return [(i, r) for i, r in enumerate(sweep.rows) if r.get("status", "ok") == "ok"]


def _config_label(row: Mapping[str, Any], rate_col: str | None, *, short: bool = True) -> str:
    """A configuration's label: its overrides except the request rate (from ``params_json``).

    When the row names its fleet (the simulator's ``fleet`` metric), overrides of
    the fleet's definition (``fleets.*``) are replaced by that name, which is
    shorter (``short=False`` keeps them: the key that tells configurations apart).
    """
    try:
        params = json.loads(row.get("params_json") or "{}")
    except (TypeError, json.JSONDecodeError):
        params = {}
    fleet = row.get("fleet") if short else None
    items = [f"{k}={v}" for k, v in sorted(params.items())
             if k != rate_col and not (isinstance(fleet, str) and k.startswith("fleets."))]
    return ", ".join(([fleet] if isinstance(fleet, str) else []) + items) or "all"


def _metric_columns(sweep: SweepResults) -> list[str]:
    """Numeric columns that are metrics (not bookkeeping, not overrides)."""
    overrides: set[str] = set()
    for r in sweep.rows:
        with contextlib.suppress(TypeError, json.JSONDecodeError):
            overrides |= set(json.loads(r.get("params_json") or "{}"))
    return [c for c in sweep.columns if c not in BOOKKEEPING and c not in overrides
            and any(is_number(r.get(c)) for r in sweep.rows)]


def _rate_section(cols: list[str], ok: list[tuple[int, dict[str, Any]]], rate_col: str | None,
                  max_lines: int) -> Section:
    """Throughput and goodput vs the sweep's request-rate column, one line per configuration."""
    figs = []
    if rate_col:
        groups: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        names: dict[str, str] = {}
        for _, r in ok:
            if is_number(r.get(rate_col)):
                key = _config_label(r, rate_col, short=False)
                groups.setdefault(key, []).append((float(r[rate_col]), r))
                names[key] = _config_label(r, rate_col)
        if len(set(names.values())) < len(names):  # short labels collide: keep the full ones
            names = {k: k for k in names}
        for metric in THROUGHPUT_COLS:
            if metric not in cols:
                continue
            series = []
            for label, pts in groups.items():
                pts = sorted((p for p in pts if is_number(p[1].get(metric))), key=lambda p: p[0])
                if pts:
                    series.append((names[label], [p[0] for p in pts], [p[1][metric] for p in pts]))
            series = sorted(series, key=lambda s: -max(s[2]))[:max_lines]
            if series:
                figs.append(Figure(f"sweep-rate-{metric}", charts.line_figure(
                    f"{metric} vs request rate", rate_col, metric, series, markers=True)))
    txt = note(f"x = the sweep's request rate column ({rate_col}); one line per configuration (the other "
               f"overrides), at most {max_lines} per chart: those with the highest peak.") if figs else \
        note("No request-rate column or throughput metrics in this sweep: rate charts skipped.", kind="warn")
    return Section("sweep-rate", "Sweep: throughput and goodput vs request rate", txt, tuple(figs))


def _pareto_section(cols: list[str], ok: list[tuple[int, dict[str, Any]]], rate_col: str | None) -> Section | None:
    """Cost vs latency of every scenario, coloured by power, the per-rate Pareto frontier marked."""
    cost, lat, power = pick(cols, COST_COLS), pick(cols, LATENCY_COLS), pick(cols, POWER_COLS)
    if not (cost and lat):
        return None
    pts = [(i, r) for i, r in ok if is_number(r.get(cost)) and is_number(r.get(lat))]

    def rate(r: dict[str, Any]) -> Any:
        return r.get(rate_col) if rate_col else None

    # Only scenarios at the same request rate compete: a cheap point at a low rate does not beat
    # a fleet carrying four times the traffic.
    frontier = [not any(rate(q) == rate(r) and q[cost] <= r[cost] and q[lat] <= r[lat]
                        and (q[cost], q[lat]) != (r[cost], r[lat]) for _, q in pts) for _, r in pts]
    colors = [float(r[power]) for _, r in pts] if power and all(is_number(r.get(power)) for _, r in pts) else None
    fig = charts.scatter_figure(
        "Sweep: cost vs latency", cost, lat, x=[r[cost] for _, r in pts], y=[r[lat] for _, r in pts],
        labels=[f"row {i}: {_config_label(r, None)}" for i, r in pts], color=colors, color_title=power or "",
        frontier=frontier, frontier_line=False)
    same = f" at the same {rate_col}" if rate_col else ""
    return Section("pareto-sweep", "Pareto frontier of the sweep",
                   note(f"Each point is one scenario; a point is on the frontier (open diamond) when no other "
                        f"scenario{same} has both lower {cost} and lower {lat}. Colour: {power or 'none recorded'}."),
                   (Figure("pareto-sweep-fig", fig),))


def sweep_sections(sweep: SweepResults, *, max_lines: int = 12, with_charts: bool = True) -> list[Section]:
    """Overview, throughput/goodput vs rate, Pareto (cost vs latency, colour = power), all rows.

    Rate charts draw at most ``max_lines`` configurations (those with the
    highest peak of the metric); the table and the Parquet files hold all.
    ``with_charts=False`` keeps only the overview and the rows (a plan's
    report draws the same data from the plan JSON).
    """
    cols = list(sweep.columns)
    ok = _ok_rows(sweep)
    failed = [(i, r) for i, r in enumerate(sweep.rows) if r.get("status", "ok") != "ok"]
    rate_col = pick(cols, RATE_COLS)
    head = note(f"{len(sweep.rows)} scenarios in {len(sweep.files)} Parquet part file(s): {len(ok)} ok, "
                f"{len(failed)} failed.")
    if failed:
        head += table(("row", "scenario", "error"), [
            (Cell(i), Cell(r.get("scenario_id", "")), Cell(r.get("error", ""))) for i, r in failed[:50]],
            caption="failed scenarios", css="errors")
    sections = [Section("sweep-overview", "Sweep", head,
                        data={"rows": len(sweep.rows), "ok": len(ok), "failed": len(failed)})]
    if with_charts:
        sections.append(_rate_section(cols, ok, rate_col, max_lines))
        pareto = _pareto_section(cols, ok, rate_col)
        sections += [pareto] if pareto else []

    metric_cols = _metric_columns(sweep)
    show = [c for c in cols if c in metric_cols or c == rate_col or c in ("scenario_id", "status")]
    rows = [[Cell(i)] + [Cell(r.get(c), "sweep", pointer((i, c))) for c in show]
            for i, r in enumerate(sweep.rows[:MAX_TABLE_ROWS])]
    more = note(f"First {MAX_TABLE_ROWS} of {len(sweep.rows)} rows; query all with `twinfer results query`.") \
        if len(sweep.rows) > MAX_TABLE_ROWS else ""
    sections.append(Section("sweep-rows", "Sweep results", more, html_after=(
        "<details><summary>rows</summary>" + table(["row", *show], rows, css="sweep-table") + "</details>")))
    return sections


def build(res: SweepResults | PlanResults) -> str:
    """The HTML page for a sweep folder or a plan (with its sweep when present)."""
    from twinfer import __version__

    if isinstance(res, PlanResults):
        sections = plan_sections(res) + (sweep_sections(res.sweep, with_charts=False) if res.sweep else [])
        name = res.plan.get("name") or res.path.parent.name
        title, subtitle = f"twinfer plan: {name}", f"model {res.plan.get('model', '?')}, objective {res.plan.get('objective', '?')}"
    else:
        sections = sweep_sections(res)
        title, subtitle = f"twinfer sweep: {res.folder.name}", f"{len(res.rows)} scenarios"
    return render_page(title=title, subtitle=subtitle, kind=res.kind, sections=sections, files=res.files,
                       version=__version__)
