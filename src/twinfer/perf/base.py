"""One step-cost interface over every backend (GPU roofline models, the LPU cycle model).

The simulator asks an instance two things: how long one forward step of a
batch takes, and how much KV cache it can hold. Both GPU and LPU backends
answer through :class:`StepCostModel`, so a pool's hardware is a swap of
one object.

A backend may also offer ``decode_run_affine(decode_seqs, context_tokens) ->
(dt0_s, slope_s, valid_steps)``: plain decode steps of a batch whose context
sum grows by ``decode_seqs`` per step take ``dt0_s + slope_s * j`` for step
``j < valid_steps`` (``dt0_s`` > 0, ``slope_s`` >= 0, ``valid_steps`` an int >= 1).
The simulator then applies long decode runs in closed form
(:mod:`twinfer.sim.decode_run`); without it, it prices every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from twinfer.models.step import StepShape

#: ``valid_steps`` of a ``decode_run_affine`` ramp that holds for ever.
UNBOUNDED_STEPS = 1 << 62


@dataclass(frozen=True)
class InstanceResources:
    """What one serving instance (a TP x PP group of GPUs, or an LPU system) has to offer."""

    hardware: str  # preset name of the device
    num_devices: int  # GPUs or LPU chips in the instance
    kv_capacity_tokens: int  # KV-cache tokens that fit after weights and workspace
    max_batch_seqs: int  # most sequences one step may hold (compiled batch for LPUs)
    price_per_hour_usd: float  # for the whole instance
    power_idle_w: float  # for the whole instance
    power_max_w: float  # for the whole instance
    #: Micro-batches the instance can have in flight at once: its pipeline stages
    #: (LPU systems, GPU pipeline parallelism). Each takes the full step time.
    pipeline_lanes: int = 1


@runtime_checkable
class StepCostModel(Protocol):
    """Time of one forward step of a batch on one instance, and the instance's resources."""

    def step_time_s(self, shape: StepShape) -> float:
        """Wall time of one forward step computing ``shape`` on this instance."""
        ...

    def resources(self) -> InstanceResources:
        """Devices, KV capacity, batch limit, price and power of this instance."""
        ...


class StepTimeMemo:
    """``compute(shape)`` remembered per shape (up to ``max_shapes`` of them); an empty step takes no time.

    For backends whose step time is a pure function of the shape (the LPU chain, an AFD instance):
    simulations price the same shapes over and over.
    """

    def __init__(self, compute: Callable[[StepShape], float], max_shapes: int = 1_000_000) -> None:
        self._compute = compute
        self._max = max_shapes
        self._times: dict[StepShape, float] = {}

    def __call__(self, shape: StepShape) -> float:
        hit = self._times.get(shape)
        if hit is not None:
            return hit
        if shape.total_tokens <= 0:
            return 0.0
        t = self._compute(shape)
        if len(self._times) < self._max:
            self._times[shape] = t
        return t
