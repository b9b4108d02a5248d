"""make_step_cost and scenario pools with expert parallelism (ep beside tp/pp)."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.gpu import GpuStepCost
from twinfer.gpu.expert_parallel import ExpertParallelStepCost
from twinfer.models import load_model
from twinfer.models.ops import Precision
from twinfer.perf import make_step_cost
from twinfer.sim.run import make_pool_cost
from twinfer.sim.scenario import PoolConfig


def test_ep_builds_the_expert_parallel_model():
    """ep > 1 on a GPU gives ep x tp devices; ep = 1 stays the plain GPU model."""
    model = load_model("deepseek-v3")
    cost = make_step_cost(model, "vr200", ep=8, expert_imbalance=1.5, precision=Precision(weights="fp8"))
    assert isinstance(cost, ExpertParallelStepCost) and cost.expert_imbalance == 1.5
    assert cost.resources().num_devices == 8
    assert type(make_step_cost(load_model("llama-3-8b"), "h100")) is GpuStepCost


def test_ep_errors_name_the_fix():
    model = load_model("deepseek-v3")
    with pytest.raises(ConfigError, match="set pp to 1"):
        make_step_cost(model, "vr200", ep=8, pp=2)
    with pytest.raises(ConfigError, match="applies to GPU pools"):
        make_step_cost(model, "groq3-lp30", ep=8)


def test_scenario_pool_takes_ep_and_imbalance():
    """A pool's ep and expert_imbalance reach the step-cost model; bad values are clear errors."""
    pool = PoolConfig.from_dict({"hardware": "vr200", "ep": 8, "expert_imbalance": 1.2, "precision": "fp8"}, "pools.decode")
    assert (pool.ep, pool.expert_imbalance, pool.tp) == (8, 1.2, 1)
    cost = make_pool_cost(load_model("deepseek-v3"), pool)
    assert isinstance(cost, ExpertParallelStepCost) and cost.ep == 8 and cost.expert_imbalance == 1.2
    assert PoolConfig.from_dict({"hardware": "h100"}, "p").ep == 1
    with pytest.raises(ConfigError, match=r"pools\.decode\.expert_imbalance"):
        PoolConfig.from_dict({"hardware": "vr200", "ep": 8, "expert_imbalance": 0.5}, "pools.decode")
    with pytest.raises(ConfigError, match=r"pools\.decode\.ep"):
        PoolConfig.from_dict({"hardware": "vr200", "ep": 0}, "pools.decode")
