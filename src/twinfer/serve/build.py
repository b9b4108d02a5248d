"""What the server paces with: a scenario's fleet, a quick one-pool fleet, or fixed latencies.

Each builder returns a :class:`FleetPlan`: a factory for a fresh
:class:`~twinfer.serve.pacing.FleetSim` (called on the server's event loop),
the model's name and context length (what clients may ask for), and a label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinfer.errors import UnknownNameError
from twinfer.serve.pacing import FleetSim


@dataclass(frozen=True)
class FleetPlan:
    """A fleet to pace requests with, and the model it serves."""

    make_sim: Callable[[], FleetSim]  # a fresh fleet simulation, built on the server's loop
    model_name: str  # model id clients pass (the preset or config name)
    context_tokens: int  # max prompt + completion tokens
    label: str  # what paces the tokens, for headers and logs


def fixed_plan(*, ttft_s: float, itl_s: float, model: str = "llama-3-8b") -> FleetPlan:
    """Every request gets the same TTFT and inter-token time (no simulator, no queueing)."""
    from twinfer.models import load_model
    from twinfer.serve.fixed import FixedLatencySim

    spec = load_model(model)
    return FleetPlan(
        make_sim=lambda: FixedLatencySim(ttft_s=ttft_s, itl_s=itl_s),
        model_name=spec.name,
        context_tokens=spec.max_position_embeddings,
        label=f"fixed ttft={ttft_s}s itl={itl_s}s",
    )


def quick_plan(
    *,
    model: str,
    hardware: str,
    tp: int = 1,
    instances: int = 1,
    policy: str = "chunked",
    max_batch_seqs: int | None = None,
    token_budget: int = 2048,
) -> FleetPlan:
    """One aggregated pool of ``instances`` x (``hardware`` with TP ``tp``) serving ``model``."""
    from twinfer.models import load_model
    from twinfer.perf.factory import make_step_cost
    from twinfer.serve.sim_fleet import SimulatedFleet
    from twinfer.sim.cluster import FleetSim as ClusterSim
    from twinfer.sim.cluster import PoolSetup
    from twinfer.sim.scheduler import BatchingConfig

    spec = load_model(model)
    batching = BatchingConfig(
        policy=policy, max_batch_seqs=max_batch_seqs, token_budget=token_budget
    )
    batching.check("--policy/--max-batch-seqs")
    cost = make_step_cost(spec, hardware, tp=tp, max_batch_seqs=max_batch_seqs)
    pools = [PoolSetup("mixed", cost, instances, batching)]
    kv_bytes = spec.kv_bytes_per_token(spec.native_dtype)

    def make() -> FleetSim:
        return SimulatedFleet(
            ClusterSim(
                pools, kv_bytes_per_token=kv_bytes, num_layers=spec.num_layers, track_tokens=True
            )
        )

    return FleetPlan(
        make_sim=make,
        model_name=spec.name,
        context_tokens=spec.max_position_embeddings,
        label=f"{instances}x {hardware} tp{tp} {policy}",
    )


def scenario_plan(path: Path | None, fleet: str | None = None) -> FleetPlan:
    """One fleet of a ``twinfer simulate`` scenario (its first, or the one named ``fleet``).

    ``path`` None uses the built-in default scenario of ``twinfer simulate``.
    """
    from twinfer.sim import default_scenario, load_scenario

    scenario = default_scenario()[0] if path is None else load_scenario(path)
    return plan_from_scenario(scenario, fleet)


def plan_from_scenario(scenario: Any, fleet: str | None) -> FleetPlan:
    """A FleetPlan for one fleet of a loaded :class:`twinfer.sim.Scenario`."""
    from twinfer.serve.sim_fleet import SimulatedFleet
    from twinfer.sim.run import build_fleet_sim, load_scenario_model

    names = [f.name for f in scenario.fleets]
    if fleet is None:
        chosen = scenario.fleets[0]
    elif fleet in names:
        chosen = scenario.fleets[names.index(fleet)]
    else:
        raise UnknownNameError(
            f"no fleet named {fleet!r} in scenario {scenario.name!r}; fleets: {', '.join(names)}"
        )
    spec = load_scenario_model(scenario)
    cost_cache: dict = {}
    build_fleet_sim(
        scenario, chosen, model=spec, cost_cache=cost_cache
    )  # fail early on a bad fleet

    def make() -> FleetSim:
        sim, _pricing = build_fleet_sim(
            scenario, chosen, model=spec, cost_cache=cost_cache, track_tokens=True
        )
        return SimulatedFleet(sim)

    return FleetPlan(
        make_sim=make,
        model_name=spec.name,
        context_tokens=spec.max_position_embeddings,
        label=f"{scenario.name}: {chosen.name}",
    )
