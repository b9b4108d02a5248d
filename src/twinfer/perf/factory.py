"""Build the step-cost model of one serving instance, whatever its silicon."""

from __future__ import annotations

from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.perf.base import StepCostModel


def make_step_cost(
    model: ModelSpec,
    hardware: str,
    *,
    tp: int = 1,
    pp: int = 1,
    chips: int | None = None,
    precision: Precision | None = None,
    max_batch_seqs: int | None = None,
) -> StepCostModel:
    """The step-cost model for ``model`` on an instance of ``hardware``.

    GPUs use ``tp`` x ``pp`` devices and the calibrated roofline model
    (:mod:`twinfer.gpu`); LPUs use ``chips`` chips (the smallest count that
    fits when None) and the compiled program's cycle model (:mod:`twinfer.lpu`).
    ``max_batch_seqs`` caps the sequences in one step (None: the backend's default).
    """
    from twinfer.hardware import get_hardware

    spec = get_hardware(hardware)
    if spec.kind == "gpu":
        from twinfer.gpu.step_cost import GpuStepCost

        return GpuStepCost(model, spec, tp=tp, pp=pp, precision=precision, max_batch_seqs=max_batch_seqs)
    from twinfer.lpu.step_cost import LpuStepCost

    return LpuStepCost(model, spec, chips=chips, precision=precision, max_batch_seqs=max_batch_seqs)
