"""Instance kinds and fleet layouts: every registered entry behaves as its flags say."""

from __future__ import annotations

import pytest
from sim_factories import FixedCost

from twinfer.sim.batching import BatchingConfig
from twinfer.sim.cluster import FleetSim, LinkSetup, PoolSetup
from twinfer.sim.kinds import FLEET_LAYOUTS, INSTANCE_KINDS
from twinfer.sim.request import Request, RequestState
from twinfer.sim.scheduler import Scheduler


@pytest.mark.parametrize("name", sorted(INSTANCE_KINDS))
def test_every_instance_kind_admits_and_hands_off_as_its_flags_say(name):
    kind = INSTANCE_KINDS[name]
    sched = Scheduler(name, BatchingConfig(kv_policy="reserve", block_tokens=16), 16_000, 8)
    r = Request(0, 0.0, 100, 60)
    sched.enqueue(r)
    out = sched.schedule(0.0)
    assert out is not None
    # reserve: 100 prompt tokens are 7 blocks of 16; with the 60 outputs, 160 tokens are 10 blocks
    assert r.blocks == (10 if kind.reserves_output_kv else 7)
    res = sched.update(out, 1.0)
    assert res is not None and res.first == [r]
    if kind.hands_off:
        assert res.handoff == [r] and r.state is RequestState.TRANSFERRING
    else:
        assert not res.handoff and sched.ready == [r]


@pytest.mark.parametrize("roles", sorted(FLEET_LAYOUTS))
def test_every_fleet_layout_serves_a_request_from_entry_to_last_pool(roles):
    layout = FLEET_LAYOUTS[roles]
    pools = [PoolSetup(role, FixedCost(fixed_s=0.01), 1, BatchingConfig()) for role in roles]
    sim = FleetSim(pools, kv_bytes_per_token=1000.0, num_layers=10,
                   link=LinkSetup(bw_bytes_per_s=1e6, latency_s=0.0))
    sim.load_workload([0.0], [100], [5])
    sim.run_until()
    (r,) = sim.requests
    assert sim.mode == layout.mode and r.state is RequestState.DONE
    entry, last = sim.pools[layout.entry].instances[0], sim.pools[layout.last].instances[0]
    assert (r.prefill_instance, r.decode_instance) == (entry.index, last.index)
    # first token after the 10 ms prefill; a hand-off adds the 100 ms transfer of 1e5 KV bytes over 1e6 B/s
    moved = 0.1 if INSTANCE_KINDS[layout.entry].hands_off else 0.0
    assert r.first_token_s == pytest.approx(0.01)
    assert r.finish_s == pytest.approx(0.01 + moved + 4 * 0.01)
