"""Report sections for one simulation (``twinfer simulate --out DIR``): fleets side by side.

Reads what the simulator writes (:mod:`twinfer.sim.export`):

* ``summary.json``: ``{"scenario", "seed", "notes", "fleets": [...]}``, one flat
  summary per fleet with the keys of :data:`twinfer.sim.results.SUMMARY_KEYS`
  (``ttft_p50_s``, ``goodput_rps``, ``pool.<role>.utilisation`` ...; NaN written
  as null), and, when recorded, ``inputs`` (model, workload, slo, hardware with
  sources) and per-fleet ``pools`` (with an ``lpu_partition`` for LPU pools);
* ``series.json``: ``{fleet: {role: {"t_s": [...], "waiting": [...], "running": [...]}}}``;
* ``requests.parquet``: per-request ``ttft_s``, ``tpot_s``, ``e2e_s``,
  ``kv_transfer_*_s`` ... with a ``fleet`` column.

Tables show the summary's values; charts plot the per-request values and the
sampled series as they are in the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from twinfer.report import charts
from twinfer.report.html_autoscale import autoscale_section
from twinfer.report.html_format import Cell, esc, is_number, kv_table, note, pointer, table
from twinfer.report.html_inputs import inputs_section, lpu_section
from twinfer.report.html_load import SimResults
from twinfer.report.html_page import Figure, Section, render_page

SRC = "summary.json"

#: The comparison table at the top: summary key -> label (rows shown when present).
KEY_METRICS: tuple[tuple[str, str], ...] = (
    ("mode", "mode"),
    ("instances", "instances"),
    ("devices", "devices (GPUs / LPU chips)"),
    ("completed", "requests completed"),
    ("rejected", "requests rejected"),
    ("ttft_p50_s", "TTFT p50 [s]"),
    ("ttft_p99_s", "TTFT p99 [s]"),
    ("tpot_p50_s", "TPOT p50 [s]"),
    ("tpot_p99_s", "TPOT p99 [s]"),
    ("e2e_p50_s", "e2e p50 [s]"),
    ("e2e_p99_s", "e2e p99 [s]"),
    ("throughput_output_tok_s", "output throughput [tok/s]"),
    ("throughput_rps", "throughput [req/s]"),
    ("goodput_rps", "goodput [req/s]"),
    ("slo_attainment", "SLO attainment"),
    ("tokens_per_s_per_user_mean", "tokens/s per user (mean)"),
    ("price_per_hour_usd", "fleet price [$/h]"),
    ("cost_per_m_output_tok_usd", "cost per M output tokens [$]"),
    ("energy_per_output_tok_j", "energy per output token [J]"),
    ("tokens_per_s_per_mw", "output tokens/s per MW"),
)
LATENCY_PREFIXES = ("ttft_", "tpot_", "tbt_", "e2e_", "queue_")
#: series.json keys holding fractions of time (plotted on their own axis), not request counts.
FRACTION_SERIES = ("busy", "util")
KV_KEYS = ("kv_bytes_transferred", "kv_link_utilisation")
COST_KEYS = ("price_per_hour_usd", "cost_per_m_output_tok_usd", "energy_j", "avg_power_w",
             "energy_per_output_tok_j", "tokens_per_s_per_mw")


def fleet_entries(summary: Mapping[str, Any]) -> list[tuple[str, str | int, dict[str, Any]]]:
    """(display name, key in ``fleets``, fleet summary) in file order, for a list or a mapping."""
    fleets = summary.get("fleets", [])
    if isinstance(fleets, Mapping):
        return [(str(k), str(k), dict(v)) for k, v in fleets.items()]
    return [(str(f.get("fleet", f.get("name", i))), i, dict(f)) for i, f in enumerate(fleets)]


def pool_entries(fleet: Mapping[str, Any]) -> list[tuple[str, str | int, dict[str, Any]]]:
    """(pool label, key in ``pools``, pool dict) of one fleet."""
    pools = fleet.get("pools", [])
    if isinstance(pools, Mapping):
        return [(str(k), str(k), dict(v)) for k, v in pools.items()]
    return [(f"{p.get('role', i)} ({p.get('hardware', '?')})", i, dict(p)) for i, p in enumerate(pools)]


def compare_table(fleets: list[tuple[str, str | int, dict[str, Any]]], keys: list[tuple[str, str]],
                  *, css: str = "") -> str:
    """Metrics as rows and fleets as columns, each cell citing ``/fleets/<fleet>/<key>``."""
    rows = []
    for key, label in keys:
        if not any(key in f for _, _, f in fleets):
            continue
        rows.append([Cell(label)] + [
            Cell(f.get(key), SRC, pointer(("fleets", fk, key))) for _, fk, f in fleets
        ])
    return table(["metric"] + [name for name, _, _ in fleets], rows, css=css)


def lpu_band_table(fleets: list[tuple[str, str | int, dict[str, Any]]]) -> str:
    """Low and high of each ``<key>_range`` band (fleets with LPU pools, twinfer.sim.lpu_bands), each cell cited."""
    rows = []
    for key, label in KEY_METRICS:
        band = f"{key}_range"
        if not any(band in f for _, _, f in fleets):
            continue
        for i, end in enumerate(("low", "high")):
            rows.append([Cell(f"{label}, LPU band {end}")] + [
                Cell(f[band][i], SRC, pointer(("fleets", fk, band, i))) if band in f else Cell(None)
                for _, fk, f in fleets
            ])
    if not rows:
        return ""
    return note("Bands: each fleet with an LPU pool rerun at the LPU parameter sets with the fastest and slowest "
                "decode step among those consistent with the calibration data.") + table(
        ["metric"] + [name for name, _, _ in fleets], rows, css="lpu-bands")


def _keys_with_prefix(fleets: list[tuple[str, str | int, dict[str, Any]]], prefixes: tuple[str, ...]) -> list[str]:
    seen: list[str] = []
    for _, _, f in fleets:
        for key, value in f.items():
            if key.startswith(prefixes) and key not in seen and not isinstance(value, list | Mapping):
                seen.append(key)
    return seen


def _requests_by_fleet(res: SimResults, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per-request columns split by the ``fleet`` column (all rows to the only fleet when absent)."""
    req = res.requests
    if not req:
        return {}
    if "fleet" not in req:
        return {names[0]: req} if len(names) == 1 else {}
    fleet_col = np.asarray(req["fleet"]).astype(str)
    return {n: {k: np.asarray(v)[fleet_col == n] for k, v in req.items()} for n in names}


