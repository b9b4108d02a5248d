"""A fleet that rebalances as load moves: a Dynamo-style planner policy and its cost accounting.

Pure parts, no simulator import; :mod:`twinfer.sim.rebalancer` wires them into a
run (a fleet's ``autoscale:`` block). Every ``interval_s`` it builds a
:class:`WindowSignals` from its metrics (queue depths at the window end, TTFT
and ITL percentiles of the window), calls :func:`plan_step` (prefill + decode)
or :func:`plan_step_pool` (an aggregated fleet's mixed pool), and for each
returned :class:`PlannerAction` stops routing new work to the instance that
leaves a role at ``decided_at_s``, lets it drain, and puts the moved or added
instance in service after the reconfiguration delay. After the run,
:func:`fleet_cost` gives instance-hours and cost against the static fleet at its
peak (:mod:`twinfer.sim.autoscale_results`); :func:`paid_instances_timeline` is
the same count for a fixed delay, when drains take no time.
"""

from twinfer.autoscale.fleet_cost import FleetCost, fleet_cost
from twinfer.autoscale.rebalance import (
    FleetState,
    PlannerAction,
    PlannerConfig,
    WindowSignals,
    paid_instances_timeline,
    plan_step,
)
from twinfer.autoscale.single_pool import PoolState, plan_step_pool

__all__ = [
    "FleetCost",
    "FleetState",
    "PlannerAction",
    "PlannerConfig",
    "PoolState",
    "WindowSignals",
    "fleet_cost",
    "paid_instances_timeline",
    "plan_step",
    "plan_step_pool",
]
