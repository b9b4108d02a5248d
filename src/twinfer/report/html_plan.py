"""Report sections for a plan (``twinfer plan --out OUT`` writes ``OUT/plan.json``, schema ``twinfer.plan/1``).

The plan JSON is described in :mod:`twinfer.plan.evaluate`: the candidates
that were simulated, each with its price, devices, peak power, goodput, a
Pareto flag and per-rate metrics (``by_rate["<rate>"]``); the recommendation
with the planner's reason; the Pareto keys; and the choice per rate
(``by_rate``). Everything shown is read from that file and cited by JSON
Pointer; the charts plot the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinfer.report import charts
from twinfer.report.html_format import Cell, esc, is_number, kv_table, note, pointer, table
from twinfer.report.html_load import PlanResults
from twinfer.report.html_page import Figure, Section

SRC = "plan.json"
#: Per-rate metrics listed for each candidate at the target rate (key -> column label).
RATE_METRICS = (
    ("feasible", "feasible"), ("slo_attainment", "SLO met"), ("ttft_s", "TTFT"), ("tpot_s", "TPOT"),
    ("e2e_s", "e2e"), ("goodput_rps_run", "goodput req/s (run)"), ("throughput_output_tok_s", "output tok/s"),
    ("cost_per_m_output_tok_usd", "$/M out tok"), ("avg_power_w", "avg power W"),
    ("energy_per_output_tok_j", "J/out tok"),
)
#: Most candidates drawn as lines in the per-rate charts (the recommended and Pareto ones first).
MAX_LINES = 8


def _candidates(plan: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    return [(i, c) for i, c in enumerate(plan.get("candidates") or []) if isinstance(c, Mapping)]


def _target_key(plan: Mapping[str, Any]) -> str:
    rate = plan.get("target_rate_per_s")
    return f"{rate:g}" if is_number(rate) else ""


def _overview(plan: Mapping[str, Any]) -> Section:
    """Recommendation (with the planner's reason) and the search summary."""
    rec = plan.get("recommended")
    parts = []
    if isinstance(rec, Mapping):
        parts.append(f'<div class="recommend"><p><strong>Recommended: {esc(rec.get("key", ""))}</strong></p>'
                     f'<p>{esc(rec.get("why", ""))}</p></div>')
    else:
        parts.append(note("No fleet in the search space met the SLOs at the target rate.", kind="warn"))
    head = {k: plan[k] for k in ("name", "model", "objective", "target_rate_per_s") if k in plan}
    blocks = [f"<div>{kv_table(head, SRC, ())}</div>"] + [
        f"<div><h3>{esc(key)}</h3>{kv_table(plan[key], SRC, (key,))}</div>"
        for key in ("slo", "search", "limits") if isinstance(plan.get(key), Mapping)]
    return Section("plan", "Plan", "".join(parts) + f'<div class="row">{"".join(blocks)}</div>',
                   data={"recommended": rec.get("key") if isinstance(rec, Mapping) else None,
                         "pareto": list(plan.get("pareto") or [])})


def _candidates_table(plan: Mapping[str, Any]) -> Section:
    """One row per simulated candidate: fleet facts and its metrics at the target rate."""
    target = _target_key(plan)
    cands = _candidates(plan)
    rows = []
    for i, c in cands:
        r = (c.get("by_rate") or {}).get(target) or {}
        rows.append(
            [Cell(c.get("key")), Cell(c.get("mode")), Cell("yes" if c.get("pareto") else "")]
            + [Cell(c.get(k), SRC, pointer(("candidates", i, k)))
               for k in ("devices", "price_per_hour_usd", "power_max_w", "goodput_rps")]
            + [Cell(("yes" if r.get(k) else "no") if k == "feasible" else r.get(k), SRC,
                    pointer(("candidates", i, "by_rate", target, k))) for k, _ in RATE_METRICS]
        )
    pct = (plan.get("slo") or {}).get("latency_percentile", "")
    headers = ["fleet", "mode", "Pareto", "devices", "$/h", "peak W", "goodput req/s"] + [
        f"{label} {pct} [s]" if k in ("ttft_s", "tpot_s", "e2e_s") else label for k, label in RATE_METRICS]
    html = note(f"Every simulated candidate at the target rate ({target} req/s). Goodput is DistServe's: the "
                "highest grid rate the fleet serves within the SLO attainment.")
    return Section("candidates", "Candidates at the target rate", html,
                   html_after=f"<details{' open' if len(rows) <= 12 else ''}><summary>{len(rows)} candidates</summary>"
                   + table(headers, rows, css="candidates") + "</details>")


def _pareto(plan: Mapping[str, Any]) -> Section:
    """Price vs TTFT and price vs TPOT at the target rate, coloured by peak power, frontier joined."""
    target = _target_key(plan)
    pts = [(i, c, (c.get("by_rate") or {}).get(target) or {}) for i, c in _candidates(plan)]
    pts = [(i, c, r) for i, c, r in pts if r.get("feasible") and is_number(c.get("price_per_hour_usd"))]
    pct = (plan.get("slo") or {}).get("latency_percentile", "")
    figs = []
    for k, label in (("ttft_s", f"TTFT {pct} (s)"), ("tpot_s", f"TPOT {pct} (s)")):
        sel = [(c, r) for _, c, r in pts if is_number(r.get(k))]
        if not sel:
            continue
        power = [c.get("power_max_w") for c, _ in sel]
        rec = (plan.get("recommended") or {}).get("key")
        colors = [float(p) for p in power if isinstance(p, int | float)]
        figs.append(Figure(f"pareto-{k}", charts.scatter_figure(
            f"Fleet price vs {label} at {target} req/s", "fleet price ($/h)", label,
            x=[c["price_per_hour_usd"] for c, _ in sel], y=[r[k] for _, r in sel],
            labels=[str(c.get("key")) for c, _ in sel],
            color=colors if len(colors) == len(sel) else None,
            color_title="peak power (W)", frontier=[bool(c.get("pareto")) for c, _ in sel], frontier_line=False)))
        mine = [(c["price_per_hour_usd"], r[k]) for c, r in sel if c.get("key") == rec]
        if mine:  # the recommended fleet, as a star on top
            figs[-1].spec["data"].append({
                "type": "scatter", "mode": "markers", "name": f"recommended: {rec}", "x": [mine[0][0]],
                "y": [mine[0][1]], "marker": {"symbol": "star", "size": 18, "color": "#000000"}})
    html = note("Feasible fleets at the target rate; the planner's Pareto set (price, TTFT, TPOT, power, all "
                "minimised) is marked with open diamonds in each 2-D view. Colour: provisioned peak power.")
    if not figs:
        html += note("No feasible fleet at the target rate: nothing to plot.", kind="warn")
    return Section("pareto", "Pareto frontier: cost vs latency vs power", html, tuple(figs))


def _per_rate(plan: Mapping[str, Any]) -> Section:
    """Throughput, goodput and SLO attainment vs request rate for the leading candidates; the choice per rate."""
    cands = _candidates(plan)
    rec = (plan.get("recommended") or {}).get("key")
    order = sorted(cands, key=lambda ic: (ic[1].get("key") != rec, not ic[1].get("pareto"), ic[0]))[:MAX_LINES]
    figs = []
    for k, label in (("throughput_output_tok_s", "output tokens/s"), ("goodput_rps_run", "goodput (req/s)"),
                     ("slo_attainment", "SLO attainment")):
        series = []
        for _, c in order:
            pts = sorted((float(rate), v[k]) for rate, v in (c.get("by_rate") or {}).items()
                         if isinstance(v, Mapping) and is_number(v.get(k)))
            if pts:
                series.append((str(c.get("key")), [p[0] for p in pts], [p[1] for p in pts]))
        if series:
            figs.append(Figure(f"rate-{k}", charts.line_figure(f"{label} vs request rate", "request rate (req/s)",
                                                               label, series, markers=True)))
    rows, xs, ys = [], [], []
    for j, row in enumerate(plan.get("by_rate") or []):
        rows.append([Cell(row.get("rate_per_s"), SRC, pointer(("by_rate", j, "rate_per_s"))),
                     Cell(row.get("recommended") or "(none feasible)"),
                     Cell(row.get("price_per_hour_usd"), SRC, pointer(("by_rate", j, "price_per_hour_usd"))),
                     Cell(row.get("devices"), SRC, pointer(("by_rate", j, "devices"))),
                     Cell(row.get("feasible"), SRC, pointer(("by_rate", j, "feasible"))),
                     Cell(row.get("simulated"), SRC, pointer(("by_rate", j, "simulated")))])
        if is_number(row.get("rate_per_s")) and is_number(row.get("price_per_hour_usd")):
            xs.append(row["rate_per_s"])
            ys.append(row["price_per_hour_usd"])
    if xs:
        figs.append(Figure("rate-choice-price", charts.line_figure(
            "Price of the recommended fleet as the rate grows", "request rate (req/s)", "fleet price ($/h)",
            [("recommended", xs, ys)], markers=True)))
    html = note(f"Lines: the recommended fleet and the Pareto fleets first (at most {MAX_LINES}); all candidates "
                "are in the table above and in the Parquet results.")
    return Section("rates", "Throughput and goodput vs request rate", html, tuple(figs),
                   html_after=table(("rate req/s", "recommended fleet", "$/h", "devices", "feasible", "simulated"),
                                    rows, caption="The choice as the request rate grows", css="by-rate"))


def _inputs(plan: Mapping[str, Any]) -> Section:
    parts = []
    if isinstance(plan.get("workload"), Mapping):
        parts.append("<h3>workload</h3>" + kv_table(plan["workload"], SRC, ("workload",)))
    if "rates_per_s" in plan:
        parts.append(table(("rates simulated (req/s)",), [[Cell(", ".join(f"{r:g}" for r in plan["rates_per_s"]))]]))
    for i, c in _candidates(plan):
        if c.get("key") == (plan.get("recommended") or {}).get("key"):
            pools = [[Cell(p.get("role")), Cell(p.get("hardware"))] + [
                Cell(p.get(k), SRC, pointer(("candidates", i, "pools", j, k))) for k in ("count", "tp", "chips", "max_batch_seqs")]
                for j, p in enumerate(c.get("pools") or [])]
            parts.append(table(("role", "hardware", "instances", "TP", "LPU chips", "max batch"), pools,
                               caption=f"pools of the recommended fleet {c.get('key')}"))
    return Section("plan-inputs", "Inputs", "".join(parts) or note("The plan records no inputs.", kind="warn"))


def plan_sections(res: PlanResults) -> list[Section]:
    """The plan's sections in reading order: decision, candidates, Pareto, rates, inputs."""
    plan = res.plan
    return [_overview(plan), _candidates_table(plan), _pareto(plan), _per_rate(plan), _inputs(plan)]
