"""Fixtures for simulator tests; the factories themselves live in sim_factories.py."""

from __future__ import annotations

import pytest
from sim_factories import FixedCost


@pytest.fixture
def fixed_cost() -> FixedCost:
    """A 10 ms per step fake backend with ample KV."""
    return FixedCost()
