"""Wide expert parallelism on GPUs: attention data-parallel, routed experts split over the EP ranks.

The DeepSeek-V3 / SGLang wide-EP layout. An instance of ``ep x tp`` GPUs
holds ``ep`` attention replicas (``tp`` GPUs each, usually 1): every replica
keeps its own copy of attention, dense layers, shared experts, routers and
embeddings, and its own sequences with their KV cache. The routed experts
are split over the ``ep`` replicas (``ceil(E / ep)`` each, further split over
the replica's ``tp`` GPUs). Each MoE layer then

1. runs attention, the router and the shared expert on each replica's own
   tokens (a replica holds ``ceil(n / ep)`` of the ``n`` sequences),
2. dispatches every token to the ranks of its top-k experts (all-to-all),
3. runs each rank's experts on the tokens routed to them, and
4. combines the outputs back (all-to-all).

The step ends when the slowest rank ends: the replica with the most
sequences for steps 1, 2 and 4, and for step 3 the *hottest* rank, whose
expert load is ``expert_imbalance`` times the mean (1.0 is perfectly uniform
routing; DeepSeek's EPLB exists because real routing is not). Models with
8-bit weights dispatch 8-bit activations and combine in bf16, as DeepEP
does for DeepSeek-V3. What is not
modelled: overlap of the all-to-all with compute (SGLang's two-batch
overlap), redundant experts, and a token sent once per rank rather than once
per expert (see :mod:`twinfer.gpu.all_to_all`).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from typing import Any

from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu.all_to_all import all_to_all_time_s, dispatch_bytes_per_rank
from twinfer.gpu.kernels import KernelModel
from twinfer.gpu.step_cost import DEFAULT_MAX_BATCH_SEQS, GpuStepCost, MemoryPlan, OpTime
from twinfer.hardware.specs import GpuSpec
from twinfer.models.ops import Op, Precision, expected_experts_touched
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.units import dtype_bytes

#: Ops of the routed experts, which EP prices on the hottest rank instead of per replica.
ROUTED_EXPERT_OPS = frozenset({"moe_up_proj", "moe_act", "moe_down_proj"})


def replica_shape(shape: StepShape, ep: int) -> StepShape:
    """The busiest attention replica's share of a step: ``ceil(n / ep)`` of the sequences, each of average size.

    A sequence lives on one replica, so a single long prompt is not split.
    Token sums are rounded up so that the share of a decode batch grows by
    exactly its sequence count per step (the affine decode runs rely on it).
    """
    if ep == 1:
        return shape

    def share(total: int, seqs: int, mine: int) -> int:
        return -(-total * mine // seqs) if seqs else -(-total // ep)

    ps, ds = -(-shape.prefill_seqs // ep), -(-shape.decode_seqs // ep)
    return StepShape(
        prefill_tokens=share(shape.prefill_tokens, shape.prefill_seqs, ps),
        prefill_seqs=ps,
        prefill_attn_pairs=share(shape.prefill_attn_pairs, shape.prefill_seqs, ps),
        prefill_kv_tokens=share(shape.prefill_kv_tokens, shape.prefill_seqs, ps),
        decode_seqs=ds,
        decode_context_tokens=share(shape.decode_context_tokens, shape.decode_seqs, ds),
        decode_extra_tokens=share(shape.decode_extra_tokens, shape.decode_seqs, ds),
    )


def ep_weight_bytes_per_gpu(model: ModelSpec, tp: int, ep: int, weights: str) -> float:
    """Weight bytes on one GPU: its replica's non-expert weights plus its share of the routed experts, over ``tp``.

    Routed experts: ``num_moe_layers x ceil(E / ep) x 3 x hidden x expert_width``;
    everything else (attention, dense FFNs, shared experts, routers, norms,
    embeddings) is replicated in every attention replica.
    """
    if model.moe is None:
        raise ConfigError(f"{model.name} has no experts; expert parallelism (--ep) applies to MoE models only")
    routed_all = model.num_moe_layers * model.moe.num_experts * model.expert_params()
    routed_mine = model.num_moe_layers * math.ceil(model.moe.num_experts / ep) * model.expert_params()
    return (model.param_count() - routed_all + routed_mine) * dtype_bytes(weights) / tp


def _expert_gemm(name: str, rows: int, k: int, n: int, groups: int, layers: int, prec: Precision) -> Op:
    """``groups`` expert GEMMs [rows, k] x [k, n], each reading its own weights once (models.ops conventions)."""
    wb, ab = dtype_bytes(prec.weights), dtype_bytes(prec.activations)
    return Op(name, "gemm", layers, flops=2.0 * rows * k * n * groups, bytes_read=groups * (k * n * wb + rows * k * ab),
              bytes_written=groups * rows * n * ab, dtype=prec.compute, m=rows, n=n, k=k, groups=groups)


def hottest_rank_expert_ops(model: ModelSpec, kernels: KernelModel, prec: Precision, *, tp: int, ep: int,
                            expert_imbalance: float, tokens: int, layers: int) -> list[OpTime]:
    """The routed-expert GEMMs and activation of the hottest of ``ep`` ranks (``tp`` GPUs each) for ``tokens`` tokens.

    The rank holds ``ceil(E / ep)`` experts, receives ``expert_imbalance`` times
    its mean share of the (token, expert) pairs, and reads the weights of the
    experts those pairs touch (uniform routing, :func:`expected_experts_touched`).
    """
    moe, h = model.moe, model.hidden_size
    assert moe is not None
    width = math.ceil(moe.expert_intermediate_size / tp)
    local = math.ceil(moe.num_experts / ep)
    pairs = math.ceil(expert_imbalance * tokens * moe.experts_per_token / ep)
    touched = expected_experts_touched(tokens, moe.num_experts, moe.experts_per_token) * local / moe.num_experts
    groups = max(1, min(local, round(touched)))
    rows = max(1, math.ceil(pairs / groups))
    ops = [_expert_gemm("moe_up_proj", rows, h, 2 * width, groups, layers, prec),
           _expert_gemm("moe_down_proj", rows, width, h, groups, layers, prec)]
    out = [OpTime(op.name, op.kind, op.repeat, kernels.op_time_s(op), op.flops, op.bytes_read + op.bytes_written)
           for op in ops]
    act_bytes = 3.0 * pairs * width * dtype_bytes(prec.activations)  # reads gate and up, writes one
    out.insert(1, OpTime("moe_act", "elementwise", layers, kernels.memory_time_s(act_bytes), 5.0 * pairs * width, act_bytes))
    return out


class ExpertParallelStepCost(GpuStepCost):
    """The step cost of a MoE model on ``ep`` attention replicas of ``tp`` GPUs, experts split over the replicas.

    Same interface as :class:`GpuStepCost` (step time, affine decode runs,
    resources, per-op breakdown); shapes are the whole instance's, which this
    class splits over the replicas. ``expert_imbalance`` >= 1 is the hottest
    rank's expert load over the mean. ``max_batch_seqs`` is the instance's
    (default: 256 per replica, vLLM's max_num_seqs per engine).
    """

    _excluded_token_ops = ROUTED_EXPERT_OPS

    def __init__(self, model: ModelSpec, gpu_spec: GpuSpec | str, *, tp: int = 1, ep: int = 2,
                 expert_imbalance: float = 1.0, max_batch_seqs: int | None = None, **kwargs: Any) -> None:
        if model.moe is None:
            raise ConfigError(f"{model.name} has no experts; expert parallelism (--ep) applies to MoE models only")
        if ep < 1:
            raise ConfigError(f"ep must be >= 1, got {ep}")
        if ep > model.moe.num_experts:
            raise ConfigError(f"ep={ep} is more ranks than {model.name}'s {model.moe.num_experts} routed experts "
                              f"(each rank holds whole experts here); use ep <= {model.moe.num_experts}")
        if kwargs.pop("pp", 1) != 1:
            raise ConfigError(f"ep={ep} with pipeline stages: expert parallelism here runs without them; set pp to 1")
        if not expert_imbalance >= 1.0:
            raise ConfigError(f"expert_imbalance is the hottest rank's expert load over the mean: >= 1.0, got {expert_imbalance}")
        self.ep, self.expert_imbalance = ep, float(expert_imbalance)
        self.instance_max_batch_seqs = max_batch_seqs or DEFAULT_MAX_BATCH_SEQS * ep
        try:
            super().__init__(model, gpu_spec, tp=tp, pp=1, max_batch_seqs=-(-self.instance_max_batch_seqs // ep), **kwargs)
        except CapacityError:
            m = self.memory
            raise CapacityError(
                f"{model.name} does not fit on {ep * tp} x {self.gpu.name} (ep={ep}, tp={tp}, weights {self.precision.weights}): "
                f"weights {m.weight_bytes / 1e9:.1f} GB (a replica of attention and shared weights + "
                f"{math.ceil(model.moe.num_experts / ep)} of {model.moe.num_experts} experts per layer) + workspace "
                f"{m.workspace_bytes / 1e9:.1f} GB per GPU exceed the usable {m.usable_bytes / 1e9:.1f} GB; "
                "spread the experts wider (a larger --ep), use fp8/fp4 weights, or a GPU with more memory"
            ) from None
        wide = ep * tp > self.gpu.scale_up_gpus
        link = self.kernels.scale_out if wide else self.kernels.scale_up
        self._a2a_bw = link.bw_bytes_per_s * self.efficiency.allreduce_bw_eff
        # 8-bit models dispatch 8-bit activations and combine in the activation type (DeepEP's FP8 dispatch, BF16 combine).
        one_byte = dtype_bytes(self.precision.weights) <= 1
        self._dispatch_bytes = 1.0 if one_byte else float(dtype_bytes(self.precision.activations))
        self._moe_s = lru_cache(maxsize=1 << 14)(self._moe_time_s)

    # ---- memory and resources ----------------------------------------------------------
    def _memory_plan(self) -> MemoryPlan:
        plan = super()._memory_plan()
        weights = ep_weight_bytes_per_gpu(self.model, self.tp, self.ep, self.precision.weights)
        return dataclasses.replace(plan, weight_bytes=weights, kv_free_bytes=plan.usable_bytes - weights - plan.workspace_bytes)

    def resources(self) -> InstanceResources:
        """The whole instance: ``ep x tp`` GPUs, every replica's KV room, the instance's batch limit."""
        one = super().resources()
        n = self.ep
        return dataclasses.replace(
            one, num_devices=one.num_devices * n, kv_capacity_tokens=one.kv_capacity_tokens * n,
            max_batch_seqs=self.instance_max_batch_seqs, price_per_hour_usd=one.price_per_hour_usd * n,
            power_idle_w=one.power_idle_w * n, power_max_w=one.power_max_w * n,
        )

    # ---- the MoE part: routed experts on the hottest rank, dispatch and combine ------------------
    def moe_op_times(self, instance_tokens: int, replica_tokens: int) -> list[OpTime]:
        """Per MoE layer: the hottest rank's routed-expert GEMMs and the dispatch/combine all-to-all."""
        m, moe, prec = self.model, self.model.moe, self.precision
        assert moe is not None
        layers, ep, h = m.num_moe_layers, self.ep, m.hidden_size
        out = hottest_rank_expert_ops(m, self.kernels, prec, tp=self.tp, ep=ep, expert_imbalance=self.expert_imbalance,
                                      tokens=instance_tokens, layers=layers)
        # The hottest rank receives expert_imbalance x the mean dispatch and sends as much back in the combine.
        for name, nbytes in (("ep_dispatch", self._dispatch_bytes), ("ep_combine", dtype_bytes(prec.activations))):
            moved = self.expert_imbalance * dispatch_bytes_per_rank(replica_tokens, moe.experts_per_token, h, nbytes, ep)
            t = all_to_all_time_s(moved, self._a2a_bw, self.efficiency.allreduce_latency_s)
            out.append(OpTime(name, "collective", layers, t, 0.0, moved))
        return out

    def _moe_time_s(self, instance_tokens: int, replica_tokens: int) -> float:
        return sum(o.total_s for o in self.moe_op_times(instance_tokens, replica_tokens))

    # ---- the step-cost interface ----------------------------------------------------------
    def step_time_s(self, shape: StepShape) -> float:
        """The busiest replica's step (attention and everything replicated) plus the MoE part of the whole instance."""
        if shape.total_tokens <= 0:
            return 0.0
        rep = replica_shape(shape, self.ep)
        return super().step_time_s(rep) + self._moe_s(shape.total_tokens, rep.total_tokens)

    def decode_run_affine(self, decode_seqs: int, context_tokens: int) -> tuple[float, float, int]:
        """Plain decode runs as an affine ramp (see :meth:`GpuStepCost.decode_run_affine`); the MoE part is constant."""
        rep = replica_shape(StepShape(decode_seqs=decode_seqs, decode_context_tokens=context_tokens), self.ep)
        dt0, slope, valid = super().decode_run_affine(rep.decode_seqs, rep.decode_context_tokens)
        return dt0 + self._moe_s(decode_seqs, rep.decode_seqs), slope, valid

    def op_times(self, shape: StepShape, fused: bool = True) -> list[OpTime]:
        """The busiest replica's ops, with the routed experts and the all-to-all of the whole instance."""
        rep = replica_shape(shape, self.ep)
        ops = [o for o in super().op_times(rep, fused) if o.name not in ROUTED_EXPERT_OPS]
        return ops + self.moe_op_times(shape.total_tokens, rep.total_tokens)
