"""Fixtures for the LPU compiler tests (factories live in compiler_helpers.py)."""

from __future__ import annotations

import pytest
from compiler_helpers import make_tiny_model, make_tsp_chip

from twinfer.lpu.chip import Chip
from twinfer.models.spec import ModelSpec


@pytest.fixture
def tsp() -> Chip:
    """A TSP v1 chip (P1 numbers) with the default micro-architecture parameters."""
    return make_tsp_chip()


@pytest.fixture
def tiny_model() -> ModelSpec:
    """A 2-layer Llama-shaped model (see compiler_helpers.make_tiny_model)."""
    return make_tiny_model()
