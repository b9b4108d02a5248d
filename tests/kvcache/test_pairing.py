"""Prefill-to-decode pairing with the link's load in view, by hand."""

from __future__ import annotations

import pytest

from twinfer.kvcache.pairing import DecodeCandidate, choose_decode


def test_a_busy_link_loses_to_a_free_one() -> None:
    # 1 GB of KV. Instance 1: link free now at 50 GB/s -> ready at 10 + 0.02 = 10.02 s.
    # Instance 2: 100 GB/s but busy until 10.5 -> ready at 10.51 s.
    cands = [
        DecodeCandidate(1, free_kv_tokens=10_000, active_requests=30, link_free_at_s=0.0, link_bw_bytes_per_s=50e9),
        DecodeCandidate(2, free_kv_tokens=10_000, active_requests=2, link_free_at_s=10.5, link_bw_bytes_per_s=100e9),
    ]
    pick = choose_decode(10.0, 1e9, 4000, cands)
    assert pick is not None and pick.instance_id == 1
    assert pick.kv_ready_s == pytest.approx(10.02)
    # Weighing load at 20 ms per active request: 10.02 + 0.6 = 10.62 against 10.51 + 0.04 = 10.55.
    weighed = choose_decode(10.0, 1e9, 4000, cands, load_weight_s=0.02)
    assert weighed is not None and weighed.instance_id == 2
    assert weighed.cost_s == pytest.approx(10.55)


def test_no_room_means_no_pairing() -> None:
    full = DecodeCandidate(1, free_kv_tokens=100, active_requests=0, link_free_at_s=0.0, link_bw_bytes_per_s=1e9)
    assert choose_decode(0.0, 1e6, 101, [full]) is None
    pick = choose_decode(0.0, 1e6, 100, [full], load_weight_s=0.0)
    assert pick is not None and pick.kv_ready_s == pytest.approx(1e-3)


def test_latency_counts_and_ties_go_to_the_less_busy() -> None:
    a = DecodeCandidate(1, 10, 5, 0.0, 1e9, link_latency_s=1e-3)
    b = DecodeCandidate(2, 10, 3, 0.0, 1e9, link_latency_s=1e-3)
    pick = choose_decode(0.0, 0.0, 1, [a, b])
    assert pick is not None and (pick.instance_id, pick.kv_ready_s) == (2, pytest.approx(1e-3))
