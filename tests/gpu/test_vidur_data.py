"""Accuracy of the shipped defaults on a tiny sample of Vidur's measured kernels (tests/data/gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from twinfer.gpu.vidur_data import read_all_reduce, read_linear_ops

#: Stated tolerance for the tiny samples: median |error| of GEMMs <= 12% (the full held-out data gives 5-10%).
GEMM_TOLERANCE_PCT = 12.0


@pytest.mark.parametrize(
    ("gpu", "file"),
    [("h100", "h100__internlm-20b__linear_ops.csv"), ("a100", "a100__Meta-Llama-3-8B__linear_ops.csv")],
)
def test_held_out_gemms_within_tolerance(data_dir, make_kernels, gpu, file):
    """Held-out model files: median |error| of each projection GEMM within the stated tolerance."""
    km = make_kernels(gpu)
    rows = read_linear_ops(data_dir / "gpu" / file)
    by_op: dict[str, list[float]] = {}
    for r in rows:
        if r.gemm is None:
            continue
        g = r.gemm
        pred = km.gemm_time_s(g.m, g.n, g.k, g.bytes_moved, g.dtype)
        by_op.setdefault(r.op, []).append(abs(pred / g.time_s - 1) * 100)
    assert set(by_op) == {"attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"}
    for op, errs in by_op.items():
        assert np.median(errs) <= GEMM_TOLERANCE_PCT, (op, np.median(errs))


def test_shapes_read_from_vidur_columns(data_dir):
    """Llama-2-7B at TP=1: QKV is [t, 4096] x [4096, 12288]; gated up is 2 x 11008 wide."""
    rows = read_linear_ops(data_dir / "gpu" / "h100__Llama-2-7b-hf__linear_ops.csv")
    qkv = next(r.gemm for r in rows if r.op == "attn_pre_proj" and r.tp == 1)
    up = next(r.gemm for r in rows if r.op == "mlp_up_proj" and r.tp == 2)
    assert (qkv.k, qkv.n) == (4096, 3 * 4096)
    assert (up.k, up.n) == (4096, 11008)


def test_all_reduce_sample_within_tolerance(data_dir, make_kernels):
    """NCCL all-reduce on H100 NVSwitch: median |error| <= 15% over the sample's sizes and worker counts."""
    km = make_kernels("h100")
    samples = read_all_reduce(data_dir / "gpu" / "h100_dgx__all_reduce.csv")
    errs = [abs(km.all_reduce_time_s(s.message_bytes, s.group_size) / s.time_s - 1) * 100 for s in samples]
    assert len(errs) > 50 and np.median(errs) <= 15.0
