"""The incremental API the emulation server uses: submit, run_until, per-token callbacks."""

from __future__ import annotations

import numpy as np
from sim_factories import FixedCost, make_fleet, make_requests


def test_paced_submission_matches_batch_run_and_never_runs_ahead():
    t, p, o = make_requests(80, 10.0, (10, 300), (1, 40), seed=9)
    cost = FixedCost(fixed_s=0.01, per_token_s=1e-5)
    batch = make_fleet(cost, count=2)
    batch.load_workload(t, p, o)
    batch.run_until()

    live = make_fleet(cost, count=2, track_tokens=True)
    events: list[tuple[str, int, float]] = []
    live.on_first_token = lambda r, at: events.append(("first", r.rid, at))
    live.on_token = lambda r, at, i: events.append(("token", r.rid, at))
    live.on_finish = lambda r, at: events.append(("finish", r.rid, at))
    nxt = 0
    clock = 0.0
    while nxt < len(t) or not live.done():
        clock += 0.05  # a server would advance to wall-clock time here
        while nxt < len(t) and t[nxt] <= clock:
            live.submit(int(p[nxt]), int(o[nxt]), at_s=float(t[nxt]))
            nxt += 1
        seen = len(events)
        live.run_until(clock)
        assert all(at <= clock + 1e-12 for _, _, at in events[seen:])
        assert live.env.now == clock
    for a, b in zip(batch.requests, live.requests, strict=True):
        assert a.finish_s == b.finish_s and a.first_token_s == b.first_token_s
    tokens = np.bincount([rid for kind, rid, _ in events if kind in ("first", "token")], minlength=len(t))
    assert np.array_equal(tokens, o)
    assert sum(1 for kind, _, _ in events if kind == "finish") == len(t)
