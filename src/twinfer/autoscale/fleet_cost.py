"""Cost of a fleet whose size changes over time, against the same fleet held static at its peak."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from twinfer.errors import ConfigError

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class FleetCost:
    """Instance-hours and dollars of a varying fleet and of a static fleet sized for its peak."""

    duration_s: float
    instance_hours: float  # integral of the paid-instance count over the run
    peak_instances: int
    static_instance_hours: float  # peak_instances over the whole run
    cost_usd: float
    static_cost_usd: float

    @property
    def saving_fraction(self) -> float:
        """1 - varying / static instance-hours (0 when both are zero)."""
        return 1.0 - self.instance_hours / self.static_instance_hours if self.static_instance_hours else 0.0


def fleet_cost(
    timeline: Sequence[tuple[float, int]], end_s: float, price_per_instance_hour_usd: float
) -> FleetCost:
    """Integrate a step function of paid instances, ``(time_s, count)`` change points, up to ``end_s``.

    The first point sets the start of the run; each count holds until the next
    point. The static fleet runs ``max(count)`` instances over the same span.
    """
    if not timeline:
        raise ConfigError("fleet cost: the instance timeline is empty")
    times = [t for t, _ in timeline]
    if any(b < a for a, b in zip(times, times[1:], strict=False)) or end_s < times[-1]:
        raise ConfigError("fleet cost: timeline times must be ascending and end_s after the last one")
    if not (price_per_instance_hour_usd >= 0 and math.isfinite(price_per_instance_hour_usd)):
        raise ConfigError(f"fleet cost: price must be >= 0, got {price_per_instance_hour_usd!r}")
    if any(count < 0 for _, count in timeline):
        raise ConfigError("fleet cost: instance counts must be >= 0")
    bounds = [*times[1:], end_s]
    seconds = sum(count * (stop - start) for (start, count), stop in zip(timeline, bounds, strict=True))
    duration = end_s - times[0]
    peak = max(count for _, count in timeline)
    hours = seconds / SECONDS_PER_HOUR
    static = peak * duration / SECONDS_PER_HOUR
    return FleetCost(
        duration_s=duration,
        instance_hours=hours,
        peak_instances=peak,
        static_instance_hours=static,
        cost_usd=hours * price_per_instance_hour_usd,
        static_cost_usd=static * price_per_instance_hour_usd,
    )
