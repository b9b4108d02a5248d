"""Build the step-cost model of one serving instance, whatever its silicon."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.perf.base import StepCostModel

if TYPE_CHECKING:
    from twinfer.hardware.loader import HardwareSet


def make_step_cost(
    model: ModelSpec,
    hardware: str,
    *,
    tp: int = 1,
    pp: int = 1,
    chips: int | None = None,
    precision: Precision | None = None,
    max_batch_seqs: int | None = None,
    calibration: str | Path | None = None,
    extra_hardware: HardwareSet | None = None,
    engine: str | None = None,
    ep: int = 1,
    expert_imbalance: float = 1.0,
) -> StepCostModel:
    """The step-cost model for ``model`` on an instance of ``hardware``.

    GPUs use ``tp`` x ``pp`` devices and the calibrated roofline model
    (:mod:`twinfer.gpu`); LPUs use ``chips`` chips (the smallest count that
    fits when None) and the compiled program's cycle model (:mod:`twinfer.lpu`).
    ``max_batch_seqs`` caps the sequences in one step (None: the backend's default).
    ``calibration`` is a file written by ``twinfer calibrate`` that replaces a
    GPU's default efficiency curves; ``extra_hardware`` holds user-defined chips
    and links (``twinfer.hardware.load_hardware_file``). ``engine`` names a GPU
    serving-engine profile (:mod:`twinfer.gpu.engines`; None: the roofline). ``ep`` > 1 makes a GPU
    instance of ``ep`` attention replicas with the experts split over them
    (:mod:`twinfer.gpu.expert_parallel`); ``expert_imbalance`` is its hottest
    rank's expert load over the mean.
    """
    from twinfer.errors import ConfigError
    from twinfer.hardware import get_hardware
    from twinfer.hardware.specs import GpuSpec, LpuSpec

    spec = get_hardware(hardware, extra_hardware)
    if isinstance(spec, GpuSpec):
        from twinfer.gpu.efficiency import default_efficiency, load_calibration
        from twinfer.gpu.step_cost import GpuStepCost

        efficiency = None
        if calibration is not None:
            efficiency = load_calibration(calibration, base=default_efficiency(spec.name))
        if ep > 1:
            from twinfer.gpu.expert_parallel import ExpertParallelStepCost

            if pp > 1:
                raise ConfigError(f"ep={ep} with pp={pp}: expert parallelism here runs without pipeline stages; set pp to 1")
            return ExpertParallelStepCost(model, spec, tp=tp, ep=ep, expert_imbalance=expert_imbalance, precision=precision,
                                          max_batch_seqs=max_batch_seqs, efficiency=efficiency, extra_hardware=extra_hardware,
                                          engine=engine)
        return GpuStepCost(
            model, spec, tp=tp, pp=pp, precision=precision, max_batch_seqs=max_batch_seqs,
            efficiency=efficiency, extra_hardware=extra_hardware, engine=engine,
        )
    if ep > 1:
        raise ConfigError(f"ep={ep} applies to GPU pools; {hardware!r} is an LPU (its chips are set with chips)")
    if calibration is not None:
        raise ConfigError(f"a GPU calibration file was given for {hardware!r}, which is an LPU; drop it for LPU pools")
    if engine not in (None, "roofline"):
        raise ConfigError(f"engine {engine!r} is a GPU serving engine but {hardware!r} is an LPU; drop engine: for LPU pools")
    from twinfer.lpu.chip import make_chip
    from twinfer.lpu.step_cost import LpuStepCost

    assert isinstance(spec, LpuSpec)
    return LpuStepCost(model, spec, chips=chips, precision=precision, max_batch_seqs=max_batch_seqs,
                       chip=make_chip(spec, extra=extra_hardware))
