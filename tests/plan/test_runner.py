"""The sweep's scenario runner: a worker reuses workloads without changing any result."""

from __future__ import annotations

import numpy as np

from twinfer.plan import runner
from twinfer.sim.run import simulate
from twinfer.sim.scenario import Scenario


def _scenario(count: int) -> dict:
    return {
        "name": "runner",
        "model": "llama-3-8b",
        "workload": {"trace": "builtin:azure-conv-sample", "max_requests": 300, "rate_scale": 2.0},
        "slo": {"ttft_s": 2.0, "tpot_s": 0.1},
        "fleets": [{"name": "h100", "pools": {"mixed": {"hardware": "h100", "count": count}}}],
    }


def test_cached_workloads_give_the_results_of_a_fresh_simulation():
    runner._WORKLOAD_CACHE.clear()
    first = runner.run_scenario(_scenario(2), 3)
    second = runner.run_scenario(_scenario(3), 3)  # same workload, from the cache
    assert len(runner._WORKLOAD_CACHE) == 1
    (cached,) = runner._WORKLOAD_CACHE.values()
    assert not cached.arrival_s.flags.writeable  # shared: nothing may change it
    for summary, count in ((first, 2), (second, 3)):
        fresh = simulate(Scenario.from_dict(_scenario(count), where="test"), 3).fleets[0].summary
        assert summary.keys() == fresh.keys()
        for k, v in summary.items():
            assert v == fresh[k] or (isinstance(v, float) and np.isnan(v) and np.isnan(fresh[k])), k
