"""Results as tables and documents (pyarrow imported lazily); writing files is the CLI's job."""

from __future__ import annotations

import math
from typing import Any

from twinfer.sim.results import REQUEST_COLUMNS, FleetResult


def requests_table(results: list[FleetResult]) -> Any:
    """One pyarrow Table of every fleet's per-request columns, with a leading ``fleet`` column."""
    import numpy as np
    import pyarrow as pa

    names = ["fleet", *REQUEST_COLUMNS]
    parts = []
    for res in results:
        n = len(res.requests["request_id"])
        cols = [pa.array([res.name] * n, type=pa.string())]
        cols += [pa.array(np.asarray(res.requests[c])) for c in REQUEST_COLUMNS]
        parts.append(pa.Table.from_arrays(cols, names=names))
    return pa.concat_tables(parts) if parts else pa.table({})


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


def summary_document(scenario_name: str, seed: int, results: list[FleetResult], notes: list[str]) -> dict[str, Any]:
    """The ``summary.json`` document: scenario, seed, notes, one summary dict per fleet (NaN -> null), and
    ``autoscale`` ({fleet: timeline}) when a fleet autoscaled."""
    doc = {
        "scenario": scenario_name,
        "seed": seed,
        "notes": list(notes),
        "fleets": [{k: _clean(v) for k, v in r.summary.items()} for r in results],
    }
    scaled = {r.name: r.autoscale for r in results if r.autoscale is not None}
    if scaled:  # instance counts per role over time (twinfer.sim.autoscale_results)
        doc["autoscale"] = scaled
    return doc


def series_document(results: list[FleetResult]) -> dict[str, Any]:
    """Queue-length samples per fleet and pool: {fleet: {role: {t_s, waiting, running}}}."""
    return {
        r.name: {p.role: {"t_s": p.series_t_s, "waiting": p.series_waiting, "running": p.series_running}
                 for p in r.pools}
        for r in results
    }
