"""Report section for autoscaled fleets: cost and SLO attainment against the static fleet at its peak.

Reads the ``autoscale.*`` keys of each fleet in ``summary.json`` (see
:mod:`twinfer.sim.autoscale_results`) and the top-level ``autoscale`` document
``{fleet: {"timeline": [{"t_s", <role>: serving, "paid"}, ...], "paid": [[t_s, n], ...]}}``
for the plot of instance counts per role over time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinfer.report import charts
from twinfer.report.html_format import note
from twinfer.report.html_page import Figure, Section

#: Rows of the side-by-side table: summary key -> label.
AUTOSCALE_ROWS: tuple[tuple[str, str], ...] = (
    ("autoscale.instance_hours", "autoscaled: instance-hours"),
    ("autoscale.static_instance_hours", "static at peak: instance-hours"),
    ("autoscale.cost_usd", "autoscaled: cost [$]"),
    ("autoscale.static_cost_usd", "static at peak: cost [$]"),
    ("autoscale.saving_fraction", "saving (1 - autoscaled / static cost)"),
    ("slo_attainment", "autoscaled: SLO attainment"),
    ("autoscale.static_slo_attainment", "static at peak: SLO attainment"),
    ("ttft_p99_s", "autoscaled: TTFT p99 [s]"),
    ("autoscale.static_ttft_p99_s", "static at peak: TTFT p99 [s]"),
    ("tpot_p99_s", "autoscaled: TPOT p99 [s]"),
    ("autoscale.static_tpot_p99_s", "static at peak: TPOT p99 [s]"),
    ("autoscale.min_instances", "autoscaled: fewest instances paid"),
    ("autoscale.peak_instances", "autoscaled: most instances paid"),
    ("autoscale.static_instances", "static at peak: instances"),
    ("autoscale.adds", "instances added"),
    ("autoscale.removes", "instances removed"),
    ("autoscale.moves", "instances moved between prefill and decode"),
)


def _count_series(doc: Mapping[str, Any], end_s: float | None) -> list[tuple[str, list[float], list[float]]]:
    """Step series (role and paid counts over time) of one fleet's timeline, held to ``end_s``."""
    points = [p for p in doc.get("timeline", []) if isinstance(p, Mapping)]
    if not points:
        return []
    names = [k for k in points[0] if k != "t_s"]
    series = []
    for name in names:
        xs = [float(p["t_s"]) for p in points]
        ys = [float(p.get(name, 0)) for p in points]
        if end_s is not None and end_s > xs[-1]:
            xs.append(end_s)
            ys.append(ys[-1])
        series.append(("paid (serving + in transition)" if name == "paid" else f"{name} serving", xs, ys))
    return series


def autoscale_section(summary: Mapping[str, Any], fleets: list[tuple[str, str | int, dict[str, Any]]],
                      compare_table: Any) -> Section | None:
    """The autoscaling section, or None when no fleet autoscaled. ``compare_table`` renders fleets x keys."""
    scaled = [(n, k, f) for n, k, f in fleets if "autoscale.policy" in f]
    if not scaled:
        return None
    docs = summary.get("autoscale") or {}
    figs = []
    for i, (name, _, f) in enumerate(scaled):
        series = _count_series(docs.get(name, {}), f.get("duration_s"))
        if series:
            figs.append(Figure(f"autoscale-counts-{i}", charts.line_figure(
                f"{name}: instances per role over time", "time (s)", "instances", series, step=True)))
    html = note("Each autoscaled fleet was also run held static at its peak (each pool at the most instances that "
                "served it at once) on the same workload. The autoscaled fleet pays for an instance from the "
                "decision that adds it until it has drained after a removal, reconfiguration delays included; "
                "the static one pays for its instances over its whole run.")
    return Section("autoscale", "Autoscaling: cost and SLO attainment against the static fleet at peak", html,
                   tuple(figs), html_after=compare_table(scaled, list(AUTOSCALE_ROWS), css="autoscale"))
