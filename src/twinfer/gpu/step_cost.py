"""GpuStepCost: time of one forward step of a batch on a TP x PP group of GPUs, and its memory.

Step time is the sum over the ops of :func:`twinfer.models.ops.lower_step`
(after the serving engine's kernel fusions, :mod:`twinfer.gpu.fusion`) of
(time of one execution) x ``repeat``, plus the engine's host time per step
(:mod:`twinfer.gpu.engines`; the ``roofline`` engine has no fusion and no
host time). Outside a CUDA graph a step takes at least its kernel count x
the engine's launch cost. What overlaps and what does not:

* Ops run back to back on one CUDA stream: no overlap between kernels
  (CUDA graphs remove host launch gaps, which ``kernel_overhead_s`` keeps
  as the per-kernel fixed time).
* Inside a GEMM, operand streaming and tensor-core math partly overlap
  (the p-norm in :mod:`twinfer.gpu.kernels`).
* Tensor-parallel all-reduces are not overlapped with compute (as in vLLM
  and TensorRT-LLM without comm/compute overlap).
* Pipeline parallelism: the step time is the latency of the batch through
  all stages (every layer once plus the stage-to-stage sends); overlap of
  several micro-batches in flight is not modelled here (the simulator may
  run one batch per stage).

Speed: the simulator calls :meth:`GpuStepCost.step_time_s` millions of
times. Everything but attention depends only on the token count (or, for
the final norm and lm_head, the sequence count), so it is cached per count;
attention is a closed form whose linear coefficients are read off the op
graph once at construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu.efficiency import GpuEfficiency, default_efficiency
from twinfer.gpu.engines import EngineProfile, engine_efficiency, get_engine
from twinfer.gpu.fusion import fuse_ops, kernel_launches
from twinfer.gpu.kernels import KernelModel
from twinfer.hardware.loader import HardwareSet
from twinfer.hardware.registry import get_hardware, get_link
from twinfer.hardware.specs import GpuSpec
from twinfer.models.ops import (
    Op,
    Precision,
    StepGraph,
    lower_step,
    sliding_window_shape,
    weight_bytes_per_rank,
)
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.perf.base import UNBOUNDED_STEPS, InstanceResources
from twinfer.units import GIB, dtype_bytes

#: Fraction of GPU memory the serving engine may use (vLLM's gpu_memory_utilization default, 0.9).
DEFAULT_MEMORY_UTILIZATION = 0.9
#: Sequences per step when the caller sets none (vLLM's max_num_seqs default, 256).
DEFAULT_MAX_BATCH_SEQS = 256
#: Tokens per step the activation workspace is sized for (vLLM's max_num_batched_tokens for chunked prefill is 8192 on large GPUs).
DEFAULT_MAX_STEP_TOKENS = 8192
#: CUDA context, cuBLAS workspace, NCCL buffers per GPU: a guess (about 1 GiB is typical).
RUNTIME_RESERVED_BYTES = 1.0 * GIB

#: Ops that run once per sequence rather than once per token.
_PER_SEQ_OPS = frozenset({"final_norm", "lm_head", "logit_softcap"})
_ATTN_FIELDS_PREFILL = ("prefill_tokens", "prefill_attn_pairs", "prefill_kv_tokens", "prefill_seqs")
_ATTN_FIELDS_DECODE = ("decode_seqs", "decode_context_tokens")


@dataclass(frozen=True)
class OpTime:
    """Time of one op of a step: per execution and how many times it runs."""

    name: str
    kind: str
    repeat: int
    time_s: float  # one execution (one layer for per-layer ops)
    flops: float  # one execution
    bytes_moved: float  # one execution

    @property
    def total_s(self) -> float:
        """Time of all executions in the step."""
        return self.time_s * self.repeat


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU memory: what the engine may use, what weights and workspace take, and what is left for KV."""

    usable_bytes: float  # memory x utilisation
    weight_bytes: float
    workspace_bytes: float  # activations of the largest step + runtime reserve
    kv_bytes_per_token: float  # per GPU
    kv_free_bytes: float  # usable - weights - workspace (negative: does not fit)


def _attention_ops(graph: StepGraph) -> dict[str, Op]:
    return {op.phase: op for op in graph.ops if op.kind == "attention"}


