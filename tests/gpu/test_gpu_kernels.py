"""Kernel time formulas against hand-computed rooflines and closed forms."""

from __future__ import annotations

import pytest


def test_big_square_gemm_is_flops_over_peak_times_efficiency(make_kernels):
    """An 8192^3 bf16 GEMM on H100 takes 2n^3 / (989 TF x gemm_peak_eff), within 5% (waves full, memory hidden)."""
    km = make_kernels("h100")
    n = 8192
    t = km.gemm_time_s(n, n, n, 3 * n * n * 2, "bf16")
    by_hand = 2 * n**3 / (989e12 * km.eff.gemm_peak_eff)
    assert t == pytest.approx(by_hand, rel=0.05)
    # and the stated efficiency is a real fraction of peak: slower than the pure roofline
    assert t > 2 * n**3 / 989e12


def test_single_token_gemm_is_weight_streaming(make_kernels):
    """m=1 x [8192, 28672] bf16 reads 470 MB of weights: time = overhead + bytes / (3.35 TB/s x mem_eff), within 3%."""
    km = make_kernels("h100")
    k, n = 8192, 28672
    moved = 2 * (k * n + k + n)
    t = km.gemm_time_s(1, n, k, moved, "bf16")
    by_hand = km.eff.kernel_overhead_s + moved / (3.35e12 * km.eff.gemm_mem_eff)
    assert t == pytest.approx(by_hand, rel=0.03)


def test_fp8_gemm_is_faster_when_compute_bound(make_kernels):
    """fp8 doubles the tensor-core peak but reaches a smaller share of it: a large GEMM gets 1.4-1.8x faster.

    The ratio is the closed form 2 x fp8 efficiency / bf16 efficiency when both are compute-bound.
    """
    km = make_kernels("h100")
    n = 8192
    bf16 = km.gemm_time_s(n, n, n, 3 * n * n * 2, "bf16")
    fp8 = km.gemm_time_s(n, n, n, 3 * n * n, "fp8")
    assert 1.4 < bf16 / fp8 < 1.8
    assert bf16 / fp8 == pytest.approx(2 * km.eff.gemm_fp8_peak_eff / km.eff.gemm_peak_eff, rel=0.03)


@pytest.mark.parametrize("gpu", ["a100", "h100"])
def test_gemm_time_never_falls_with_more_tokens(make_kernels, gpu):
    """Monotonic in m: more tokens never make a GEMM faster (wave steps included)."""
    km = make_kernels(gpu)
    k, n = 4096, 12288
    times = [km.gemm_time_s(m, n, k, 2 * (k * n + m * k + m * n), "bf16") for m in range(1, 4097, 7)]
    assert all(b >= a - 1e-12 for a, b in zip(times, times[1:], strict=False))


def test_wave_quantisation_steps(make_kernels):
    """One more tile row past a full wave adds a whole wave of compute."""
    km = make_kernels("h100")
    e = km.eff
    n, k = e.gemm_tile_n * km.gpu.num_sms, 8192  # exactly one wave per row of tiles
    full = km.gemm_time_s(e.gemm_tile_m * 8, n, k, 1.0, "bf16")
    over = km.gemm_time_s(e.gemm_tile_m * 8 + 1, n, k, 1.0, "bf16")
    assert (over - e.kernel_overhead_s) / (full - e.kernel_overhead_s) == pytest.approx(9 / 8, rel=1e-6)


def test_all_reduce_alpha_beta_closed_form(make_kernels):
    """Ring all-reduce: launch + 2(p-1) steps + 2(p-1)/p x S / (450 GB/s x eff) on NVLink4, 0 for one GPU."""
    km = make_kernels("h100")
    size = 64e6
    for p in (2, 4, 8):
        expect = (km.eff.allreduce_latency_s + 2 * (p - 1) * km.eff.allreduce_step_s
                  + 2 * (p - 1) / p * size / (450e9 * km.eff.allreduce_bw_eff))
        assert km.all_reduce_time_s(size, p) == pytest.approx(expect, rel=1e-12)
    assert km.all_reduce_time_s(size, 1) == 0.0


