"""What the planner's pruning hands on: each candidate fleet's cost and which (candidate, rate) pairs survive.

Its own module so that :mod:`twinfer.plan.planner` (which prunes) and
:mod:`twinfer.plan.evaluate` (which reads the report) share it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twinfer.plan.space import Candidate


@dataclass(frozen=True)
class FleetCost:
    """Provisioned size, price and power of a candidate fleet."""

    devices: int
    price_per_hour_usd: float
    power_max_w: float
    power_idle_w: float
    racks: int  # racks it occupies (per device kind, rounded up, summed)


@dataclass
class PruneReport:
    """Which (candidate, rate) pairs survive to simulation, and why the others were dropped."""

    candidates: list[Candidate]
    costs: dict[str, FleetCost]  # by candidate key (absent: the instance does not fit in memory)
    survivors: list[tuple[Candidate, float]]  # (candidate, rate) pairs to simulate
    reasons: dict[tuple[str, float], str] = field(default_factory=dict)  # (key, rate) -> why pruned