class GpuStepCost:
    """The :class:`twinfer.perf.base.StepCostModel` of a model on ``tp`` x ``pp`` GPUs of one kind.

    ``efficiency`` replaces the shipped per-GPU parameters (e.g. from
    :func:`twinfer.gpu.load_calibration`); ``engine`` names the serving
    engine profile (``roofline``, ``vllm``, ``sglang``, ``trtllm``), whose
    fusions, host time and defaults apply; ``memory_utilization``,
    ``max_batch_seqs`` and ``max_step_tokens`` default to that engine's.
    ``kv_context_tokens`` is the context the KV room is sized for: models
    with sliding-window layers keep at most the window in those layers when
    the engine bounds their cache (None: no window credit, conservative).
    Raises :class:`CapacityError` when the weights and workspace alone do not fit.
    """

    #: Ops a subclass prices itself rather than per token here (expert parallelism: the routed experts).
    _excluded_token_ops: frozenset[str] = frozenset()

    def __init__(
        self,
        model: ModelSpec,
        gpu_spec: GpuSpec | str,
        *,
        tp: int = 1,
        pp: int = 1,
        precision: Precision | None = None,
        max_batch_seqs: int | None = None,
        efficiency: GpuEfficiency | None = None,
        extra_hardware: HardwareSet | None = None,
        memory_utilization: float | None = None,
        max_step_tokens: int | None = None,
        engine: str | EngineProfile | None = None,
        kv_context_tokens: int | None = None,
    ) -> None:
        gpu = get_hardware(gpu_spec, extra_hardware)
        if not isinstance(gpu, GpuSpec):
            raise ConfigError(f"{gpu.name} is an LPU; use twinfer.lpu.step_cost.LpuStepCost for it")
        self.engine = get_engine(engine)
        if memory_utilization is None:
            memory_utilization = self.engine.gpu_memory_fraction
        if not 0 < memory_utilization <= 1:
            raise ConfigError(f"memory_utilization must be in (0, 1], got {memory_utilization}")
        self.model, self.gpu, self.tp, self.pp = model, gpu, tp, pp
        self.precision = precision or Precision()
        self.efficiency = efficiency or default_efficiency(gpu.name)
        base_efficiency = self.efficiency
        if efficiency is None:
            self.efficiency = engine_efficiency(self.efficiency, self.engine)
        self.max_batch_seqs = max_batch_seqs or self.engine.max_num_seqs
        self.memory_utilization = memory_utilization
        self.max_step_tokens = max_step_tokens or self.engine.max_num_batched_tokens
        self.kv_context_tokens = kv_context_tokens
        self.kernels = KernelModel(gpu, self.efficiency, get_link(gpu.scale_up_link, extra_hardware),
                                   get_link("ib-ndr", extra_hardware))
        # The roofline baseline of breakdowns: the fitted efficiencies, before the engine's own kernels.
        self._baseline_kernels = KernelModel(gpu, base_efficiency, self.kernels.scale_up, self.kernels.scale_out)
        self._cross_node_pp = tp * pp > gpu.scale_up_gpus
        # Validate the layout once (lower_step raises ConfigError on bad tp/pp) and learn attention coefficients.
        self._prefill_coef = self._attention_coefficients(_ATTN_FIELDS_PREFILL, "prefill")
        self._decode_coef = self._attention_coefficients(_ATTN_FIELDS_DECODE, "decode")
        self._layers = model.num_layers
        self._sliding_layers = model.num_sliding_layers
        self._global_layers = model.num_layers - model.num_sliding_layers
        self._window = model.sliding_window
        self._mla_prefill = model.mla is not None
        # Host time: per step, and (outside CUDA graphs) per kernel launched.
        self._step_overhead_s = self.efficiency.step_overhead_s + self.engine.step_overhead_s
        self._launch_s = self.engine.host_launch_s
        one = StepShape(prefill_tokens=1, prefill_seqs=1, prefill_attn_pairs=1, prefill_kv_tokens=1)
        self._launches = {phase: kernel_launches(self._graph_ops(shape))
                          for phase, shape in (("prefill", one), ("decode", StepShape.decode([1])))}
        # Two small caches instead of one keyed on (tokens, sequences): bounded by max tokens + max sequences.
        self._per_token = lru_cache(maxsize=1 << 16)(self._token_time_s)
        self._per_seq = lru_cache(maxsize=1 << 12)(self._seq_time_s)
        self._decode_terms: dict[int, tuple[float, ...]] = {}
        bw, act = gpu.mem_bw_bytes_per_s, self.precision.activations
        self._decode_s_per_byte = 1.0 / (bw * self.efficiency.attn_decode_mem_eff)
        self._attn_s_per_flop = 1.0 / (gpu.peak_flops(act) * self.efficiency.attn_prefill_peak_eff)
        self.memory = self._memory_plan()
        if self.memory.kv_free_bytes <= 0:
            missing = -self.memory.kv_free_bytes
            raise CapacityError(
                f"{model.name} does not fit on {tp * pp} x {gpu.name} (tp={tp}, pp={pp}, weights {self.precision.weights}): "
                f"weights {self.memory.weight_bytes / 1e9:.1f} GB + workspace {self.memory.workspace_bytes / 1e9:.1f} GB "
                f"per GPU exceed the usable {self.memory.usable_bytes / 1e9:.1f} GB by {missing / 1e9:.1f} GB "
                f"(before any KV cache); use more GPUs (a larger --tp or --pp), fp8 weights, or a GPU with more memory"
            )

    # ---- construction helpers ---------------------------------------------------------
    def _attention_coefficients(self, fields: tuple[str, ...], phase: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Linear coefficients (constant, per field) of attention FLOPs and bytes, from the op graph.

        The attention op's FLOPs and bytes are linear in the step's sums, so
        lowering a base shape and one unit step per field recovers them exactly.
        """
        base = dict.fromkeys(fields, 1)

        def measure(values: dict[str, int]) -> tuple[float, float]:
            op = _attention_ops(lower_step(self.model, StepShape(**values), self.tp, self.pp, self.precision))[phase]
            return op.flops, op.bytes_read + op.bytes_written

        f0, b0 = measure(base)
        fl, by = [], []
        for name in fields:
            f1, b1 = measure({**base, name: 2})
            fl.append(f1 - f0)
            by.append(b1 - b0)
        return (f0 - sum(fl), *fl), (b0 - sum(by), *by)

    def _graph_ops(self, shape: StepShape, fused: bool = True) -> tuple[Op, ...]:
        """The step's ops on one rank, after the engine's fusions (``fused=False``: the roofline baseline)."""
        ops = lower_step(self.model, shape, self.tp, self.pp, self.precision).ops
        return fuse_ops(ops, self.engine.fusions) if fused else ops

    def _memory_plan(self) -> MemoryPlan:
        m, p = self.model, self.precision
        weights = weight_bytes_per_rank(m, self.tp, self.pp, p.weights)
        ab = dtype_bytes(p.activations)
        ffn = m.intermediate_size if m.num_dense_layers else 0
        if m.moe is not None:
            ffn = max(ffn, m.moe.expert_intermediate_size * m.moe.experts_per_token, m.moe.expert_intermediate_size * m.moe.num_shared_experts)
        # Live activations of the largest step: residual, normed input, QKV/attention output, gate+up of the FFN.
        per_token = (3 * m.hidden_size + m.q_dim // self.tp + 2 * max(1, m.num_kv_heads // self.tp) * m.head_dim
                     + 2 * math.ceil(ffn / self.tp)) * ab
        logits = self.max_batch_seqs * math.ceil(m.vocab_size / self.tp) * 4  # fp32 logits for sampling
        workspace = self.max_step_tokens * per_token + logits + RUNTIME_RESERVED_BYTES
        usable = self.gpu.memory_bytes * self.memory_utilization
        windowed = self.kv_context_tokens if self.engine.window_bounded_kv else None
        kv = m.kv_bytes_per_token(p.kv_cache, context_tokens=windowed) / self.pp
        if m.mla is None:
            kv *= max(1, m.num_kv_heads // self.tp) / m.num_kv_heads  # heads split over TP, replicated beyond
        return MemoryPlan(usable, weights, workspace, kv, usable - weights - workspace)

    # ---- the step-cost interface ----------------------------------------------------
    def _token_time_s(self, total_tokens: int, prefill_kv_tokens: int) -> float:
        """Every per-token op (projections, FFN, norms, all-reduce ...): depends only on the token count.

        ``prefill_kv_tokens`` > 0 only for MLA models with prefill, whose kv_b_proj
        expands the cached latent of every prefill KV token.
        """
        if prefill_kv_tokens:
            shape = StepShape(prefill_tokens=total_tokens, prefill_seqs=1, prefill_attn_pairs=total_tokens,
                              prefill_kv_tokens=prefill_kv_tokens)
        else:
            shape = StepShape(decode_seqs=total_tokens, decode_context_tokens=total_tokens)
        return sum(self.kernels.op_time_s(op, self._cross_node_pp) * op.repeat
                   for op in self._graph_ops(shape) if op.kind != "attention" and op.name not in _PER_SEQ_OPS
                   and op.name not in self._excluded_token_ops)

    def _seq_time_s(self, num_seqs: int) -> float:
        """The ops that run once per sequence (final norm, lm_head on the last position)."""
        ops = self._graph_ops(StepShape(decode_seqs=num_seqs, decode_context_tokens=num_seqs))
        return sum(self.kernels.op_time_s(op, self._cross_node_pp) * op.repeat
                   for op in ops if op.name in _PER_SEQ_OPS)

    def _prefill_attention_s(self, shape: StepShape, kernels: KernelModel | None = None) -> float:
        """Prefill attention of one layer: a closed form in the shape's prefill sums."""
        (f0, f1, f2, f3, f4), (b0, b1, b2, b3, b4) = self._prefill_coef  # _ATTN_FIELDS_PREFILL order
        pt, pairs, kv, seqs = shape.prefill_tokens, shape.prefill_attn_pairs, shape.prefill_kv_tokens, shape.prefill_seqs
        flops = f0 + (f1 * pt + f2 * pairs + f3 * kv + f4 * seqs)
        moved = b0 + (b1 * pt + b2 * pairs + b3 * kv + b4 * seqs)
        per_seq = pt / max(1, seqs)
        return (kernels or self.kernels).prefill_attention_time_s(flops, moved, per_seq, self.precision.activations)

    def _decode_attention_s(self, shape: StepShape, kernels: KernelModel | None = None) -> float:
        """Decode attention of one layer: a closed form in the shape's decode sums."""
        (f0, *fc), (b0, *bc) = self._decode_coef
        vals = (shape.decode_seqs, shape.decode_context_tokens)
        flops = f0 + sum(c * v for c, v in zip(fc, vals, strict=True))
        moved = b0 + sum(c * v for c, v in zip(bc, vals, strict=True))
        return (kernels or self.kernels).decode_attention_time_s(flops, moved, self.precision.activations)

    def _attention_all_layers_s(self, shape: StepShape, kernels: KernelModel | None = None) -> float:
        """Attention of every layer, global and sliding-window (models with sliding layers only)."""
        local = sliding_window_shape(shape, self._window)
        total = 0.0
        if shape.prefill_tokens:
            total += (self._prefill_attention_s(shape, kernels) * self._global_layers
                      + self._prefill_attention_s(local, kernels) * self._sliding_layers)
        if shape.decode_seqs:
            total += (self._decode_attention_s(shape, kernels) * self._global_layers
                      + self._decode_attention_s(local, kernels) * self._sliding_layers)
        return total

    def _host_floor_s(self, shape: StepShape) -> float:
        """Least time of a step launched kernel by kernel (0 when a CUDA graph replays it)."""
        pt, ds = shape.prefill_tokens, shape.decode_seqs
        if self._launch_s <= 0.0 or self.engine.graph_covers(pt + ds, pt > 0):
            return 0.0
        launches = self._launches["prefill"] if pt else self._launches["decode"]
        if pt and ds:
            launches += self._layers  # a second attention kernel per layer
        return launches * self._launch_s

    def step_time_s(self, shape: StepShape) -> float:
        """Wall time of one forward step computing ``shape`` (sum over ops; see the module docstring)."""
        pt, ds, dx = shape.prefill_tokens, shape.decode_seqs, shape.decode_extra_tokens
        t = pt + ds + dx  # dx: decode query tokens beyond one per sequence (speculative verification)
        if t <= 0:
            return 0.0
        kv = shape.prefill_kv_tokens if (self._mla_prefill and pt) else 0
        total = self._per_token(t, kv) + self._per_seq(shape.prefill_seqs + ds + dx)  # logits at every query row
        if self._sliding_layers:
            total += self._attention_all_layers_s(shape)
        else:
            if pt:
                total += self._prefill_attention_s(shape) * self._layers
            if ds:
                # Inlined decode attention (the hot path of a decode-heavy simulation).
                (f0, f1, f2), (b0, b1, b2) = self._decode_coef
                ctx = shape.decode_context_tokens
                k = self.kernels
                t_m = (b0 + b1 * ds + b2 * ctx) * self._decode_s_per_byte
                t_c = (f0 + f1 * ds + f2 * ctx) * self._attn_s_per_flop
                total += (k.eff.kernel_overhead_s + (t_m if t_m > t_c else t_c)) * self._layers
        if self._launch_s > 0.0:
            floor = self._host_floor_s(shape)
            if floor > total:
                total = floor
        return total + self._step_overhead_s

    def _decode_terms_of(self, decode_seqs: int) -> tuple[float, ...]:
        terms = self._decode_terms.get(decode_seqs)
        if terms is None:
            ds = decode_seqs
            (f0, f1, f2), (b0, b1, b2) = self._decode_coef
            terms = (self._per_token(ds, 0) + self._per_seq(0 + ds), b0 + b1 * ds, b2, self._decode_s_per_byte,
                     f0 + f1 * ds, f2, self._attn_s_per_flop, self.kernels.eff.kernel_overhead_s, self._layers,
                     self._step_overhead_s)
            self._decode_terms[decode_seqs] = terms
        return terms

    def decode_run_affine(self, decode_seqs: int, context_tokens: int) -> tuple[float, float, int]:
        """Plain decode steps as an affine ramp, for the simulator's closed-form decode runs.

        A batch of ``decode_seqs`` sequences whose context sum starts at
        ``context_tokens`` and grows by ``decode_seqs`` per step: step ``j`` takes
        ``dt0 + slope * j`` seconds for ``j < valid_steps``. Decode attention is
        the max of a memory term and a compute term, both affine in the context
        sum, so the ramp holds until the other term overtakes (``valid_steps``;
        the next ramp starts there). ``dt0`` equals :meth:`step_time_s` of that
        decode step bit for bit (same operations, same order). Models with
        sliding-window layers, and steps whose host launch floor binds, return
        one exact step (``valid_steps`` 1).
        """
        if self._sliding_layers or (self._launch_s > 0.0 and self._host_floor_s(
                StepShape(decode_seqs=decode_seqs, decode_context_tokens=context_tokens)) > 0.0):
            shape = StepShape(decode_seqs=decode_seqs, decode_context_tokens=context_tokens)
            return self.step_time_s(shape), 0.0, 1
        base, m_c, m_x, spb, f_c, f_x, spf, k_o, layers, s_o = self._decode_terms_of(decode_seqs)
        ctx = context_tokens
        t_m = (m_c + m_x * ctx) * spb
        t_c = (f_c + f_x * ctx) * spf
        grow_m, grow_c = m_x * decode_seqs * spb, f_x * decode_seqs * spf
        if t_m > t_c:
            lead, grow, lead_by, closing = t_m, grow_m, t_m - t_c, grow_c - grow_m
        else:
            lead, grow, lead_by, closing = t_c, grow_c, t_c - t_m, grow_m - grow_c
        dt0 = (base + (k_o + lead) * layers) + s_o
        valid = UNBOUNDED_STEPS if closing <= 0.0 else int(lead_by / closing) + 1
        return dt0, grow * layers, max(1, min(valid, UNBOUNDED_STEPS))

    def resources(self) -> InstanceResources:
        """Devices, KV capacity (after weights and workspace), batch limit, price and power of the instance."""
        n = self.tp * self.pp
        return InstanceResources(
            hardware=self.gpu.name,
            num_devices=n,
            kv_capacity_tokens=int(self.memory.kv_free_bytes // self.memory.kv_bytes_per_token),
            max_batch_seqs=self.max_batch_seqs,
            price_per_hour_usd=n * self.gpu.price_per_hour_usd,
            power_idle_w=n * self.gpu.power_idle_w,
            power_max_w=n * self.gpu.power_max_w,
            pipeline_lanes=self.pp,
        )

    # ---- explanation ------------------------------------------------------------------------
    def op_times(self, shape: StepShape, fused: bool = True) -> list[OpTime]:
        """Each op of the step with its time per execution (for breakdowns; not cached, not for hot loops).

        ``fused=False`` gives the roofline baseline: every op its own kernel
        at the fitted efficiencies, whatever the engine fuses or speeds up
        (the ``roofline`` engine's op times). Attention of models with sliding-window
        layers is the mean over all layers.
        """
        out = []
        kernels = self.kernels if fused else self._baseline_kernels
        for op in self._graph_ops(shape, fused):
            moved = op.bytes_read + op.bytes_written
            if op.kind == "attention" and self._sliding_layers:
                one = StepShape(**{f: getattr(shape, f) for f in (_ATTN_FIELDS_PREFILL if op.phase == "prefill"
                                                                   else _ATTN_FIELDS_DECODE)})
                t = self._attention_all_layers_s(one, kernels) / self._layers
            elif op.kind == "attention":
                t = (self._prefill_attention_s(shape, kernels) if op.phase == "prefill"
                     else self._decode_attention_s(shape, kernels))
            else:
                t = kernels.op_time_s(op, self._cross_node_pp)
            out.append(OpTime(op.name, op.kind, op.repeat, t, op.flops, moved))
        return out

    def host_time_s(self, shape: StepShape) -> dict[str, float]:
        """The engine's host time in a step: per-step overhead and the launch floor (for breakdowns)."""
        return {"step_overhead_s": self._step_overhead_s, "launch_floor_s": self._host_floor_s(shape)}
