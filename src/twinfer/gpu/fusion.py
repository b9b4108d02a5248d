"""Kernel fusion: rewrite a step's op list the way a serving engine fuses kernels.

Each rule replaces separate ops of :func:`twinfer.models.ops.lower_step` by
one op that moves only the bytes the fused kernel moves and pays one kernel's
fixed cost. The rules (named in :data:`twinfer.gpu.engines.FUSIONS`):

* ``add_rmsnorm``: the residual add and the following pre-norm (RMSNorm) are
  one kernel reading x and the residual, writing the new residual and the
  normed output: 4 x tokens x hidden elements instead of 3 + 2 in two kernels
  (vLLM/SGLang ``fused_add_rms_norm``).
* ``allreduce_add_rmsnorm`` (TP > 1): that fused add+norm runs inside the
  all-reduce kernel's epilogue (TensorRT-LLM ``RESIDUAL_RMS_NORM``): its
  bytes still move, its kernel launch and fixed cost vanish.
* ``act_in_gemm_fp8``: with 8-bit GEMMs, SwiGLU act-and-mul runs in the
  gate/up GEMM's epilogue; the GEMM writes the activated half-width output
  and the separate activation kernel disappears (TensorRT-LLM fused gated
  MLP, an FP8 kernel; 16-bit GEMMs keep the activation kernel).
* ``rope_in_attention``: RoPE is applied in the attention pre-processing
  kernel that also writes the KV cache; the separate RoPE kernel disappears.

Sandwich norms after a sub-layer (Gemma's post-attention/post-FFN norms) have
no residual input and stay separate kernels in every engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from twinfer.models.ops import Op
from twinfer.units import dtype_bytes

#: Pre-norms that follow a residual add (the first layer's input norm has none; its cost is the same kernel count).
_PRE_NORMS = ("input_norm", "post_attn_norm")
#: Activation op -> the gate/up GEMM whose epilogue absorbs it.
_ACT_OF = {"mlp_act": "mlp_up_proj", "moe_act": "moe_up_proj"}


def _fuse_add_norm(ops: list[Op], into_all_reduce: bool) -> list[Op]:
    by_name = {op.name: op for op in ops}
    add = by_name.get("residual_add")
    norms = [by_name[n] for n in _PRE_NORMS if n in by_name]
    if add is None or len(norms) != len(_PRE_NORMS):
        return ops
    elements_bytes = add.bytes_written  # tokens x hidden x activation bytes
    fused = Op("add_rmsnorm", "norm", add.repeat, add.flops + sum(n.flops * n.repeat for n in norms) / add.repeat,
               2 * elements_bytes, 2 * elements_bytes, add.dtype)
    ar = by_name.get("all_reduce")
    out: list[Op] = []
    for op in ops:
        if op.name in _PRE_NORMS:
            continue
        if op.name == "residual_add":
            if not (into_all_reduce and ar is not None and ar.repeat == add.repeat):
                out.append(fused)
            continue
        if op.name == "all_reduce" and into_all_reduce and ar is not None and ar.repeat == add.repeat:
            out.append(replace(op, name="all_reduce_add_rmsnorm", flops=fused.flops,
                               bytes_read=fused.bytes_read, bytes_written=fused.bytes_written))
            continue
        out.append(op)
    return out


def _fuse_act(ops: list[Op]) -> list[Op]:
    acts = {op.name for op in ops if op.name in _ACT_OF}
    gemms = {_ACT_OF[a] for a in acts}
    out = []
    for op in ops:
        if op.name in acts:
            continue
        if op.name in gemms:
            # The epilogue writes act(gate) * up: half the gate+up output width.
            op = replace(op, name=op.name.replace("_up_proj", "_up_act"), bytes_written=op.bytes_written / 2)
        out.append(op)
    return out


def fuse_ops(ops: Iterable[Op], fusions: frozenset[str]) -> tuple[Op, ...]:
    """The ops of one step after the engine's ``fusions`` (the names in :data:`twinfer.gpu.engines.FUSIONS`)."""
    out = list(ops)
    if not fusions:
        return tuple(out)
    if "add_rmsnorm" in fusions or "allreduce_add_rmsnorm" in fusions:
        out = _fuse_add_norm(out, into_all_reduce="allreduce_add_rmsnorm" in fusions)
    if "act_in_gemm_fp8" in fusions and any(op.name in _ACT_OF.values() and dtype_bytes(op.dtype) <= 1 for op in out):
        out = _fuse_act(out)
    if "rope_in_attention" in fusions:
        out = [op for op in out if op.name != "rope"]
    return tuple(out)


def kernel_launches(ops: Iterable[Op]) -> int:
    """Kernels one step launches (each op execution is one kernel; a pipeline send counts once per stage)."""
    return sum(op.repeat for op in ops)
