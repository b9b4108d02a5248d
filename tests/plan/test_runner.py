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


def _same_named_model(root, layers: int) -> str:
    """A copy of the Llama-3-8B config with ``layers`` layers, in a folder called ``m`` under ``root``."""
    import json

    from twinfer.models.registry import preset_config

    folder = root / "m"
    folder.mkdir(parents=True)
    cfg = dict(preset_config("llama-3-8b"), num_hidden_layers=layers)
    (folder / "config.json").write_text(json.dumps(cfg))
    return str(folder)


def test_same_named_model_folders_in_one_sweep_give_their_own_results(tmp_path):
    # Regression: the worker-wide step-cost cache was keyed on the model's name (its folder
    # name), so the second model silently reused the first one's step times and KV capacity.
    from twinfer.models import load_model

    shallow = _same_named_model(tmp_path / "a", 32)
    deep = _same_named_model(tmp_path / "b", 64)
    assert load_model(shallow).name == load_model(deep).name  # the trap: same name, different model
    results = {}
    for path in (shallow, deep):  # one worker, one cache, as consecutive scenarios of a sweep
        results[path] = runner.run_scenario({**_scenario(2), "model": path}, 3)
    a, b = results[shallow], results[deep]
    # Twice the layers: twice the KV bytes per token, so the same HBM holds fewer tokens after
    # twice the weights; and each decode step reads twice the layers' weights, so it is slower.
    assert b["pool.mixed.kv_capacity_tokens"] < a["pool.mixed.kv_capacity_tokens"]
    assert b["tpot_mean_s"] > 1.5 * a["tpot_mean_s"]
    for path in (shallow, deep):  # and each equals a fresh run with no cache at all
        fresh = simulate(Scenario.from_dict({**_scenario(2), "model": path}, where="test"), 3).fleets[0].summary
        assert results[path]["tpot_mean_s"] == fresh["tpot_mean_s"]
        assert results[path]["pool.mixed.kv_capacity_tokens"] == fresh["pool.mixed.kv_capacity_tokens"]


def test_step_cost_cache_is_bounded_and_drops_the_least_recently_used():
    from twinfer.sim.run import StepCostCache

    cache = StepCostCache(max_entries=2)
    cache["a"], cache["b"] = "cost-a", "cost-b"  # type: ignore[assignment]
    assert cache["a"] == "cost-a"  # "a" is now the most recently used
    cache["c"] = "cost-c"  # type: ignore[assignment]
    assert list(cache) == ["a", "c"]
    assert len(runner._COST_CACHE) <= runner._COST_CACHE.max_entries
