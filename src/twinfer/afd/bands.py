"""Uncertainty bands of AFD instances whose FFN group is LPU chips: the same instance at the LPU's extreme sets.

An LPU's uncertain micro-architecture parameters are pinned down only to a
family of sets that fit the published measurements equally well
(:mod:`twinfer.lpu.calibrate`; the band of :mod:`twinfer.sim.lpu_bands`). For
an AFD instance the sets enter through its FFN group alone; the two that give
the fastest and the slowest step at a reference decode batch are picked with
the closed-form step model, keeping the FFN group's chip count fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from twinfer.afd.config import AfdConfig
from twinfer.afd.ffn import LpuFfnGroup
from twinfer.afd.step_cost import AfdStepCost
from twinfer.errors import CapacityError
from twinfer.lpu.chip import override_params, param_names
from twinfer.lpu.microarch import microarch_for
from twinfer.models.step import StepShape

#: Decode batch the fastest and slowest sets are chosen at (sequences, context tokens).
REF_SEQS, REF_CONTEXT = 64, 2048


def with_lpu_params(cost: AfdStepCost, overrides: Mapping[str, float]) -> AfdStepCost:
    """``cost``'s instance with its LPU chips' parameters overridden (same chip count)."""
    assert isinstance(cost.ffn, LpuFfnGroup)
    chip = replace(cost.ffn.chip, params=override_params(cost.ffn.chip.params, overrides))
    cfg = cost.config
    fixed = AfdConfig(cfg.attention, replace(cfg.ffn, chips=cost.ffn_devices), cfg.link, cfg.micro_batches)
    return AfdStepCost(cost.model, fixed, precision=cost.precision, expert_imbalance=cost.expert_imbalance,
                       max_batch_seqs=cost.max_batch_seqs, extra_hardware=cost.extra_hardware, lpu_chip=chip)


def afd_band_costs(cost: AfdStepCost) -> tuple[AfdStepCost, AfdStepCost] | None:
    """(fastest, slowest) variants of an AFD instance with LPU chips over the band's sets; None without LPUs."""
    if not isinstance(cost.ffn, LpuFfnGroup):
        return None
    sets = microarch_for(cost.ffn.chip.spec, param_names()).band_overrides()
    if not sets:
        return None
    shape = StepShape.decode([REF_CONTEXT] * min(REF_SEQS, cost.max_batch_seqs))
    variants = []
    for overrides in sets:
        try:
            variants.append(with_lpu_params(cost, overrides))
        except CapacityError:  # a set that leaves less SRAM than the chip count holds: outside this instance
            continue
    if not variants:
        return None
    timed = sorted(range(len(variants)), key=lambda i: (variants[i].step_time_s(shape), i))
    return variants[timed[0]], variants[timed[-1]]
