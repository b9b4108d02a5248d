"""A fleet that rebalances as load moves: a Dynamo-style planner policy and its cost accounting.

Pure parts, no simulator import. The fleet simulator wires them (see also the
design note in :mod:`twinfer.kvcache`): every ``window_s`` it builds a
:class:`WindowSignals` from its metrics (queue depths at the window end, TTFT
and ITL percentiles of the window), calls :func:`plan_step`, and for each
returned :class:`PlannerAction` stops routing new work to the instance that
leaves a role at ``decided_at_s`` and puts the moved or added instance in
service at ``effective_at_s``. After the run, :func:`paid_instances_timeline`
and :func:`fleet_cost` give instance-hours and cost against the static fleet at
its peak; SLO attainment of both runs comes from the simulator's metrics.
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

__all__ = [
    "FleetCost",
    "FleetState",
    "PlannerAction",
    "PlannerConfig",
    "WindowSignals",
    "fleet_cost",
    "paid_instances_timeline",
    "plan_step",
]
