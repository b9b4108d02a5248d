"""KV links: alpha-beta time for one transfer, processor sharing for concurrent ones."""

from __future__ import annotations

import numpy as np
from sim_factories import FixedCost, make_fleet

from twinfer.sim.cluster import LinkSetup
from twinfer.sim.env import Environment
from twinfer.sim.link import KvLink


def _transfer_times(starts_and_bytes, bw, latency):
    env = Environment()
    link = KvLink(env, 0, bw, latency)
    done: dict[int, float] = {}
    for key, (t0, nbytes) in enumerate(starts_and_bytes):
        env.schedule(t0, 9, lambda a: link.start(a[0], a[1], lambda k: done.__setitem__(k, env.now), a[0]),
                     (key, nbytes))
    env.run_until(float("inf"))
    return [done[k] for k in range(len(starts_and_bytes))]


def test_single_transfer_is_latency_plus_bytes_over_bandwidth():
    assert np.isclose(_transfer_times([(0.0, 50e9)], 50e9, 5e-6)[0], 1.0 + 5e-6, rtol=1e-12)


def test_two_equal_concurrent_transfers_share_bandwidth():
    a, b = _transfer_times([(0.0, 10.0), (0.0, 10.0)], 1.0, 0.5)
    assert np.isclose(a, 20.5) and np.isclose(b, 20.5)


def test_staggered_transfers_processor_sharing_hand_computed():
    # bw 1 B/s, no latency: A = 10 B at t=0, C = 4 B at t=2. A alone moves 2 B by t=2;
    # then both move at 0.5 B/s: C ends at 2 + 4/0.5 = 10 (A has 8 - 4 = 4 left); A ends at 14.
    a, c = _transfer_times([(0.0, 10.0), (2.0, 4.0)], 1.0, 0.0)
    assert np.isclose(c, 10.0) and np.isclose(a, 14.0)


def test_backlog_is_the_bytes_not_yet_moved_hand_computed():
    """bw 1 B/s, latency 1 s: A = 10 B starts at t=0, moves from t=1; C = 4 B starts at t=2, moves from t=3.
    At t=0.5 A is still starting up (10 B left); at t=2.5: A moved 1.5 B (8.5 left) + C starting (4) = 12.5;
    at t=5: A moved 2 B alone then 1 B of 2 shared s (7 left), C moved 1 B (3 left) = 10."""
    env = Environment()
    link = KvLink(env, 0, 1.0, 1.0)
    seen: dict[float, float] = {}
    env.schedule(0.0, 9, lambda _: link.start(0, 10.0, lambda k: None, 0), None)
    env.schedule(2.0, 9, lambda _: link.start(1, 4.0, lambda k: None, 1), None)
    for t in (0.5, 2.5, 5.0):
        env.schedule(t, 99, lambda tt: seen.__setitem__(tt, link.backlog_bytes()), t)
    env.run_until(float("inf"))
    assert np.isclose(seen[0.5], 10.0) and np.isclose(seen[2.5], 12.5) and np.isclose(seen[5.0], 10.0)
    assert link.backlog_bytes() == 0.0


def test_fleet_kv_transfer_time_and_bytes():
    # One request, 1,000 prompt tokens x 2,000 B/token = 2 MB over 1 GB/s + 1 ms latency = 3 ms.
    link = LinkSetup(bw_bytes_per_s=1e9, latency_s=1e-3)
    sim = make_fleet(FixedCost(), decode_count=1, link=link, kv_bytes_per_token=2000.0)
    sim.load_workload(np.array([0.0]), np.array([1000]), np.array([4]))
    sim.run_until()
    r = sim.requests[0]
    assert np.isclose(r.kv_end_s - r.kv_start_s, 1e-3 + 2e6 / 1e9, rtol=1e-9)
    assert sim.kv_bytes == 2e6
    # Layer-wise streaming leaves max(1/L of the bytes, bytes - bw x prefill time) to send after prefill.
    sim2 = make_fleet(FixedCost(fixed_s=0.001), decode_count=1, link=LinkSetup(1e9, 1e-3, layerwise=True),
                      kv_bytes_per_token=2000.0, num_layers=10)
    sim2.load_workload(np.array([0.0]), np.array([1000]), np.array([4]))
    sim2.run_until()
    r2 = sim2.requests[0]
    assert np.isclose(r2.kv_end_s - r2.kv_start_s, 1e-3 + (2e6 - 1e9 * 0.001) / 1e9, rtol=1e-9)
