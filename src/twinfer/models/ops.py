"""Lower a model step to an operator graph: shapes, FLOPs, bytes and the collectives TP implies.

This is the pure *what* of a forward step; backends (GPU, LPU) decide *how
long*. Every op is per tensor-parallel rank and carries ``repeat``: how many
times it runs in the step (``num_layers`` for a per-layer op). Numbers follow
the usual conventions: a GEMM [m,k]x[k,n] is 2mkn FLOPs and reads its weights
once per step; an all-reduce moves ``message_bytes`` per rank.

Tensor parallelism follows Megatron-LM: attention heads and FFN width split
over ``tp`` ranks, one all-reduce after the attention output projection and
one after the FFN down projection. KV heads are replicated when ``tp`` exceeds
their number. Pipeline parallelism splits layers over ``pp`` stages and adds a
point-to-point send of activations between consecutive stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from twinfer.errors import ConfigError
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.units import dtype_bytes

OpKind = Literal["gemm", "attention", "norm", "elementwise", "embedding", "collective"]


@dataclass(frozen=True)
class Precision:
    """Storage types: weights, activations, and KV cache. GEMMs compute in the weights' type when it is 8-bit or less."""

    weights: str = "bf16"
    activations: str = "bf16"
    kv_cache: str = "bf16"

    @property
    def compute(self) -> str:
        """The dtype tensor cores run GEMMs in (FP8 weights imply FP8 GEMMs, as TensorRT-LLM does)."""
        return self.weights if dtype_bytes(self.weights) <= 1 else self.activations


@dataclass(frozen=True)
class Op:
    """One operator of a step, per tensor-parallel rank."""

    name: str  # e.g. qkv_proj, attention, attn_out_proj, mlp_up_proj, mlp_down_proj, all_reduce
    kind: OpKind
    repeat: int  # executions per step (num_layers for a per-layer op)
    flops: float  # per execution, per rank
    bytes_read: float  # per execution, per rank (weights + activations + KV)
    bytes_written: float  # per execution, per rank
    dtype: str = "bf16"  # compute type
    m: int = 0  # GEMM rows (tokens)
    n: int = 0  # GEMM output columns per rank
    k: int = 0  # GEMM reduction length
    groups: int = 1  # independent GEMMs of this shape (MoE experts touched)
    phase: str = ""  # attention: "prefill" or "decode"
    heads: int = 0  # attention heads per rank
    kv_heads: int = 0  # KV heads per rank
    message_bytes: float = 0.0  # collectives: bytes each rank contributes
    group_size: int = 1  # collectives: ranks taking part


@dataclass(frozen=True)
class StepGraph:
    """The ops of one forward step on one tensor-parallel rank, with the parallel layout."""

    model: str
    shape: StepShape
    tp: int
    pp: int
    precision: Precision
    ops: tuple[Op, ...]

    def total_flops(self) -> float:
        """FLOPs of the whole step on one rank."""
        return sum(op.flops * op.repeat for op in self.ops)

    def total_bytes(self) -> float:
        """Bytes moved to and from memory by the whole step on one rank."""
        return sum((op.bytes_read + op.bytes_written) * op.repeat for op in self.ops)


def _gemm(name: str, m: int, k: int, n: int, repeat: int, prec: Precision, groups: int = 1) -> Op:
    wb, ab = dtype_bytes(prec.weights), dtype_bytes(prec.activations)
    return Op(
        name=name,
        kind="gemm",
        repeat=repeat,
        flops=2.0 * m * k * n * groups,
        bytes_read=groups * (k * n * wb + m * k * ab),
        bytes_written=groups * m * n * ab,
        dtype=prec.compute,
        m=m,
        n=n,
        k=k,
        groups=groups,
    )


def _elementwise(name: str, kind: OpKind, elements: int, repeat: int, prec: Precision, reads: int = 1, flops_per: float = 1.0) -> Op:
    ab = dtype_bytes(prec.activations)
    return Op(name, kind, repeat, flops_per * elements, reads * elements * ab, elements * ab, prec.activations)


def _all_reduce(name: str, tokens: int, hidden: int, repeat: int, tp: int, prec: Precision) -> Op:
    size = tokens * hidden * dtype_bytes(prec.activations)
    return Op(name, "collective", repeat, 0.0, size, size, prec.activations, message_bytes=size, group_size=tp)


def _check_parallel(spec: ModelSpec, tp: int, pp: int) -> None:
    if tp < 1 or pp < 1:
        raise ConfigError(f"tp and pp must be >= 1, got tp={tp}, pp={pp}")
    if spec.num_attention_heads % tp:
        heads = spec.num_attention_heads
        fits = ", ".join(str(d) for d in range(1, min(heads, 128) + 1) if heads % d == 0)
        raise ConfigError(
            f"{spec.name}: tp={tp} does not divide {heads} attention heads; choose a tp that divides it ({fits})"
        )
    if pp > spec.num_layers:
        raise ConfigError(f"{spec.name}: pp={pp} exceeds its {spec.num_layers} layers")


