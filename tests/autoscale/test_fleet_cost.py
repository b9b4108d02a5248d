"""Fleet cost: instance-hours of a step timeline against the static fleet at peak, by hand."""

from __future__ import annotations

import pytest

from twinfer.autoscale.fleet_cost import fleet_cost
from twinfer.errors import ConfigError


def test_three_hour_day_by_hand() -> None:
    # 2 instances for an hour, 4 for an hour, 2 for an hour: 8 instance-hours; the static
    # fleet at the peak of 4 runs 12. At $3/h: $24 against $36, a third saved.
    cost = fleet_cost([(0.0, 2), (3600.0, 4), (7200.0, 2)], end_s=10800.0, price_per_instance_hour_usd=3.0)
    assert cost.instance_hours == pytest.approx(8.0)
    assert cost.static_instance_hours == pytest.approx(12.0)
    assert (cost.peak_instances, cost.cost_usd, cost.static_cost_usd) == (4, pytest.approx(24.0), pytest.approx(36.0))
    assert cost.saving_fraction == pytest.approx(1 / 3)


def test_static_fleet_saves_nothing() -> None:
    cost = fleet_cost([(0.0, 5)], end_s=1800.0, price_per_instance_hour_usd=2.0)
    assert cost.instance_hours == cost.static_instance_hours == pytest.approx(2.5)
    assert cost.saving_fraction == 0.0


def test_bad_timelines() -> None:
    with pytest.raises(ConfigError, match="empty"):
        fleet_cost([], 10.0, 1.0)
    with pytest.raises(ConfigError, match="ascending"):
        fleet_cost([(5.0, 1), (1.0, 2)], 10.0, 1.0)
    with pytest.raises(ConfigError, match="ascending"):
        fleet_cost([(0.0, 1)], -1.0, 1.0)
