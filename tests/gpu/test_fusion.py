"""Kernel fusion rewrites: hand-counted kernels and bytes of a Llama layer before and after."""

from __future__ import annotations

import pytest

from twinfer.gpu.engines import ENGINES
from twinfer.gpu.fusion import fuse_ops, kernel_launches
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision, lower_step

T = 64  # tokens of the step


@pytest.fixture
def llama_ops():
    def _ops(tp: int = 1, weights: str = "bf16"):
        return lower_step(load_model("llama-3-8b"), StepShape.decode([100] * T), tp=tp,
                          precision=Precision(weights=weights)).ops

    return _ops


def _bytes(ops, names):
    return sum((o.bytes_read + o.bytes_written) * o.repeat for o in ops if o.name in names)


def test_kernel_counts_per_layer_by_engine(llama_ops):
    """Per layer: unfused 11 kernels (2 norms, 2 adds, qkv, rope, attention, out, up, act, down);
    vLLM fuses each add into the next norm (9); TensorRT-LLM also fuses RoPE (8) and, with FP8 GEMMs,
    the activation (7). Plus embedding, final norm and lm_head once."""
    layers = 32
    assert kernel_launches(fuse_ops(llama_ops(), ENGINES["roofline"].fusions)) == 11 * layers + 3
    assert kernel_launches(fuse_ops(llama_ops(), ENGINES["vllm"].fusions)) == 9 * layers + 3
    assert kernel_launches(fuse_ops(llama_ops(), ENGINES["trtllm"].fusions)) == 8 * layers + 3
    assert kernel_launches(fuse_ops(llama_ops(weights="fp8"), ENGINES["trtllm"].fusions)) == 7 * layers + 3


def test_add_rmsnorm_moves_16_instead_of_20_bytes_per_element(llama_ops):
    """Two adds (read 2, write 1) + two norms (read 1, write 1) = 10 element moves; fused: 2 x (read 2, write 2) = 8."""
    h, layers, el = 4096, 32, 2
    unfused = _bytes(llama_ops(), {"residual_add", "input_norm", "post_attn_norm"})
    fused = _bytes(fuse_ops(llama_ops(), frozenset({"add_rmsnorm"})), {"add_rmsnorm"})
    assert unfused == 10 * T * h * el * layers
    assert fused == 8 * T * h * el * layers


def test_act_in_gemm_halves_the_up_projection_output(llama_ops):
    assert fuse_ops(llama_ops(), frozenset({"act_in_gemm_fp8"})) == llama_ops()  # bf16: no epilogue fusion
    ops = fuse_ops(llama_ops(weights="fp8"), frozenset({"act_in_gemm_fp8"}))
    up = {o.name: o for o in llama_ops(weights="fp8")}["mlp_up_proj"]
    fused = {o.name: o for o in ops}["mlp_up_act"]
    assert "mlp_act" not in {o.name for o in ops}
    assert fused.bytes_written == T * 14336 * 2  # act(gate) * up: intermediate width, bf16
    assert fused.flops == up.flops and fused.bytes_read == up.bytes_read


def test_allreduce_fusion_needs_tp_and_keeps_the_message(llama_ops):
    ops = fuse_ops(llama_ops(tp=4), ENGINES["trtllm"].fusions)
    names = {o.name for o in ops}
    assert "all_reduce_add_rmsnorm" in names and "add_rmsnorm" not in names and "all_reduce" not in names
    ar = {o.name: o for o in ops}["all_reduce_add_rmsnorm"]
    assert ar.message_bytes == T * 4096 * 2 and ar.repeat == 64
    # Without TP there is no all-reduce to fuse into: the plain fused add+norm stays.
    assert "add_rmsnorm" in {o.name for o in fuse_ops(llama_ops(tp=1), ENGINES["trtllm"].fusions)}


def test_gemma_sandwich_norms_stay_separate():
    ops = fuse_ops(lower_step(load_model("gemma-2-9b"), StepShape.decode([100] * T)).ops, ENGINES["vllm"].fusions)
    names = [o.name for o in ops]
    assert "attn_out_norm" in names and "ffn_out_norm" in names and "add_rmsnorm" in names