def _attention_ops(spec: ModelSpec, s: StepShape, tp: int, prec: Precision) -> list[Op]:
    """Projections into attention, the attention itself, and the output projection."""
    t, h, layers = s.total_tokens, spec.hidden_size, spec.num_layers
    heads = spec.num_attention_heads // tp
    ab, kvb = dtype_bytes(prec.activations), dtype_bytes(prec.kv_cache)
    ops: list[Op] = []
    if spec.mla is not None:
        m = spec.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            ops.append(_gemm("q_a_proj", t, h, m.q_lora_rank, layers, prec))
            ops.append(_gemm("q_b_proj", t, m.q_lora_rank, heads * qk, layers, prec))
        else:
            ops.append(_gemm("q_proj", t, h, heads * qk, layers, prec))
        ops.append(_gemm("kv_a_proj", t, h, m.kv_lora_rank + m.qk_rope_head_dim, layers, prec))
        if s.prefill_tokens:
            # Prefill expands the cached latent to per-head K/V; decode instead absorbs
            # kv_b into the query and output maps (DeepSeek-V2 report, sec. 2.1.2).
            ops.append(_gemm("kv_b_proj", s.prefill_kv_tokens, m.kv_lora_rank,
                             heads * (m.qk_nope_head_dim + m.v_head_dim), layers, prec))
        latent = m.kv_lora_rank + m.qk_rope_head_dim
        if s.prefill_tokens:
            ops.append(Op("attention", "attention", layers,
                          flops=2.0 * s.prefill_attn_pairs * heads * (qk + m.v_head_dim),
                          bytes_read=s.prefill_kv_tokens * heads * (qk + m.v_head_dim) * ab + s.prefill_tokens * heads * qk * ab,
                          bytes_written=s.prefill_tokens * (heads * m.v_head_dim * ab + latent * kvb),
                          dtype=prec.activations, phase="prefill", heads=heads, kv_heads=heads))
        if s.decode_seqs:
            ops.append(Op("attention", "attention", layers,
                          flops=2.0 * s.decode_context_tokens * heads * (latent + m.kv_lora_rank)
                          + 2.0 * s.decode_seqs * heads * m.qk_nope_head_dim * m.kv_lora_rank * 2,
                          bytes_read=s.decode_context_tokens * latent * kvb + s.decode_seqs * heads * qk * ab,
                          bytes_written=s.decode_seqs * (heads * m.v_head_dim * ab + latent * kvb),
                          dtype=prec.activations, phase="decode", heads=heads, kv_heads=1))
        ops.append(_gemm("attn_out_proj", t, heads * m.v_head_dim, h, layers, prec))
        return ops

    kv_heads = max(1, spec.num_kv_heads // tp)
    hd = spec.head_dim
    ops.append(_gemm("qkv_proj", t, h, (heads + 2 * kv_heads) * hd, layers, prec))
    if spec.qk_norm:
        ops.append(_elementwise("qk_norm", "norm", t * (heads + kv_heads) * hd, layers, prec, flops_per=4.0))
    ops.append(_elementwise("rope", "elementwise", t * (heads + kv_heads) * hd, layers, prec, flops_per=3.0))
    # Soft-capping (Gemma-2) runs inside the attention kernel: a tanh and two multiplies per score.
    cap = 3.0 if spec.attn_logit_softcap else 0.0
    if s.prefill_tokens:
        ops.append(Op("attention", "attention", layers,
                      flops=(4.0 * hd + cap) * s.prefill_attn_pairs * heads,
                      bytes_read=(s.prefill_tokens * heads * hd * ab) + s.prefill_kv_tokens * 2 * kv_heads * hd * kvb,
                      bytes_written=s.prefill_tokens * (heads * hd * ab + 2 * kv_heads * hd * kvb),
                      dtype=prec.activations, phase="prefill", heads=heads, kv_heads=kv_heads))
    if s.decode_seqs:
        ops.append(Op("attention", "attention", layers,
                      flops=(4.0 * hd + cap) * s.decode_context_tokens * heads,
                      bytes_read=s.decode_context_tokens * 2 * kv_heads * hd * kvb + s.decode_seqs * heads * hd * ab,
                      bytes_written=s.decode_seqs * (heads * hd * ab + 2 * kv_heads * hd * kvb),
                      dtype=prec.activations, phase="decode", heads=heads, kv_heads=kv_heads))
    ops.append(_gemm("attn_out_proj", t, heads * hd, h, layers, prec))
    return ops


def expected_experts_touched(tokens: int, num_experts: int, experts_per_token: int) -> float:
    """Expected distinct experts hit when ``tokens`` each pick ``experts_per_token`` of ``num_experts``.

    With uniform routing an expert is missed by one token with probability
    1 - k/E, so E * (1 - (1 - k/E)^T) experts are touched: their weights must
    be read this step, the rest stay idle.
    """
    if tokens <= 0:
        return 0.0
    return num_experts * (1.0 - (1.0 - experts_per_token / num_experts) ** tokens)


def _ffn_ops(spec: ModelSpec, s: StepShape, tp: int, prec: Precision) -> list[Op]:
    t, h = s.total_tokens, spec.hidden_size
    ops: list[Op] = []
    if spec.num_dense_layers:
        width = math.ceil(spec.intermediate_size / tp)
        n = spec.num_dense_layers
        ops.append(_gemm("mlp_up_proj", t, h, 2 * width, n, prec))  # gate and up fused
        ops.append(_elementwise("mlp_act", "elementwise", t * width, n, prec, reads=2, flops_per=5.0))
        ops.append(_gemm("mlp_down_proj", t, width, h, n, prec))
    if spec.moe is not None:
        moe, n = spec.moe, spec.num_moe_layers
        width = math.ceil(moe.expert_intermediate_size / tp)
        ops.append(_gemm("moe_router", t, h, moe.num_experts, n, prec))
        touched = expected_experts_touched(t, moe.num_experts, moe.experts_per_token)
        groups = max(1, round(touched))
        rows = max(1, math.ceil(t * moe.experts_per_token / groups))
        ops.append(_gemm("moe_up_proj", rows, h, 2 * width, n, prec, groups=groups))
        ops.append(_elementwise("moe_act", "elementwise", t * moe.experts_per_token * width, n, prec, reads=2, flops_per=5.0))
        ops.append(_gemm("moe_down_proj", rows, width, h, n, prec, groups=groups))
        if moe.num_shared_experts:
            shared = moe.num_shared_experts * width
            ops.append(_gemm("shared_up_proj", t, h, 2 * shared, n, prec))
            ops.append(_gemm("shared_down_proj", t, shared, h, n, prec))
    return ops


def lower_step(spec: ModelSpec, shape: StepShape, tp: int = 1, pp: int = 1, precision: Precision | None = None) -> StepGraph:
    """Lower one forward step of ``shape`` to per-rank ops under tensor/pipeline parallelism."""
    _check_parallel(spec, tp, pp)
    prec = precision or Precision()
    s, t, h, layers = shape, shape.total_tokens, spec.hidden_size, spec.num_layers
    if t <= 0:
        raise ConfigError("a step must compute at least one token")
    ab = dtype_bytes(prec.activations)
    ops: list[Op] = [
        Op("embedding", "embedding", 1, 0.0, t * h * dtype_bytes(prec.weights) / tp, t * h * ab / tp, prec.activations),
        _elementwise("input_norm", "norm", t * h, layers, prec, flops_per=4.0),
    ]
    ops += _attention_ops(spec, s, tp, prec)
    if tp > 1:
        # One all-reduce after the attention output projection and one after the FFN down projection.
        ops.append(_all_reduce("all_reduce", t, h, 2 * layers, tp, prec))
    if spec.sandwich_norms:
        # Gemma-2/3: a norm on each sub-layer's output before its residual add.
        ops.append(_elementwise("attn_out_norm", "norm", t * h, layers, prec, flops_per=4.0))
        ops.append(_elementwise("ffn_out_norm", "norm", t * h, layers, prec, flops_per=4.0))
    ops.append(_elementwise("residual_add", "elementwise", t * h, 2 * layers, prec, reads=2))
    ops.append(_elementwise("post_attn_norm", "norm", t * h, layers, prec, flops_per=4.0))
    ops += _ffn_ops(spec, s, tp, prec)
    # Only the last position of each sequence is turned into logits.
    out_rows = s.num_seqs
    ops.append(_elementwise("final_norm", "norm", out_rows * h, 1, prec, flops_per=4.0))
    ops.append(_gemm("lm_head", out_rows, h, math.ceil(spec.vocab_size / tp), 1, prec))
    if spec.final_logit_softcap:
        ops.append(_elementwise("logit_softcap", "elementwise", out_rows * math.ceil(spec.vocab_size / tp), 1, prec,
                                flops_per=3.0))
    if pp > 1:
        size = t * h * ab
        ops.append(Op("pp_send_recv", "collective", pp - 1, 0.0, size, size, prec.activations,
                      message_bytes=size, group_size=2))
    return StepGraph(spec.name, shape, tp, pp, prec, tuple(ops))


def sliding_window_shape(shape: StepShape, window: int) -> StepShape:
    """The attention work a sliding-window layer sees: at most ``window`` keys per query and per sequence.

    From the shape's sums only, so a bound: exact when every sequence is on the
    same side of the window (all shorter, or all longer).
    """
    return StepShape(
        prefill_tokens=shape.prefill_tokens, prefill_seqs=shape.prefill_seqs,
        prefill_attn_pairs=min(shape.prefill_attn_pairs, shape.prefill_tokens * window),
        prefill_kv_tokens=min(shape.prefill_kv_tokens, shape.prefill_tokens + shape.prefill_seqs * window),
        decode_seqs=shape.decode_seqs, decode_context_tokens=min(shape.decode_context_tokens, shape.decode_seqs * window),
        decode_extra_tokens=shape.decode_extra_tokens,
    )


def weight_bytes_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, weights: str = "bf16") -> float:
    """Weight bytes each GPU holds under TP x PP (embeddings split over TP ranks too)."""
    return spec.param_count() * dtype_bytes(weights) / (tp * pp)
