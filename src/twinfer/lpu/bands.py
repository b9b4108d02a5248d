"""Uncertainty bands: what a compiled model's speeds become under every parameter set consistent with the data.

The [U] parameters of a chip are not pinned down by the few public
measurements (:mod:`twinfer.lpu.calibrate`); the sets that fit them equally
well are shipped with the chip (``band_sets``), or, for an uncalibrated chip,
the low and high ends of each [U] range. A band re-evaluates the closed-form
step model once per set on the compiled plan and scales the compiled value by
the ratio to the point set: a handful of formula evaluations, not a compile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from twinfer.lpu.analytic import AnalyticLpu
from twinfer.lpu.chip import Chip, override_params, param_names
from twinfer.lpu.microarch import microarch_for
from twinfer.lpu.plan import Plan
from twinfer.lpu.summary import CompiledModel
from twinfer.lpu.system import System
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape


@dataclass(frozen=True)
class StepBands:
    """(low, high) ratios of a step's time to its point value over the band's parameter sets."""

    ratio_low: float
    ratio_high: float
    sets: int  # parameter sets evaluated
    calibrated: bool  # sets from a fit to measurements (else: the ends of the [U] ranges)

    def span(self, value: float) -> tuple[float, float]:
        """The band of a time ``value`` (seconds per step)."""
        return value * self.ratio_low, value * self.ratio_high

    def span_rate(self, value: float) -> tuple[float, float]:
        """The band of a rate ``value`` (tokens per second): inverse to the time."""
        return value / self.ratio_high, value / self.ratio_low


def step_bands(model: ModelSpec, chip: Chip, plan: Plan, precision: Precision, shape: StepShape) -> StepBands:
    """Ratios of ``shape``'s step time under each band set to the time under ``chip``'s own parameters."""
    ma = microarch_for(chip.spec, param_names())
    system = System(chip, plan.num_chips)
    point = AnalyticLpu(model, system, plan, precision).step_seconds(shape)
    ratios = [1.0]
    sets = ma.band_overrides()
    for overrides in sets:
        c = replace(chip, params=override_params(chip.params, overrides))
        ratios.append(AnalyticLpu(model, System(c, plan.num_chips), plan, precision).step_seconds(shape) / point)
    return StepBands(ratio_low=min(ratios), ratio_high=max(ratios), sets=len(sets), calibrated=ma.calibrated)


def compiled_bands(cm: CompiledModel) -> dict[str, object]:
    """Low-high bands of a compiled model's per-token latency, tokens/s per user, system tokens/s and TTFT."""
    prec = Precision(weights=cm.decode.weight_dtype, activations=cm.decode.activation_dtype,
                     kv_cache=cm.decode.activation_dtype)
    dec = step_bands(cm.model, cm.chip, cm.plan, prec, StepShape.decode([cm.decode.seq_len] * cm.decode.batch))
    pre = step_bands(cm.model, cm.chip, cm.plan, prec, StepShape.prefill([cm.prefill.seq_len] * cm.prefill.batch))
    per_token = cm.per_token_latency_s
    return {
        "per_token_latency_s_range": list(dec.span(per_token)),
        "tokens_per_s_per_user_range": list(dec.span_rate(1.0 / per_token)),
        "tokens_per_s_system_range": list(dec.span_rate(cm.decode.batch / per_token)),
        "ttft_s_range": list(pre.span(cm.ttft_s)),
        "band_parameter_sets": dec.sets,
        "band_from": "parameter sets consistent with the calibration data" if dec.calibrated
        else "low and high ends of the uncertain parameters' ranges (chip not calibrated)",
    }
