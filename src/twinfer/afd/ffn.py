"""The FFN group of an AFD instance: the time one micro-batch's FFN (or routed experts) takes in one layer.

Two backends, both per crossing layer and per micro-batch of ``tokens``
tokens (all attention replicas together):

* :class:`GpuFfnGroup` -- ``ep`` ranks of ``tp`` GPUs with every layer's
  experts in HBM; the layer ends with its hottest rank (the same roofline
  expert GEMMs as wide EP, :func:`twinfer.gpu.expert_parallel.hottest_rank_expert_ops`).
  A dense FFN is split over all ``ep x tp`` GPUs by its width.
* :class:`LpuFfnGroup` -- LPU chips with the FFN weights in SRAM. Weights
  never move, so each layer owns its chips: ``chips // L`` chips per layer
  (or one chip holding several layers when the chips are fewer than the
  layers). A layer's experts spread over its chips as the LPU compiler puts
  them (:mod:`twinfer.lpu.experts`: whole experts per chip, or one expert
  split by width); the busiest chip runs its active experts one after
  another with the chip's closed-form matmul cycles. A dense FFN is split by
  width over the layer's chips, whose partial sums are reduced over C2C.

Not modelled: the FFN group's own tensor-parallel reduction on GPUs (the
attention side adds the returned partial outputs, as it adds the experts'),
and the LPU chips' receive ports (the link preset is per attention GPU).
"""

from __future__ import annotations

import math
from functools import lru_cache

from twinfer.afd.attention import crossing_layers, ffn_group_params
from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu.efficiency import default_efficiency
from twinfer.gpu.expert_parallel import hottest_rank_expert_ops
from twinfer.gpu.kernels import KernelModel
from twinfer.gpu.step_cost import DEFAULT_MEMORY_UTILIZATION
from twinfer.hardware.loader import HardwareSet
from twinfer.hardware.registry import get_link
from twinfer.hardware.specs import GpuSpec, LpuSpec
from twinfer.lpu.chip import Chip, make_chip
from twinfer.lpu.experts import expected_active_experts, routed_rows
from twinfer.models.ops import Precision, lower_step
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.units import dtype_bytes


class GpuFfnGroup:
    """The FFN group on ``ep`` x ``tp`` GPUs (see the module doc)."""

    def __init__(self, model: ModelSpec, gpu: GpuSpec, *, ep: int, tp: int, precision: Precision,
                 expert_imbalance: float = 1.0, extra_hardware: HardwareSet | None = None) -> None:
        if model.moe is None and ep > 1:
            raise ConfigError(f"{model.name} is dense: its FFN group has no experts to split (ep={ep}); set ffn.tp instead")
        self.model, self.gpu, self.ep, self.tp, self.precision = model, gpu, ep, tp, precision
        self.expert_imbalance = expert_imbalance
        self.devices = ep * tp
        per_gpu = ffn_group_params(model) * dtype_bytes(precision.weights) / self.devices
        usable = gpu.memory_bytes * DEFAULT_MEMORY_UTILIZATION
        if per_gpu > usable:
            need = math.ceil(ffn_group_params(model) * dtype_bytes(precision.weights) / usable)
            raise CapacityError(f"the FFN weights of {model.name} ({per_gpu / 1e9:.1f} GB per GPU) do not fit "
                                f"{self.devices} x {gpu.name} ({usable / 1e9:.1f} GB usable each); give the FFN group "
                                f"at least {need} GPUs (ffn.ep x ffn.tp) or 8-bit weights")
        self.kernels = KernelModel(gpu, default_efficiency(gpu.name), get_link(gpu.scale_up_link, extra_hardware),
                                   get_link("ib-ndr", extra_hardware))
        self.layer_s = lru_cache(maxsize=1 << 14)(self._layer_s)

    def _layer_s(self, tokens: int) -> float:
        """One layer's FFN for a micro-batch of ``tokens`` tokens, on the busiest GPU."""
        if tokens <= 0:
            return 0.0
        m = self.model
        if m.moe is not None:
            ops = hottest_rank_expert_ops(m, self.kernels, self.precision, tp=self.tp, ep=self.ep,
                                          expert_imbalance=self.expert_imbalance, tokens=tokens, layers=1)
            return sum(o.time_s for o in ops)
        graph = lower_step(m, StepShape(decode_seqs=tokens, decode_context_tokens=tokens), self.devices, 1, self.precision)
        return sum(self.kernels.op_time_s(op) for op in graph.ops if op.name.startswith("mlp_"))