def test_norm_is_bandwidth_bound_with_l2_step(make_kernels):
    """A norm over 4096 x 8192 bf16 (134 MB moved): the L2-resident share at the L2 rate, the rest at the HBM rate."""
    km = make_kernels("a100")
    e = km.eff
    moved = 2 * 4096 * 8192 * 2
    in_l2 = 40e6 * e.elementwise_l2_fraction  # A100 whitepaper: 40 MB L2
    expect = e.elementwise_overhead_s + in_l2 / (2.039e12 * e.elementwise_l2_eff) + (moved - in_l2) / (2.039e12 * e.elementwise_mem_eff)
    assert km.memory_time_s(moved) == pytest.approx(expect, rel=1e-12)
    small = 1e6  # fits in L2 entirely
    assert km.memory_time_s(small) == pytest.approx(e.elementwise_overhead_s + small / (2.039e12 * e.elementwise_l2_eff))


def test_decode_attention_reads_kv_at_bandwidth(make_kernels):
    """Long-context decode attention ~ KV bytes / (bandwidth x decode efficiency)."""
    km = make_kernels("h100")
    ctx = 1_000_000
    kv_bytes = ctx * 2 * 8 * 128 * 2  # 8 KV heads, head_dim 128, bf16, one layer
    t = km.decode_attention_time_s(4.0 * ctx * 64 * 128, kv_bytes, "bf16")
    assert t == pytest.approx(km.eff.kernel_overhead_s + kv_bytes / (3.35e12 * km.eff.attn_decode_mem_eff), rel=1e-9)


def test_cross_node_all_reduce_uses_the_network(make_kernels):
    """A group spanning nodes (1 GPU per node) runs at the IB NDR rate, 50 GB/s per GPU, not NVLink."""
    km = make_kernels("h100")
    size = 64e6
    # 2 ring steps, each with the step latency plus the network's own latency (ib-ndr preset: 5 us).
    steps = 2 * (2 - 1) * (km.eff.allreduce_step_s + 5e-6)
    expect = km.eff.allreduce_latency_s + steps + 2 * (2 - 1) / 2 * size / (50e9 * km.eff.allreduce_bw_eff)
    assert km.all_reduce_time_s(size, 2, gpus_per_node=1) == pytest.approx(expect, rel=1e-12)
    assert km.all_reduce_time_s(size, 2, gpus_per_node=1) > 5 * km.all_reduce_time_s(size, 2)


def test_small_all_reduce_is_launch_and_step_latency(make_kernels):
    """A 2 KiB all-reduce is almost all fixed time: launch plus 2 (p - 1) step latencies, growing with p."""
    km = make_kernels("h100")
    e = km.eff
    for p in (2, 4, 8):
        fixed = e.allreduce_latency_s + 2 * (p - 1) * e.allreduce_step_s
        assert km.all_reduce_time_s(2048, p) == pytest.approx(fixed, rel=0.01)
    assert km.all_reduce_time_s(2048, 8) >= km.all_reduce_time_s(2048, 2)


def test_the_p_norm_of_compute_and_memory_cannot_overflow(make_kernels):
    """At p = 100 and an efficiency a fit may try (1e-9 of peak) the time is the larger term, not an OverflowError."""
    from dataclasses import replace

    from twinfer.gpu.efficiency import default_efficiency

    base = default_efficiency("h100-sxm")
    km = make_kernels("h100", replace(base, gemm_combine_p=100.0, gemm_peak_eff=1e-9))
    n = 8192
    t = km.gemm_time_s(n, n, n, 3 * n * n * 2, "bf16")
    compute_s = 2 * n**3 / (989e12 * 1e-9)  # about 1.1e6 s: its 100th power overflows a float
    assert t == pytest.approx(base.kernel_overhead_s + compute_s, rel=0.02)
    # an ordinary p-norm still reads the same as the textbook form: p = 2 is the hypotenuse
    hyp = make_kernels("h100", replace(base, gemm_combine_p=2.0))
    m, k, n = 64, 4096, 4096
    moved = 2 * (m * k + k * n + m * n)
    t2 = hyp.gemm_time_s(m, n, k, moved, "bf16")
    mem = moved / (3.35e12 * base.gemm_mem_eff)
    assert t2 >= base.kernel_overhead_s + mem
