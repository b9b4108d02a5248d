"""Chart specifications for reports, as plain plotly.js figure dicts (``{"data": [...], "layout": {...}}``).

The dicts are rendered in the page by the inlined plotly.js; building them as
plain JSON (not ``plotly.graph_objects``) keeps the page deterministic, small
and free of encodings a reader cannot inspect. Charts plot values read from
the results files; the only transformation is sorting (CDFs) and, for long
series, keeping every k-th point (named in the chart's subtitle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from twinfer.report.html_format import axis_label

#: A colour-blind-safe qualitative palette (Okabe & Ito, "Color Universal Design", 2008).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
#: Most points a line or CDF keeps; beyond this it keeps evenly spaced ones (browser speed).
MAX_POINTS = 2000
#: d3-format of hovered values: 4 significant digits, thousands separators, no exponent, no trailing zeros.
HOVER_FORMAT = ",.4~r"


def _layout(title: str, x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    """A plain white layout with axis titles and a legend under the plot."""
    # Axis titles given as column names become words with units; hover values show 4 significant
    # digits in plain notation (d3 ",.4~r": 27,420 and 0.01235, not 2.742e+4).
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
        "xaxis": {"title": {"text": axis_label(x_title)}, "gridcolor": "#e5e5e5", "zeroline": False,
                  "hoverformat": HOVER_FORMAT},
        "yaxis": {"title": {"text": axis_label(y_title)}, "gridcolor": "#e5e5e5", "zeroline": False,
                  "hoverformat": HOVER_FORMAT},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "margin": {"l": 64, "r": 24, "t": 56, "b": 64},
        "height": 400,
        "legend": {"orientation": "h", "y": -0.3, "yanchor": "top"},
        "font": {"family": "system-ui, sans-serif", "size": 12},
    }
    layout.update(extra)
    return layout


def _floats(values: Any) -> list[float | None]:
    """Plain Python floats for JSON; NaN and infinities become null (plotly leaves a gap)."""
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return [float(v) if np.isfinite(v) else None for v in arr]


def thin_indices(n: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spaced points of ``n``, always keeping the first and last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


#: A CDF's x axis turns logarithmic when its positive values span more than this ratio (max / min).
LOG_X_SPAN = 100.0


def cdf_figure(title: str, x_title: str, series: Sequence[tuple[str, Any]], *, log_x: bool | None = None) -> dict[str, Any]:
    """Empirical CDFs, one line per named sample: x = sorted values, y = rank / n.

    ``log_x=None`` picks a log axis when all values are positive and span more
    than :data:`LOG_X_SPAN` (fleets 1000x apart stay readable).
    """
    data = []
    lo, hi = np.inf, 0.0
    for i, (name, values) in enumerate(series):
        v = np.asarray(values, dtype=np.float64)
        v = np.sort(v[np.isfinite(v)])
        if v.size == 0:
            continue
        keep = thin_indices(v.size)
        lo, hi = min(lo, float(v[0])), max(hi, float(v[-1]))
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{name} (n={v.size})",
                "x": _floats(v[keep]),
                "y": _floats((keep + 1) / v.size),
                "line": {"color": PALETTE[i % len(PALETTE)], "shape": "hv", "width": 2},
            }
        )
    layout = _layout(title, x_title, "fraction of requests ≤ x")
    layout["yaxis"]["range"] = [0, 1.02]
    if log_x is None:
        log_x = bool(data) and lo > 0 and hi / lo > LOG_X_SPAN
    if log_x:
        layout["xaxis"]["type"] = "log"
        layout["title"]["text"] += " (log x)"
    return {"data": data, "layout": layout}


def line_figure(
    title: str, x_title: str, y_title: str, series: Sequence[tuple[str, Any, Any]], *, step: bool = False,
    markers: bool = False,
) -> dict[str, Any]:
    """Lines (x, y) per named series, e.g. utilisation over time or throughput vs request rate."""
    data = []
    for i, (name, x, y) in enumerate(series):
        xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        keep = thin_indices(xs.size)
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if markers else "lines",
                "name": name,
                "x": _floats(xs[keep]),
                "y": _floats(ys[keep]),
                "line": {"color": PALETTE[i % len(PALETTE)], "shape": "hv" if step else "linear", "width": 2},
            }
        )
    return {"data": data, "layout": _layout(title, x_title, y_title)}


def bar_figure(
    title: str, y_title: str, categories: Sequence[str], groups: Sequence[tuple[str, Sequence[float]]],
    *, stacked: bool = False,
) -> dict[str, Any]:
    """Bars per category, one colour per group (grouped, or stacked for a breakdown)."""
    data = [
        {
            "type": "bar",
            "name": name,
            "x": list(categories),
            "y": _floats(values),
            "marker": {"color": PALETTE[i % len(PALETTE)]},
        }
        for i, (name, values) in enumerate(groups)
    ]
    return {"data": data, "layout": _layout(title, "", y_title, barmode="stack" if stacked else "group")}


def scatter_figure(
    title: str, x_title: str, y_title: str, *, x: Sequence[float], y: Sequence[float], labels: Sequence[str],
    color: Sequence[float] | None = None, color_title: str = "", frontier: Sequence[bool] | None = None,
    frontier_line: bool = True,
) -> dict[str, Any]:
    """Points coloured by a third quantity (e.g. cost vs latency coloured by power), Pareto points marked.

    ``frontier_line`` joins the Pareto points in x order (right for a 2-D
    frontier); leave it off when the Pareto set has more objectives than the
    two axes (its points need not form a staircase in this view).
    """
    marker: dict[str, Any] = {"size": 10, "line": {"width": 1, "color": "#333"}}
    if color is not None:
        marker.update({"color": _floats(color), "colorscale": "Viridis", "showscale": True,
                       "colorbar": {"title": {"text": color_title}}})
    else:
        marker["color"] = PALETTE[0]
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": "configurations",
            "x": _floats(x),
            "y": _floats(y),
            "text": list(labels),
            "hovertemplate": "%{text}<br>x=%{x}<br>y=%{y}<extra></extra>",
            "marker": marker,
        }
    ]
    if frontier is not None and any(frontier):
        pts = [(float(a), float(b), t) for a, b, t, f in zip(x, y, labels, frontier, strict=True) if f]
        if frontier_line:
            pts.sort()
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if frontier_line else "markers",
                "name": "Pareto frontier" if frontier_line else "Pareto set",
                "x": [p[0] for p in pts],
                "y": [p[1] for p in pts],
                "text": [p[2] for p in pts],
                "hovertemplate": "%{text} (Pareto)<extra></extra>",
                "line": {"color": "#D55E00", "width": 2, "dash": "dot"},
                "marker": {"symbol": "diamond-open", "size": 16, "color": "#D55E00", "line": {"width": 2}},
            }
        )
    return {"data": data, "layout": _layout(title, x_title, y_title)}


def sram_figure(title: str, chips: Sequence[int], used_bytes: Sequence[float], capacity_bytes: float | None) -> dict[str, Any]:
    """SRAM used per chip (bars), with the chip's capacity as a line when known."""
    fig = bar_figure(title, "SRAM used (bytes)", [], [("SRAM used", used_bytes)])
    fig["data"][0]["x"] = [int(c) for c in chips]
    fig["data"][0]["marker"]["line"] = {"width": 0}
    fig["layout"]["xaxis"]["title"] = {"text": "chip"}
    fig["layout"]["bargap"] = 0.1 if len(chips) < 64 else 0
    if capacity_bytes:
        fig["layout"]["shapes"] = [
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": capacity_bytes, "y1": capacity_bytes,
             "line": {"color": "#D55E00", "dash": "dash"}}
        ]
    return fig