def _latency_section(res: SimResults, fleets: list[tuple[str, str | int, dict[str, Any]]]) -> Section:
    names = [n for n, _, _ in fleets]
    by_fleet = _requests_by_fleet(res, names)
    figs = []
    for col, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "end-to-end latency")):
        series = [(n, cols[col]) for n, cols in by_fleet.items() if col in cols]
        if series:
            figs.append(Figure(f"cdf-{col[:-2]}", charts.cdf_figure(f"{label} CDF", f"{label} (s)", series)))
    keys = [(k, k) for k in _keys_with_prefix(fleets, LATENCY_PREFIXES)]
    html = (note("CDFs of the per-request values in the Parquet file (completed requests; NaN rows, e.g. "
                 "TPOT of one-token requests, are left out). The table shows the summary's statistics.")
            if figs else note("No per-request Parquet found next to summary.json: CDFs skipped.", kind="warn"))
    return Section("latency", "Latency", html, tuple(figs), html_after=compare_table(fleets, keys, css="latency"))


def _pool_series(res: SimResults, name: str, fleet: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(label, t, values) lines of one fleet: from series.json, else from a ``pools`` list in the summary."""
    out = []
    by_role = res.series.get(name)
    if isinstance(by_role, Mapping):
        for role, ser in by_role.items():
            if isinstance(ser, Mapping) and ser.get("t_s"):
                hw = fleet.get(f"pool.{role}.hardware")
                label = f"{role} ({hw})" if hw else str(role)
                # every sampled quantity beside the time axis (running, waiting, and any the simulator adds)
                out += [(f"{label} {what}", ser["t_s"], v) for what, v in ser.items()
                        if what != "t_s" and isinstance(v, list) and len(v) == len(ser["t_s"])]
        return out
    for label, _pk, pool in pool_entries(fleet):
        if pool.get("series_t_s"):
            out += [(f"{label} {what}", pool["series_t_s"], pool[f"series_{what}"])
                    for what in ("running", "waiting") if pool.get(f"series_{what}")]
    return out


def _pool_table(fleets: list[tuple[str, str | int, dict[str, Any]]]) -> str:
    """One row per (fleet, pool) and one column per ``pool.<role>.<metric>`` key of the summary."""
    rows: dict[tuple[str, str], dict[str, Cell]] = {}
    metrics: list[str] = []
    for name, fk, f in fleets:
        for key, value in f.items():
            if key.startswith("pool.") and key.count(".") >= 2 and not isinstance(value, list | Mapping):
                role, _, metric = key[len("pool."):].partition(".")
                rows.setdefault((name, role), {})[metric] = Cell(value, SRC, pointer(("fleets", fk, key)))
                metrics += [metric] if metric not in metrics else []
    body = [[Cell(f"{name} / {role}")] + [cells.get(m, Cell(None)) for m in metrics] for (name, role), cells in rows.items()]
    return table(["fleet / pool", *metrics], body, css="pools")


def _pools_section(res: SimResults, fleets: list[tuple[str, str | int, dict[str, Any]]]) -> Section:
    figs = []
    for i, (name, _fk, f) in enumerate(fleets):
        series = _pool_series(res, name, f)
        # Fractions (busy / utilisation samples, when the simulator writes them) get their own 0-1 axis.
        frac = [x for x in series if x[0].rsplit(" ", 1)[-1].startswith(FRACTION_SERIES)]
        counts = [x for x in series if x not in frac]
        if counts:
            figs.append(Figure(f"pool-series-{i}", charts.line_figure(
                f"{name}: requests per pool over time", "simulated time (s)", "requests", counts, step=True)))
        if frac:
            figs.append(Figure(f"pool-util-{i}", charts.line_figure(
                f"{name}: utilisation per pool over time", "simulated time (s)", "busy fraction", frac, step=True)))
    html = note("Running = sequences in a batch; waiting = queued at the pool, as sampled by the simulator "
                "(series.json). In the table, utilisation is the mean busy fraction of the pool's instances; "
                "kv_blocked_frac and batch_full_frac the time a request waited only for KV space or a batch slot.")
    if not figs:
        html += note("No sampled pool series (series.json) in the results: time charts skipped.", kind="warn")
    return Section("pools", "Utilisation and queues per pool", html, tuple(figs), html_after=_pool_table(fleets))


def _kv_section(res: SimResults, fleets: list[tuple[str, str | int, dict[str, Any]]]) -> Section:
    names = [n for n, _, _ in fleets]
    figs = []
    series = []
    for n, cols in _requests_by_fleet(res, names).items():
        if "kv_transfer_start_s" in cols and "kv_transfer_end_s" in cols:
            d = np.asarray(cols["kv_transfer_end_s"], float) - np.asarray(cols["kv_transfer_start_s"], float)
            if np.isfinite(d).any():
                series.append((n, d))
    if series:
        figs.append(Figure("cdf-kv-transfer", charts.cdf_figure(
            "KV transfer time per request", "kv_transfer_end_s − kv_transfer_start_s (s)", series)))
    moved = [(n, f.get("kv_bytes_transferred")) for n, _, f in fleets]
    if any(isinstance(v, int | float) for _, v in moved):
        figs.append(Figure("bar-kv-bytes", charts.bar_figure(
            "KV-cache bytes moved prefill → decode", "bytes", [n for n, _ in moved],
            [("kv_bytes_transferred", [float(v or 0) for _, v in moved])])))
    keys = [(k, k) for k in KV_KEYS] + [(k, k) for k in _keys_with_prefix(fleets, ("kv_",)) if k not in KV_KEYS]
    html = note("Aggregated fleets move no KV cache; disaggregated ones move each prompt's KV from the "
                "prefill to the decode instance over the modelled link.")
    return Section("kv", "KV-cache transfer", html, tuple(figs), html_after=compare_table(fleets, keys, css="kv"))


#: Prefix-cache rows of the report (twinfer.sim.prefix_stats), shown for fleets that cache prefixes.
PREFIX_KEYS = ("prefix_hit_rate", "prefix_saved_prefill_s", "prefix_prompt_tokens", "prefix_cached_tokens",
               "prefix_tier_hit_tokens", "prefix_reload_s", "prefix_evicted_blocks", "prefix_offloaded_blocks",
               "prefix_route_best_frac", "prefix_route_cached_frac")


def _prefix_section(fleets: list[tuple[str, str | int, dict[str, Any]]]) -> Section | None:
    """Prefix caching and routing: hit rate, saved prefill, how the router's choice met the cache."""
    if not any("prefix_hit_rate" in f for _, _, f in fleets):
        return None
    names = [n for n, _, _ in fleets]
    figs = [Figure("bar-prefix-hit", charts.bar_figure(
        "Prompt tokens found in a prefix cache", "fraction of prompt tokens", names,
        [("prefix_hit_rate", [float(f.get("prefix_hit_rate") or 0.0) for _, _, f in fleets])]))]
    keys = [(k, k) for k in PREFIX_KEYS] + [(k, k) for k in _keys_with_prefix(fleets, ("pool.",))
                                            if ".prefix_" in k]
    html = note("Hit rate: prompt tokens found cached (on the instance, or reloaded from an offload tier) over "
                "prompt tokens; a fleet without a prefix cache has none. Saved prefill: per request, the batch-1 "
                "prefill time of the whole prompt minus that of its uncached suffix. Router: of the requests "
                "whose prefix some instance held when routed, the share sent to an instance holding the longest "
                "one (prefix_route_best_frac), and the cached blocks the chosen instances held over the most any "
                "held (prefix_route_cached_frac).")
    return Section("prefix", "Prefix caching and KV-aware routing", html, tuple(figs),
                   html_after=compare_table(fleets, keys, css="prefix"))


def _cost_section(fleets: list[tuple[str, str | int, dict[str, Any]]]) -> Section:
    names = [n for n, _, _ in fleets]
    figs = []
    for key, title, unit in (
        ("cost_per_m_output_tok_usd", "Cost per million output tokens", "$"),
        ("energy_per_output_tok_j", "Energy per output token", "J"),
        ("tokens_per_s_per_mw", "Output tokens/s per megawatt", "tok/s/MW"),
        ("price_per_hour_usd", "Fleet price per hour", "$/h"),
    ):
        vals = [f.get(key) for _, _, f in fleets]
        if all(is_number(v) for v in vals):
            figs.append(Figure(f"bar-{key}", charts.bar_figure(title, unit, names, [(key, [float(v or 0) for v in vals])])))
    html = note("Prices are the presets' assumptions (or the scenario's overrides); energy uses the power model "
                "between idle and max power by utilisation. Both are listed under Inputs.")
    return Section("cost", "Cost and energy", html, tuple(figs),
                   html_after=compare_table(fleets, [(k, k) for k in COST_KEYS], css="cost"))


def _all_numbers(fleets: list[tuple[str, str | int, dict[str, Any]]]) -> Section:
    parts = []
    for name, fk, f in fleets:
        parts.append(f"<details><summary>{esc(name)}: every number in the summary</summary>"
                     f"{kv_table(f, SRC, ('fleets', fk))}</details>")
    return Section("all", "All summary numbers", "".join(parts))


def build(res: SimResults) -> str:
    """The HTML page for one simulation's results."""
    from twinfer import __version__

    summary = res.summary
    fleets = fleet_entries(summary)
    scenario = summary.get("scenario")
    scen_name = scenario.get("name") if isinstance(scenario, Mapping) else scenario
    name = scen_name or summary.get("scenario_name") or res.folder.name
    notes = summary.get("notes") or []
    notes_html = "".join(note(f"note: {n}") for n in notes if isinstance(n, str))
    overview = Section(
        "overview", "Fleets compared",
        note("One column per fleet, as listed in summary.json.") + notes_html
        + compare_table(fleets, list(KEY_METRICS), css="summary-table") + lpu_band_table(fleets),
        data={"fleets": [n for n, _, _ in fleets]},
    )
    listed: list[Section | None] = [
        overview,
        _latency_section(res, fleets),
        _pools_section(res, fleets),
        _kv_section(res, fleets),
        _prefix_section(fleets),
        _cost_section(fleets),
        autoscale_section(summary, fleets, compare_table),
        lpu_section(fleets, summary),
        inputs_section(summary, SRC, fleets),
        _all_numbers(fleets),
    ]
    sections = [sec for sec in listed if sec is not None]
    seed = summary.get("seed")
    subtitle = f"Simulation of {len(fleets)} fleet(s)" + (f", seed {seed}" if seed is not None else "")
    return render_page(title=f"twinfer report: {name}", subtitle=subtitle, kind="simulation",
                       sections=sections, files=res.files, version=__version__)
