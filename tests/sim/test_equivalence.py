"""The fast paths (lazy aggregated runs, inline decode loops) change nothing but speed."""

from __future__ import annotations

import numpy as np
import pytest
from sim_factories import FixedCost, make_fleet, make_requests

from twinfer.sim.metrics import PoolPricing, fleet_result


@pytest.mark.parametrize("router", ["round_robin", "least_outstanding", "least_kv"])
@pytest.mark.parametrize("policy,kv_policy", [("chunked", "reserve"), ("continuous", "preempt"), ("static", "reserve")])
def test_fast_paths_match_plain_event_loop(router, policy, kv_policy):
    results = []
    for fast in (True, False):
        t, p, o = make_requests(600, 25.0, (20, 900), (1, 150), seed=11)
        sim = make_fleet(FixedCost(fixed_s=0.01, per_token_s=2e-5, kv_tokens=12000), count=3, router=router,
                         policy=policy, kv_policy=kv_policy, max_batch_seqs=16, sample_interval_s=0.5)
        sim.inline_ok = fast
        sim.load_workload(t, p, o)
        sim.run_until()
        assert sim.done()
        results.append(fleet_result("f", sim, {r: PoolPricing("f", 1, 1.0, 1.0, 2.0) for r in sim.pools}, 1.0, 0.05))
    a, b = results
    for name, col in a.requests.items():
        np.testing.assert_array_equal(col, b.requests[name], err_msg=name)
    assert a.summary.keys() == b.summary.keys()
    for k, v in a.summary.items():
        assert v == b.summary[k] or (v != v and b.summary[k] != b.summary[k]), k
    assert np.array_equal(a.tbt_hist[1], b.tbt_hist[1])
