"""Fixtures for the GPU-model tests: hardware, models, and kernel-model factories."""

from __future__ import annotations

import pytest

from twinfer.gpu.efficiency import GpuEfficiency, default_efficiency
from twinfer.gpu.kernels import KernelModel
from twinfer.hardware import get_hardware, get_link


@pytest.fixture
def make_kernels():
    """KernelModel of a GPU preset, with its shipped (or the given) efficiencies."""

    def _make(gpu_name: str = "h100", eff: GpuEfficiency | None = None) -> KernelModel:
        gpu = get_hardware(gpu_name)
        return KernelModel(gpu, eff or default_efficiency(gpu.name), get_link(gpu.scale_up_link), get_link("ib-ndr"))

    return _make