class LpuFfnGroup:
    """The FFN group on LPU chips holding the FFN weights in SRAM (see the module doc).

    ``chips`` None takes the fewest that hold the weights; too few raises a
    :class:`CapacityError` that says how many are needed. ``max_tokens`` sizes
    the activation workspace (the largest micro-batch). ``chip`` replaces the
    preset's chip model (other micro-architecture parameters, for bands).
    """

    def __init__(self, model: ModelSpec, lpu: LpuSpec, *, chips: int | None, precision: Precision, max_tokens: int,
                 expert_imbalance: float = 1.0, extra_hardware: HardwareSet | None = None,
                 chip: Chip | None = None) -> None:
        self.model, self.precision, self.expert_imbalance = model, precision, expert_imbalance
        self.chip = chip or make_chip(lpu, extra=extra_hardware)
        layers = crossing_layers(model)
        width = model.moe.expert_intermediate_size if model.moe is not None else model.intermediate_size
        ab = dtype_bytes(precision.activations)
        workspace = max_tokens * (model.hidden_size + 3 * width) * ab  # input, gate, up, product rows
        room = self.chip.usable_sram_bytes - workspace
        layer_bytes = ffn_group_params(model) / layers * dtype_bytes(precision.weights)
        if room > 0 and layer_bytes > room:  # a layer needs several chips: each layer owns its own
            least = layers * math.ceil(layer_bytes / room)
        else:  # a chip holds one layer or more
            least = math.ceil(layers / max(1, int(room // layer_bytes))) if room > 0 else 0
        if room <= 0 or (chips is not None and chips < least):
            raise CapacityError(
                f"the FFN weights of {model.name} ({layer_bytes * layers / 1e9:.1f} GB at {precision.weights}) do not "
                f"fit {chips if chips is not None else 'any number of'} x {lpu.name} ({max(0, room) / 1e6:.0f} MB free "
                f"per chip after a {workspace / 1e6:.1f} MB activation workspace); "
                + (f"give ffn.chips >= {least} (or leave it out for the fewest that fit)" if room > 0
                   else "use smaller micro-batches (more micro_batches or a lower max_batch_seqs)"))
        self.devices = chips if chips is not None else least
        self.chips_per_layer = max(1, self.devices // layers)
        self.layer_s = lru_cache(maxsize=1 << 14)(self._layer_s)

    def _layer_s(self, tokens: int) -> float:
        """One layer's FFN for a micro-batch of ``tokens`` tokens, on the busiest of the layer's chips."""
        if tokens <= 0:
            return 0.0
        m, c, n = self.model, self.chip, self.chips_per_layer
        wd, ad, h = self.precision.weights, self.precision.activations, m.hidden_size
        silu = c.params.vxm_ops_silu_mul
        if m.moe is None:
            w = math.ceil(m.intermediate_size / n)
            cycles = (2 * c.matmul_cycles(tokens, h, w, wd, ad) + c.vxm_cycles(tokens * w, silu)
                      + c.matmul_cycles(tokens, w, h, wd, ad))
            if n > 1:  # reduce-scatter then all-gather of the partial sums over direct C2C links
                part = math.ceil(tokens * h / n)
                cycles += (2 * (c.c2c_cycles(int(part * dtype_bytes(ad))) + c.hop_latency_cycles)
                           + (n - 1) * c.vxm_cycles(part, 1))
            return cycles / c.spec.clock_hz
        moe = m.moe
        e, k = moe.num_experts, moe.experts_per_token
        local = math.ceil(e / n) if n <= e else 1
        w = moe.expert_intermediate_size if n <= e else math.ceil(moe.expert_intermediate_size / (n // e))
        active = expected_active_experts(e, k, tokens, local_experts=local, imbalance=self.expert_imbalance)
        busy = max(1, math.ceil(active))
        rows = max(1, math.ceil(routed_rows(e, k, tokens, local_experts=local, imbalance=self.expert_imbalance) / busy))
        per_expert = (2 * c.matmul_cycles(rows, h, w, wd, ad) + c.vxm_cycles(rows * w, silu)
                      + c.matmul_cycles(rows, w, h, wd, ad))
        return busy * per_expert / c.spec.clock_hz


def make_ffn_group(model: ModelSpec, spec: GpuSpec | LpuSpec, *, chips: int | None, ep: int, tp: int,
                   precision: Precision, max_tokens: int, expert_imbalance: float = 1.0,
                   extra_hardware: HardwareSet | None = None, lpu_chip: Chip | None = None) -> GpuFfnGroup | LpuFfnGroup:
    """The FFN group on ``spec``: GPUs use ``ep`` x ``tp``, LPUs ``chips`` (of ``lpu_chip``'s model when given)."""
    if isinstance(spec, GpuSpec):
        if chips is not None:
            raise ConfigError(f"ffn.chips applies to LPUs; {spec.name} is a GPU: set ffn.ep and ffn.tp")
        return GpuFfnGroup(model, spec, ep=ep, tp=tp, precision=precision, expert_imbalance=expert_imbalance,
                           extra_hardware=extra_hardware)
    if ep != 1 or tp != 1:
        raise ConfigError(f"{spec.name} is an LPU: its FFN group is set by ffn.chips, not ep/tp "
                          "(the experts spread over the chips each layer owns)")
    return LpuFfnGroup(model, spec, chips=chips, precision=precision, max_tokens=max_tokens,
                       expert_imbalance=expert_imbalance, extra_hardware=extra_hardware, chip=lpu_chip)
