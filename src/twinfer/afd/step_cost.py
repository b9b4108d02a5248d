"""AfdStepCost: the step-cost model of an attention/FFN-disaggregated decode instance.

A step of a batch is cut into ``m`` micro-batches (never more than its
sequences); each attention replica carries its share of every micro-batch.
Per crossing layer (:func:`twinfer.afd.attention.crossing_layers`) and
micro-batch, with the busiest micro-batch and the busiest replica:

* ``a`` -- the attention side on one replica (:class:`AttentionReplicaCost`),
* ``d`` -- the M-to-N dispatch: the replica sends ``tokens x top_k x hidden``
  elements (:func:`twinfer.afd.pipeline.dispatch_bytes`; 1 byte each for
  8-bit models, as DeepEP dispatches, else the activation type) over its
  ``tp`` GPUs' link ports; a GPU FFN group's busiest port receives
  ``expert_imbalance / (ep x tp)`` of all of them, and the slower side sets
  the time (``latency + bytes / bandwidth``, the link preset's raw values),
* ``f`` -- the FFN group's layer (:mod:`twinfer.afd.ffn`),
* ``c`` -- the combine, as many elements back in the activation type.

These feed the ping-pong closed form :func:`twinfer.afd.pipeline.ping_pong_step_s`;
the layers that never cross (a MoE model's dense layers), the embedding, the
LM head and the host time of the whole replica share run before and after it
on the attention GPUs, unoverlapped. KV capacity is the attention replicas'
HBM after their weights; price and power add both groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinfer.afd.attention import AttentionReplicaCost, crossing_layers
from twinfer.afd.config import AfdConfig
from twinfer.afd.ffn import GpuFfnGroup, make_ffn_group
from twinfer.afd.pipeline import dispatch_bytes, ping_pong_step_s
from twinfer.errors import ConfigError
from twinfer.gpu.expert_parallel import replica_shape
from twinfer.gpu.step_cost import DEFAULT_MAX_BATCH_SEQS
from twinfer.hardware.loader import HardwareSet
from twinfer.hardware.registry import get_hardware, get_link
from twinfer.hardware.specs import LPU_GPU_LINK, GpuSpec
from twinfer.lpu.chip import Chip
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources, StepTimeMemo
from twinfer.perf.pipeline import lane_share
from twinfer.units import dtype_bytes

#: The link between the groups when the scenario names none and the FFN group is an LPU (an LPX rack's attach link).
DEFAULT_LPU_LINK = LPU_GPU_LINK


@dataclass(frozen=True)
class AfdStepParts:
    """Where one step's time goes (seconds): per crossing layer and micro-batch, and the whole step."""

    micro_batches: int  # micro-batches actually used (at most the step's sequences)
    attention_s: float  # a: one micro-batch, one crossing layer, busiest replica
    dispatch_s: float  # d
    ffn_s: float  # f
    combine_s: float  # c
    pipeline_s: float  # the crossing layers (ping-pong closed form)
    outside_s: float  # staying layers, embedding, LM head and host time
    total_s: float


