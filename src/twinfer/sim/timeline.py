"""Chrome / Perfetto trace of a run: one track per instance (batch steps) and per KV link (transfers).

Built from the spans a run records with ``record_timeline=True``:
``("step", instance, start_s, end_s, prefill_tokens, decode_seqs)`` and
``("kv", link, request_id, start_s, end_s, bytes)``. Open the JSON in
https://ui.perfetto.dev or chrome://tracing.

Times are whole microseconds (``ts``, ``dur``): each span's ends are rounded to
the microsecond once and its duration is the difference, so back-to-back spans
on a track share a boundary exactly and never overlap, whatever float rounding a
reader applies. Every track is named (``thread_name`` metadata): ``decode 3
(h100)`` for the fourth instance of the decode pool, ``KV link 0`` for a link.
"""

from __future__ import annotations

from typing import Any

from twinfer.sim.results import FleetResult

#: Track ids of KV links start here (instance tracks use the fleet-wide instance index below it).
LINK_TID_BASE = 100000


def _us(t_s: float) -> int:
    return int(round(t_s * 1e6))


def instance_names(res: FleetResult) -> dict[int, str]:
    """Fleet-wide instance index -> track name; instances are numbered pool by pool, in pool order
    (an autoscaled fleet's added instances follow, in the order they joined)."""
    names: dict[int, str] = {}
    if res.autoscale is not None and "instances" in res.autoscale:
        hardware = {p.role: p.hardware for p in res.pools}
        return {i: f"{role} {j} ({hardware[role]})" for i, (role, j) in enumerate(res.autoscale["instances"])}
    for pool in res.pools:
        for j in range(pool.instances):
            names[len(names)] = f"{pool.role} {j} ({pool.hardware})"
    return names


def chrome_trace(results: list[FleetResult]) -> dict[str, Any]:
    """The trace-event JSON document (integer microseconds; one process per fleet, one named track per
    instance and per KV link)."""
    events: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    for pid, res in enumerate(results):
        meta.append({"ph": "M", "pid": pid, "tid": 0, "name": "process_name", "args": {"name": res.name}})
        meta.append({"ph": "M", "pid": pid, "tid": 0, "name": "process_sort_index", "args": {"sort_index": pid}})
        names = instance_names(res)
        tracks: dict[int, str] = {}
        for span in res.timeline or ():
            if span[0] == "step":
                _, inst, t0, t1, ptok, ndec = span
                name = f"prefill {ptok} + decode {ndec}" if ptok and ndec else (
                    f"prefill {ptok}" if ptok else f"decode {ndec}")
                tid, args = int(inst), {"prefill_tokens": ptok, "decode_seqs": ndec}
                tracks.setdefault(tid, names.get(tid, f"instance {tid}"))
            else:
                _, link, rid, t0, t1, nbytes = span
                name, tid, args = f"KV r{rid}", LINK_TID_BASE + int(link), {"bytes": nbytes}
                tracks.setdefault(tid, f"KV link {int(link)}")
            start, end = _us(t0), _us(t1)
            events.append({"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": start, "dur": end - start,
                           "args": args})
        for tid, track in sorted(tracks.items()):
            meta.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": track}})
            meta.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
    return {"traceEvents": meta + events, "displayTimeUnit": "ms"}
