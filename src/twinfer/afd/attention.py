"""The attention group of an AFD instance: one replica of GPUs running every op but the FFN group's.

A replica (``tp`` GPUs) keeps attention, norms, embeddings, the LM head, the
MoE routers and shared experts (and, in MoE models, the few dense FFN layers)
with the KV cache of its sequences in HBM; the routed experts (MoE) or the
FFN (dense models) live on the FFN group. Op times come from the same
roofline kernels as :class:`twinfer.gpu.step_cost.GpuStepCost`, split by where
an op runs in the step: once per step, once per crossing layer (per
micro-batch), or once per layer that stays on the GPU.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

from twinfer.gpu.expert_parallel import ROUTED_EXPERT_OPS
from twinfer.gpu.step_cost import GpuStepCost, MemoryPlan
from twinfer.hardware.specs import GpuSpec
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.units import dtype_bytes

#: The FFN of a dense layer (gate and up fused, activation, down).
DENSE_FFN_OPS = frozenset({"mlp_up_proj", "mlp_act", "mlp_down_proj"})
#: Ops of a MoE layer beside its routed experts: they stay with attention.
MOE_LAYER_OPS = frozenset({"moe_router", "shared_up_proj", "shared_down_proj"})
#: Ops that run once per step, not per layer.
ONCE_OPS = frozenset({"embedding", "final_norm", "lm_head", "logit_softcap"})


def ffn_group_ops(model: ModelSpec) -> frozenset[str]:
    """Ops that run on the FFN group: the routed experts of a MoE model, the FFN of a dense one."""
    return ROUTED_EXPERT_OPS if model.moe is not None else DENSE_FFN_OPS


def crossing_layers(model: ModelSpec) -> int:
    """Layers whose activations cross to the FFN group and back: the MoE layers, or every layer of a dense model."""
    return model.num_moe_layers if model.moe is not None else model.num_layers


def ffn_group_params(model: ModelSpec) -> int:
    """Parameters the FFN group holds: every routed expert, or every dense FFN."""
    if model.moe is not None:
        return model.num_moe_layers * model.moe.num_experts * model.expert_params()
    return model.num_layers * model.dense_ffn_params()


class AttentionReplicaCost(GpuStepCost):
    """Op times of one attention replica of ``tp`` GPUs (the model minus its FFN-group ops).

    Its memory holds every weight but the FFN group's, so the KV room is what
    HBM has left after those. :meth:`crossing_layer_s`, :meth:`staying_layers_s`
    and :meth:`once_s` split a step of the replica's share of sequences.
    """

    def __init__(self, model: ModelSpec, gpu_spec: GpuSpec | str, *, tp: int = 1, **kwargs: Any) -> None:
        self._excluded_token_ops = ffn_group_ops(model)
        super().__init__(model, gpu_spec, tp=tp, pp=1, **kwargs)
        self._token_parts = lru_cache(maxsize=1 << 14)(self._token_parts_s)

    def _memory_plan(self) -> MemoryPlan:
        plan = super()._memory_plan()
        weights = (self.model.param_count() - ffn_group_params(self.model)) * dtype_bytes(self.precision.weights) / self.tp
        return dataclasses.replace(plan, weight_bytes=weights, kv_free_bytes=plan.usable_bytes - weights - plan.workspace_bytes)

    def _token_parts_s(self, tokens: int) -> tuple[float, float, float, float]:
        """(every layer, extra per MoE layer, extra per dense layer, embedding) op seconds for ``tokens`` tokens."""
        m = self.model
        every = moe = dense = once = 0.0
        shape = StepShape(decode_seqs=tokens, decode_context_tokens=tokens)
        for op in self._graph_ops(shape):
            if op.kind == "attention" or op.name in self._excluded_token_ops or op.name in ONCE_OPS - {"embedding"}:
                continue
            t = self.kernels.op_time_s(op)
            if op.name == "embedding":
                once += t
            elif op.name in MOE_LAYER_OPS:
                moe += t
            elif op.name in DENSE_FFN_OPS:
                dense += t
            else:
                every += t * op.repeat / m.num_layers  # norms, projections, residual adds, all-reduces
        return every, moe, dense, once

    def attention_layer_s(self, shape: StepShape) -> float:
        """Attention of one layer for ``shape`` (the mean over layers for models with sliding-window layers)."""
        if self._sliding_layers:
            return self._attention_all_layers_s(shape) / self._layers
        total = 0.0
        if shape.prefill_tokens:
            total += self._prefill_attention_s(shape)
        if shape.decode_seqs:
            total += self._decode_attention_s(shape)
        return total

    def crossing_layer_s(self, shape: StepShape) -> float:
        """One crossing layer on the attention side: everything but the FFN group's ops, for ``shape``."""
        every, moe, _, _ = self._token_parts(shape.total_tokens)
        return every + (moe if self.model.moe is not None else 0.0) + self.attention_layer_s(shape)

    def staying_layers_s(self, shape: StepShape) -> float:
        """The layers that never cross (the dense FFN layers of a MoE model), whole, for ``shape``."""
        n = self.model.num_dense_layers if self.model.moe is not None else 0
        if not n:
            return 0.0
        every, _, dense, _ = self._token_parts(shape.total_tokens)
        return n * (every + dense + self.attention_layer_s(shape))

    def once_s(self, shape: StepShape) -> float:
        """Embedding, final norm, LM head and the per-step host time, for ``shape``."""
        _, _, _, embed = self._token_parts(shape.total_tokens)
        return embed + self._per_seq(shape.logit_rows) + self._step_overhead_s
