"""GPU performance model: roofline plus the efficiency effects the roofline misses, calibratable.

:class:`GpuStepCost` times a forward step from the op graph of
:func:`twinfer.models.ops.lower_step`; :mod:`twinfer.gpu.kernels` holds the
per-kernel time formulas and :mod:`twinfer.gpu.efficiency` their parameters
(shipped defaults, or a calibration file from ``twinfer calibrate``).
"""

from twinfer.gpu.efficiency import GpuEfficiency, default_efficiency, load_calibration
from twinfer.gpu.step_cost import GpuStepCost

__all__ = ["GpuEfficiency", "GpuStepCost", "default_efficiency", "load_calibration"]
