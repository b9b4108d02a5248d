"""LpuStepCost: the LPU backend of :class:`twinfer.perf.base.StepCostModel`.

Step times come from the closed-form chain of the compiled plan
(:class:`twinfer.lpu.analytic.AnalyticLpu`), cached per shape. KV capacity is
the SRAM left after weights and workspace on the tightest stage — on an
SRAM-only chip it binds concurrency and context.
"""

from __future__ import annotations

from twinfer.errors import CapacityError
from twinfer.hardware.specs import LpuSpec
from twinfer.lpu.analytic import AnalyticLpu
from twinfer.lpu.chip import Chip, make_chip, param_names
from twinfer.lpu.layout import search_layouts
from twinfer.lpu.microarch import microarch_for
from twinfer.lpu.plan import Plan, kv_capacity_tokens, make_plan
from twinfer.lpu.system import System
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources, StepTimeMemo

#: Longest context per sequence an instance is planned to hold KV for (the model's own limit when shorter).
MAX_PLANNED_CONTEXT = 8192

#: Default precision on the LPU: 8-bit weights (Llama-2-70B only fits ~576 TSP v1 chips at <= 8 bits, lpu.md).
LPU_DEFAULT_PRECISION = Precision(weights="int8", activations="fp16", kv_cache="fp16")


def native_precision(spec: LpuSpec) -> Precision:
    """The precision ``spec`` runs models at by default (its micro-architecture set's ``precision``)."""
    w, a, kv = microarch_for(spec, param_names()).precision
    return Precision(weights=w, activations=a, kv_cache=kv)


class LpuStepCost:
    """Step time and resources of a model compiled onto an LPU system (the simulator's LPU backend).

    ``chips=None`` picks the fewest chips that hold the weights plus KV cache
    for ``max_batch_seqs`` sequences at the model's context length (capped at
    8,192 tokens); with ``chips`` given, the fastest layout on them that keeps
    KV room for those sequences (:meth:`_layout_on`). Step times are analytic (see :class:`AnalyticLpu`) and
    cached per shape, plus the per-token loop costs (:mod:`twinfer.lpu.token_loop`).
    Precision defaults to the chip's native one (TSP v1: int8 weights, fp16
    activations; LP30: fp8).
    """

    def __init__(self, model: ModelSpec, lpu_spec: LpuSpec, *, chips: int | None = None,
                 precision: Precision | None = None, max_batch_seqs: int | None = None,
                 chip: Chip | None = None) -> None:
        self.model = model
        self.chip = chip or make_chip(lpu_spec)
        self.precision = precision or native_precision(self.chip.spec)
        self._batch = max_batch_seqs or 8
        self._chips_asked = chips
        ctx = min(model.max_position_embeddings, MAX_PLANNED_CONTEXT)
        if chips is None:
            self.plan = make_plan(model, self.chip, self.precision, chips=chips, batch=self._batch, ctx=ctx,
                                  tokens=self._batch)
        else:
            self.plan = self._layout_on(chips, ctx)
        self.system = System(self.chip, self.plan.num_chips)
        self.analytic = AnalyticLpu(model, self.system, self.plan, self.precision)
        self._step_time = StepTimeMemo(self.analytic.step_seconds)

    def _layout_on(self, chips: int, ctx: int) -> Plan:
        """The fastest layout on ``chips`` chips that keeps KV room for a full compiled batch.

        It asks for room at ``ctx`` tokens per sequence, halving the context
        until some layout has it; when none holds even one token per sequence,
        the fastest layout for the weights alone. (The lowest-latency layout
        alone can leave a few thousand tokens of KV: Llama-3-70B on 576 TSP v1
        chips at 8 x 72 stages keeps 5,328, and a served pool queues on it.)
        """
        kv_ctx = ctx
        while kv_ctx >= 1:
            try:
                plan, _ = search_layouts(self.model, self.chip, self.precision, chips=chips, batch=self._batch,
                                         ctx=kv_ctx, tokens=self._batch)
                return plan
            except CapacityError:
                kv_ctx //= 2
        plan, _ = search_layouts(self.model, self.chip, self.precision, chips=chips, batch=1, ctx=1,
                                 tokens=self._batch)
        return plan

    def kv_capacity_tokens(self) -> int:
        """KV tokens that fit on the tightest stage after its weights and workspace."""
        return kv_capacity_tokens(self.model, self.chip, self.plan, self.precision)

    def step_time_s(self, shape: StepShape) -> float:
        """Wall time of one forward step of ``shape`` (layer chain + sampling, token return, sync, host loop)."""
        return self._step_time(shape)

    def resources(self) -> InstanceResources:
        """Chips, KV capacity, batch limit, price and power of the whole LPU system.

        A system of ``chips`` chips is paid for whole, though its layout may
        leave some idle (576 chips asked, 544 used); idle chips draw idle power.
        """
        used = self.plan.chips_used
        paid = max(self._chips_asked or used, used)
        s = self.chip.spec
        return InstanceResources(
            hardware=s.name, num_devices=paid, kv_capacity_tokens=self.kv_capacity_tokens(),
            max_batch_seqs=self._batch, price_per_hour_usd=s.price_per_hour_usd * paid,
            power_idle_w=s.power_idle_w * paid, power_max_w=s.power_max_w * used + s.power_idle_w * (paid - used),
            pipeline_lanes=len(self.plan.stages),
        )
