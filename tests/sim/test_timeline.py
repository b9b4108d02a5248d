"""`simulate --trace`: named tracks, whole-microsecond slices that never overlap on a track."""

from __future__ import annotations

import json
from collections import defaultdict

from twinfer.cli import main

SCENARIO = """
name: tl
model: llama-3-8b
workload:
  num_requests: 60
  arrivals: {kind: poisson, rate_per_s: 20}
  prompt_tokens: {kind: fixed, value: 333}
  output_tokens: {kind: fixed, value: 17}
fleets:
  - name: disagg
    pools: {prefill: {hardware: h100, count: 2}, decode: {hardware: h100, count: 1}}
    kv_link: {name: ib-ndr, count: 1}
"""


def _trace(tmp_path) -> dict:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    assert main(["simulate", str(path), "--trace", str(tmp_path / "t.json"), "--json"]) == 0
    return json.loads((tmp_path / "t.json").read_text())


def test_every_track_is_named(tmp_path, capsys) -> None:
    events = _trace(tmp_path)["traceEvents"]
    named = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    used = {(e["pid"], e["tid"]) for e in events if e["ph"] == "X"}
    assert used <= set(named)
    assert {"prefill 0 (h100-sxm)", "prefill 1 (h100-sxm)", "decode 0 (h100-sxm)", "KV link 0"} <= set(named.values())
    # instance numbering: the two prefill instances come first (tids 0, 1), then decode (tid 2)
    assert named[(0, 2)] == "decode 0 (h100-sxm)"


def test_slices_are_whole_microseconds_and_never_overlap(tmp_path, capsys) -> None:
    events = [e for e in _trace(tmp_path)["traceEvents"] if e["ph"] == "X"]
    assert events
    by_track = defaultdict(list)
    for e in events:
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0
        by_track[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    touching = 0
    for spans in by_track.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end
            touching += start == end
    assert touching > 0  # back-to-back decode steps exist and share their boundary exactly
