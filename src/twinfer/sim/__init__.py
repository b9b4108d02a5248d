"""Discrete-event simulator of LLM serving fleets: colocated, disaggregated, GPU and LPU pools.

Entry points: :func:`simulate` (a scenario), :func:`simulate_fleet` (one fleet),
:func:`build_fleet_sim` (a live :class:`FleetSim` for incremental use),
:func:`load_scenario` / :func:`default_scenario`. Result columns and metric
names are documented in :mod:`twinfer.sim.results`.
"""

from twinfer.sim.cluster import FleetSim, LinkSetup, PoolSetup
from twinfer.sim.default import default_scenario
from twinfer.sim.request import Request
from twinfer.sim.results import REQUEST_COLUMNS, SUMMARY_KEYS, FleetResult, ScenarioResult
from twinfer.sim.run import build_fleet_sim, simulate, simulate_fleet, with_rate_scale
from twinfer.sim.scenario import (
    FleetConfig,
    LinkConfig,
    PoolConfig,
    Scenario,
    SloConfig,
    load_scenario,
)
from twinfer.sim.scheduler import BatchingConfig, Scheduler

__all__ = [
    "REQUEST_COLUMNS", "SUMMARY_KEYS", "BatchingConfig", "FleetConfig", "FleetResult", "FleetSim",
    "LinkConfig", "LinkSetup", "PoolConfig", "PoolSetup", "Request", "Scenario", "ScenarioResult",
    "Scheduler", "SloConfig", "build_fleet_sim", "default_scenario", "load_scenario", "simulate",
    "simulate_fleet", "with_rate_scale",
]
