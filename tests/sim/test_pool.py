"""A pool's queue counters: time integrals counted by hand."""

from __future__ import annotations

from sim_factories import FixedCost

from twinfer.sim.pool import Pool, PoolSetup
from twinfer.sim.scheduler import BatchingConfig


def test_queue_integrals_and_batch_cap():
    pool = Pool("mixed", PoolSetup("mixed", FixedCost(max_seqs=64), 2, BatchingConfig(max_batch_seqs=16)))
    assert pool.max_seqs == 16  # the tighter of the batching cap and the backend's
    pool.change(1.0, 2, 2)  # two requests arrive at 1 s and queue
    pool.change(3.0, -1, 0)  # one is admitted at 3 s
    pool.change(4.0, 0, -1)  # one finishes at 4 s
    assert pool.queue_area == 2 * 2.0 + 1 * 1.0  # waiting x time: 2 for 2 s, then 1 for 1 s
    assert pool.in_system_area == 2 * 3.0  # held: 2 from 1 s to 4 s