class AfdStepCost:
    """The :class:`twinfer.perf.base.StepCostModel` of an AFD decode instance (see the module doc)."""

    def __init__(self, model: ModelSpec, config: AfdConfig, *, precision: Precision | None = None,
                 expert_imbalance: float = 1.0, max_batch_seqs: int | None = None,
                 extra_hardware: HardwareSet | None = None, lpu_chip: Chip | None = None) -> None:
        a = config.attention
        gpu = get_hardware(a.hardware, extra_hardware)
        if not isinstance(gpu, GpuSpec):
            raise ConfigError(f"attention.hardware: {a.hardware!r} is an LPU; the attention group holds the KV cache "
                              "in HBM and must be GPUs (put LPUs in the ffn group)")
        if config.micro_batches < 1:
            raise ConfigError(f"micro_batches must be >= 1, got {config.micro_batches}")
        self.model, self.config = model, config
        self.precision = precision or Precision()
        self.max_batch_seqs = max_batch_seqs or DEFAULT_MAX_BATCH_SEQS * a.replicas
        self.attention = AttentionReplicaCost(model, gpu, tp=a.tp, precision=self.precision,
                                              max_batch_seqs=-(-self.max_batch_seqs // a.replicas),
                                              extra_hardware=extra_hardware)
        f = config.ffn
        ffn_spec = get_hardware(f.hardware, extra_hardware)
        biggest = -(-self.max_batch_seqs // config.micro_batches)
        self.ffn = make_ffn_group(model, ffn_spec, chips=f.chips, ep=f.ep, tp=f.tp, precision=self.precision,
                                  max_tokens=biggest, expert_imbalance=expert_imbalance, extra_hardware=extra_hardware,
                                  lpu_chip=lpu_chip)
        link_name = config.link or (gpu.scale_up_link if isinstance(self.ffn, GpuFfnGroup) else DEFAULT_LPU_LINK)
        self.link = get_link(link_name, extra_hardware)
        self.link_name = link_name
        self.layers = crossing_layers(model)
        self.top_k = model.moe.experts_per_token if model.moe is not None else 1
        self.expert_imbalance = expert_imbalance
        act = float(dtype_bytes(self.precision.activations))
        self.dispatch_elem_bytes = 1.0 if dtype_bytes(self.precision.weights) <= 1 else act
        self.combine_elem_bytes = act
        self._ffn_spec = ffn_spec
        self.extra_hardware = extra_hardware
        self._step_time = StepTimeMemo(lambda shape: self.parts(shape).total_s)

    # ---- the parts of a step ------------------------------------------------------------
    def transfer_s(self, instance_tokens: int, replica_tokens: int, elem_bytes: float) -> float:
        """One direction of one layer's M-to-N transfer for a micro-batch (the slower of sender and receiver)."""
        if instance_tokens <= 0:
            return 0.0
        h, bw = self.model.hidden_size, self.link.bw_bytes_per_s
        send = dispatch_bytes(replica_tokens, self.top_k, h, elem_bytes) / self.config.attention.tp
        if isinstance(self.ffn, GpuFfnGroup):
            recv = self.expert_imbalance * dispatch_bytes(instance_tokens, self.top_k, h, elem_bytes) / self.ffn.devices
            send = max(send, recv)
        return self.link.latency_s + send / bw

    def parts(self, shape: StepShape) -> AfdStepParts:
        """The step's time and where it goes (see :class:`AfdStepParts`)."""
        replicas = self.config.attention.replicas
        m = max(1, min(self.config.micro_batches, shape.num_seqs))
        mb = lane_share(shape, m)  # the busiest micro-batch of the instance
        mb_rep = replica_shape(mb, replicas)  # its share on the busiest replica
        whole_rep = replica_shape(shape, replicas)
        a = self.attention.crossing_layer_s(mb_rep)
        d = self.transfer_s(mb.total_tokens, mb_rep.total_tokens, self.dispatch_elem_bytes)
        f = self.ffn.layer_s(mb.total_tokens)
        c = self.transfer_s(mb.total_tokens, mb_rep.total_tokens, self.combine_elem_bytes)
        pipe = ping_pong_step_s(self.layers, m, a, d, f, c)
        outside = self.attention.staying_layers_s(whole_rep) + self.attention.once_s(whole_rep)
        return AfdStepParts(m, a, d, f, c, pipe, outside, pipe + outside)

    # ---- the step-cost interface ----------------------------------------------------------
    def step_time_s(self, shape: StepShape) -> float:
        """Wall time of one step of ``shape`` on the instance."""
        return self._step_time(shape)

    @property
    def ffn_devices(self) -> int:
        """GPUs or LPU chips of the FFN group."""
        return self.ffn.devices

    def resources(self) -> InstanceResources:
        """Both groups' devices, price and power; KV capacity of the attention replicas only."""
        a = self.config.attention
        one = self.attention.resources()
        n_f, s_f = self.ffn_devices, self._ffn_spec
        return InstanceResources(
            hardware=f"{one.hardware}+{s_f.name}",
            num_devices=a.devices + n_f,
            kv_capacity_tokens=one.kv_capacity_tokens * a.replicas,
            max_batch_seqs=self.max_batch_seqs,
            price_per_hour_usd=one.price_per_hour_usd * a.replicas + n_f * s_f.price_per_hour_usd,
            power_idle_w=one.power_idle_w * a.replicas + n_f * s_f.power_idle_w,
            power_max_w=one.power_max_w * a.replicas + n_f * s_f.power_max_w,
        )

    def describe(self) -> str:
        """The instance in words, for reports: ``attention 8x vr200 tp1 + ffn 1,408x groq3-lp30 over lpx-gpu, ...``."""
        cfg = AfdConfig(self.config.attention, self.config.ffn, self.link_name, self.config.micro_batches)
        return cfg.label(self.ffn_devices)
