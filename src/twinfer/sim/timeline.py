"""Chrome / Perfetto trace of a run: one track per instance (batch steps) and per KV link (transfers).

Built from the spans a run records with ``record_timeline=True``:
``("step", instance, start_s, end_s, prefill_tokens, decode_seqs)`` and
``("kv", link, request_id, start_s, end_s, bytes)``. Open the JSON in
https://ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

from typing import Any

from twinfer.sim.results import FleetResult


def chrome_trace(results: list[FleetResult]) -> dict[str, Any]:
    """The trace-event JSON document (times in microseconds; one process per fleet)."""
    events: list[dict[str, Any]] = []
    for pid, res in enumerate(results):
        events.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": res.name}})
        for span in res.timeline or ():
            if span[0] == "step":
                _, inst, t0, t1, ptok, ndec = span
                name = f"prefill {ptok} + decode {ndec}" if ptok and ndec else (
                    f"prefill {ptok}" if ptok else f"decode {ndec}")
                events.append({"ph": "X", "pid": pid, "tid": int(inst), "name": name, "ts": t0 * 1e6,
                               "dur": (t1 - t0) * 1e6, "args": {"prefill_tokens": ptok, "decode_seqs": ndec}})
            else:
                _, link, rid, t0, t1, nbytes = span
                events.append({"ph": "X", "pid": pid, "tid": 100000 + int(link), "name": f"KV r{rid}",
                               "ts": t0 * 1e6, "dur": (t1 - t0) * 1e6, "args": {"bytes": nbytes}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
