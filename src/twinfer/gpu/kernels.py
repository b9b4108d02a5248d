"""Time of one GPU kernel: the roofline, then what it misses.

Every formula starts from the roofline (FLOPs / peak, bytes / bandwidth) and
adds, in order of how much they matter for LLM inference:

* GEMMs: whole output tiles in waves over the SMs (wave quantisation and
  tile padding at small token counts), a fraction of peak reached by cuBLAS,
  a fraction of HBM bandwidth when streaming weights (small batches are
  memory-bound), and a p-norm instead of a max because the two phases of a
  real kernel only partly overlap.
* A fixed per-kernel overhead (launch gap, prologue, tail) that dominates
  tiny kernels such as norms at a few tokens.
* Attention: prefill (FlashAttention) is FLOP-bound with an efficiency that
  grows with the prompt length (short prompts leave tiles idle); decode is
  bound by reading the KV cache (at short contexts the kernel overhead wins).
* Norms, activations and adds: bandwidth-bound, faster while their data fits in L2.
* All-reduce: ring alpha-beta with a launch term,
  t = launch + 2 (p - 1) x step latency + 2 (p - 1) / p * S / B, with B the
  achieved fraction of the per-direction link bandwidth (NVLink/NVSwitch);
  a step that crosses nodes adds the network link's latency.

The parameters are :class:`GpuEfficiency`; nothing here is fitted per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twinfer.gpu.efficiency import GpuEfficiency
from twinfer.hardware.specs import GpuSpec, LinkSpec
from twinfer.models.ops import Op
from twinfer.units import dtype_bytes


@dataclass(frozen=True)
class KernelModel:
    """Per-kernel time formulas for one GPU with one set of efficiency parameters."""

    gpu: GpuSpec
    eff: GpuEfficiency
    scale_up: LinkSpec  # NVLink / NVSwitch fabric of the node
    scale_out: LinkSpec  # network between nodes (used when a group exceeds the NVLink domain)

    # ---- GEMM ------------------------------------------------------------------
    def gemm_time_s(self, m: int, n: int, k: int, bytes_moved: float, dtype: str, groups: int = 1) -> float:
        """Time of ``groups`` GEMMs [m,k]x[k,n] moving ``bytes_moved`` bytes in total."""
        e = self.eff
        sms = self.gpu.num_sms
        # Small batches get short tiles (kernels with 16-row M tiles exist for skinny GEMMs).
        tile_m = min(e.gemm_tile_m, 16 * math.ceil(m / 16))
        tiles = math.ceil(m / tile_m) * math.ceil(n / e.gemm_tile_n) * groups
        # Too few tiles to fill the GPU: split the reduction (split-K) over idle SMs, in chunks of >= 256.
        split = min(sms // tiles, max(1, k // 256)) if tiles < sms else 1
        waves = math.ceil(tiles * split / sms)
        # One wave runs num_sms work units in the time one SM takes for one unit (a tile over k / split).
        unit_flops = 2.0 * tile_m * e.gemm_tile_n * k / split
        peak_eff = e.gemm_fp8_peak_eff if dtype_bytes(dtype) <= 1 else e.gemm_peak_eff
        t_compute = waves * unit_flops * sms / (self.gpu.peak_flops(dtype) * peak_eff)
        t_memory = bytes_moved / (self.gpu.mem_bw_bytes_per_s * e.gemm_mem_eff)
        p = e.gemm_combine_p
        # (t_c^p + t_m^p)^(1/p), scaled by the larger term so that p up to 100 cannot overflow
        hi, lo = max(t_compute, t_memory), min(t_compute, t_memory)
        return e.kernel_overhead_s + (hi * (1.0 + (lo / hi) ** p) ** (1.0 / p) if hi > 0 else 0.0)

    # ---- bandwidth-bound kernels -------------------------------------------------
    def memory_time_s(self, bytes_moved: float) -> float:
        """Norms, activations, residual adds, embedding gathers: bandwidth-bound, faster while the data fits in L2.

        The first ``l2_bytes x elementwise_l2_fraction`` bytes move at the L2
        efficiency, the rest at the HBM efficiency (Vidur's norm timings
        show the step where a layer's activations outgrow the L2).
        """
        e, bw = self.eff, self.gpu.mem_bw_bytes_per_s
        in_l2 = min(bytes_moved, self.gpu.l2_bytes * e.elementwise_l2_fraction)
        return e.elementwise_overhead_s + in_l2 / (bw * e.elementwise_l2_eff) + (bytes_moved - in_l2) / (bw * e.elementwise_mem_eff)

    # ---- attention -----------------------------------------------------------------
    def prefill_attention_time_s(self, flops: float, bytes_moved: float, tokens_per_seq: float, dtype: str) -> float:
        """FlashAttention over prompts of ``tokens_per_seq`` new tokens on average."""
        e = self.eff
        ramp = tokens_per_seq / (tokens_per_seq + e.attn_prefill_half_len)
        t_c = flops / (self.gpu.peak_flops(dtype) * e.attn_prefill_peak_eff * max(ramp, 1e-3))
        t_m = bytes_moved / (self.gpu.mem_bw_bytes_per_s * e.gemm_mem_eff)
        return e.kernel_overhead_s + max(t_c, t_m)

    def decode_attention_time_s(self, flops: float, bytes_moved: float, dtype: str) -> float:
        """Paged/flash decoding: bound by reading the KV cache; tiny contexts cost the kernel overhead."""
        e = self.eff
        t_m = bytes_moved / (self.gpu.mem_bw_bytes_per_s * e.attn_decode_mem_eff)
        t_c = flops / (self.gpu.peak_flops(dtype) * e.attn_prefill_peak_eff)
        return e.kernel_overhead_s + max(t_c, t_m)

    # ---- collectives ---------------------------------------------------------------
    def all_reduce_time_s(self, message_bytes: float, group_size: int, gpus_per_node: int = 0) -> float:
        """Ring all-reduce of ``message_bytes`` per rank over ``group_size`` GPUs (launch + alpha-beta).

        A call pays a fixed launch/setup time, then 2 (p - 1) ring steps each
        with a step latency (small messages: this dominates), then the bytes at
        the ring's bus bandwidth. Inside one NVLink domain the ring runs on the
        scale-up link; when the group spans nodes (``gpus_per_node`` <
        ``group_size``, or more GPUs than the domain holds) the slowest hop, the
        scale-out NIC, sets the bandwidth and adds its latency to every step.
        """
        if group_size <= 1 or message_bytes <= 0:
            return 0.0
        per_node = gpus_per_node or group_size
        cross_node = per_node < group_size or group_size > self.gpu.scale_up_gpus
        link = self.scale_out if cross_node else self.scale_up
        e = self.eff
        bw = link.bw_bytes_per_s * e.allreduce_bw_eff
        steps = 2 * (group_size - 1)
        step_s = e.allreduce_step_s + (link.latency_s if cross_node else 0.0)
        return e.allreduce_latency_s + steps * step_s + steps / group_size * message_bytes / bw

    def send_recv_time_s(self, message_bytes: float, cross_node: bool) -> float:
        """Point-to-point activation send between pipeline stages."""
        link = self.scale_out if cross_node else self.scale_up
        return link.transfer_time_s(message_bytes)

    # ---- dispatch ------------------------------------------------------------------
    def op_time_s(self, op: Op, cross_node_pp: bool = False) -> float:
        """Time of one execution of ``op`` (per rank), by its kind."""
        moved = op.bytes_read + op.bytes_written
        if op.kind == "gemm":
            return self.gemm_time_s(op.m, op.n, op.k, moved, op.dtype, op.groups)
        if op.kind == "attention":
            raise ValueError("attention ops are timed with prefill/decode_attention_time_s (they need per-sequence lengths)")
        if op.kind == "collective":
            if op.name == "pp_send_recv":
                return self.send_recv_time_s(op.message_bytes, cross_node_pp)
            t = self.all_reduce_time_s(op.message_bytes, op.group_size)
            if op.name == "all_reduce_add_rmsnorm":
                # The fused epilogue moves the add+norm bytes inside the same kernel (no second launch).
                t += self.memory_time_s(moved) - self.eff.elementwise_overhead_s
            return t
        return self.memory_time_s(moved)
