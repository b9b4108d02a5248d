"""Microbenchmarks on the local device (torch, imported lazily) and the fit of GpuEfficiency to them.

``twinfer calibrate`` runs GEMMs, memory copies and scaled-dot-product
attention (prefill: causal over a prompt; decode: one query against a KV
cache), on CUDA when present and on the CPU otherwise, and fits the GPU
model's efficiency curves to the timings. The result is a plain dict the CLI
writes as JSON; :func:`twinfer.gpu.load_calibration` reads it back.

On a CPU there is no datasheet: the reference "peak" and "bandwidth" are the
best throughputs measured, so the fitted efficiencies are relative to them.
That keeps the CPU path testable; it is not a CPU performance model.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from twinfer.errors import ConfigError
from twinfer.gpu.efficiency import GpuEfficiency, default_efficiency
from twinfer.gpu.fit import GemmSample, MemorySample, fit_gemm, fit_memory, nelder_mead
from twinfer.hardware.specs import GpuSpec

FORMAT = "twinfer-gpu-calibration/1"
#: torch.cuda.get_device_name() substrings -> GPU preset (checked in order).
CUDA_NAMES = (("H100", "h100-sxm"), ("H200", "h200"), ("B200", "b200"), ("GB200", "gb200"), ("A100", "a100-80g"))


@dataclass(frozen=True)
class CalibrationPlan:
    """Sizes to measure. ``tiny`` keeps a CPU run to about a second (tests); ``full`` is for a GPU."""

    gemm_m: tuple[int, ...]
    gemm_nk: tuple[tuple[int, int], ...]  # (n, k) weight shapes
    copy_bytes: tuple[int, ...]
    prefill_lens: tuple[int, ...]
    decode_ctx: tuple[int, ...]
    heads: int
    head_dim: int
    decode_batch: int
    repeats: int

    @classmethod
    def tiny(cls) -> CalibrationPlan:
        """A few small shapes (CPU tests)."""
        return cls((1, 16, 64, 256), ((256, 256), (512, 256)), (1 << 16, 1 << 20, 1 << 22),
                   (32, 128), (64, 512), 4, 32, 2, 3)

    @classmethod
    def full(cls) -> CalibrationPlan:
        """Shapes of real LLM layers: tokens 1..8192 against 4k-16k weights (a few minutes on a GPU)."""
        ms = (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
        return cls(ms, ((4096, 4096), (12288, 4096), (28672, 8192), (8192, 28672), (1024, 8192)),
                   (1 << 20, 1 << 24, 1 << 27, 1 << 29), (128, 512, 1024, 2048, 4096, 8192),
                   (256, 1024, 4096, 16384), 32, 128, 32, 20)


def _device() -> tuple[Any, str, str]:
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda"), "cuda", torch.cuda.get_device_name(0)
    import platform

    return torch.device("cpu"), "cpu", f"cpu ({platform.processor() or platform.machine()})"


def _timer(device_kind: str, repeats: int) -> Callable[[Callable[[], Any]], float]:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up (CUDA events on a GPU)."""
    import torch

    def run(fn: Callable[[], Any]) -> float:
        fn()
        times = []
        for _ in range(repeats):
            if device_kind == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) * 1e-3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return run


def measure(plan: CalibrationPlan, dtype: str = "bf16") -> dict[str, Any]:
    """Run the microbenchmarks of ``plan``; returns device info and raw measurements (seconds)."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        raise ConfigError("twinfer calibrate needs torch: pip install 'twinfer[torch]'") from None
    tdtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(dtype)
    if tdtype is None:
        raise ConfigError(f"calibrate supports dtypes bf16, fp16, fp32; got {dtype!r}")
    dev, kind, name = _device()
    timed = _timer(kind, plan.repeats)
    elem = torch.tensor([], dtype=tdtype).element_size()
    gen = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape: int) -> Any:
        return torch.randn(*shape, generator=gen, dtype=torch.float32).to(device=dev, dtype=tdtype)

    gemm = []
    for n, k in plan.gemm_nk:
        w = rand(k, n)
        for m in plan.gemm_m:
            x = rand(m, k)
            t = timed(partial(torch.matmul, x, w))
            gemm.append({"m": m, "n": n, "k": k, "bytes": elem * (k * n + m * k + m * n), "time_s": t})
    copies = []
    for size in plan.copy_bytes:
        src = torch.empty(size // elem, dtype=tdtype, device=dev)
        dst = torch.empty_like(src)
        t = timed(partial(dst.copy_, src))
        copies.append({"bytes": 2 * size, "time_s": t})
    h, d = plan.heads, plan.head_dim
    prefill = []
    for length in plan.prefill_lens:
        q, kk, v = rand(1, h, length, d), rand(1, h, length, d), rand(1, h, length, d)
        t = timed(partial(F.scaled_dot_product_attention, q, kk, v, is_causal=True))
        pairs = length * (length + 1) // 2
        prefill.append({"seq_len": length, "heads": h, "head_dim": d, "flops": 4.0 * pairs * h * d,
                        "bytes": 4 * length * h * d * elem, "time_s": t})
    decode = []
    b = plan.decode_batch
    for ctx in plan.decode_ctx:
        q, kk, v = rand(b, h, 1, d), rand(b, h, ctx, d), rand(b, h, ctx, d)
        t = timed(partial(F.scaled_dot_product_attention, q, kk, v))
        decode.append({"batch": b, "context": ctx, "heads": h, "head_dim": d, "flops": 4.0 * b * ctx * h * d,
                       "bytes": (2 * b * ctx * h * d + 2 * b * h * d) * elem, "time_s": t})
    return {
        "device": kind,
        "device_name": name,
        "torch_version": torch.__version__,
        "dtype": dtype,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "measurements": {"gemm": gemm, "memory": copies, "attention_prefill": prefill, "attention_decode": decode},
    }


def preset_for_device(device_name: str) -> str | None:
    """The GPU preset matching a CUDA device name (e.g. 'NVIDIA H100 80GB HBM3' -> 'h100-sxm'), if any."""
    for needle, preset in CUDA_NAMES:
        if needle in device_name:
            return preset
    return None


def reference_spec(meas: dict[str, Any], dtype: str) -> GpuSpec:
    """A stand-in spec for a device without a preset: best measured GEMM FLOP/s and copy bandwidth."""
    m = meas["measurements"]
    peak = max(2.0 * g["m"] * g["n"] * g["k"] / g["time_s"] for g in m["gemm"])
    bw = max(c["bytes"] / c["time_s"] for c in m["memory"])
    key = "bf16" if dtype in ("bf16", "fp16") else dtype
    return GpuSpec(name=f"measured:{meas['device_name']}", memory_bytes=1.0, mem_bw_bytes_per_s=bw,
                   peak_flops_per_s={key: peak}, scale_up_link="pcie5", power_idle_w=0.0, power_max_w=1.0,
                   price_per_hour_usd=0.0, num_sms=1, sources={"all": "best throughput measured by twinfer calibrate"},
                   uncertain=("all",))


def _fit_attention(rows: Sequence[dict[str, Any]], spec: GpuSpec, dtype: str, base: GpuEfficiency) -> GpuEfficiency:
    """Prefill attention efficiency and ramp: t = overhead + flops / (peak x eff x L / (L + half))."""
    meas = np.array([r["time_s"] for r in rows])
    peak = spec.peak_flops(dtype)

    def make(x: np.ndarray) -> GpuEfficiency:
        return base.replace(attn_prefill_peak_eff=min(1.0, math.exp(x[0])), attn_prefill_half_len=math.exp(x[1]))

    def loss(x: np.ndarray) -> float:
        e = make(x)
        pred = np.array([e.kernel_overhead_s + r["flops"] / (peak * e.attn_prefill_peak_eff * r["seq_len"]
                         / (r["seq_len"] + e.attn_prefill_half_len)) for r in rows])
        return float(np.mean(np.abs(np.log(pred / meas))))

    x = nelder_mead(loss, [math.log(base.attn_prefill_peak_eff), math.log(base.attn_prefill_half_len)])
    return make(x)


def fit_calibration(meas: dict[str, Any], spec: GpuSpec | None = None) -> tuple[GpuEfficiency, str]:
    """Fit efficiency parameters to ``measure()`` output; returns them and the reference spec's name."""
    dtype = meas["dtype"]
    if spec is None:
        preset = preset_for_device(meas["device_name"]) if meas["device"] == "cuda" else None
        if preset is not None:
            from twinfer.hardware import get_hardware

            found = get_hardware(preset)
            assert isinstance(found, GpuSpec)
            spec = found
        else:
            spec = reference_spec(meas, dtype)
    base = default_efficiency(spec.name)
    m = meas["measurements"]
    gemm = [GemmSample(g["m"], g["n"], g["k"], g["bytes"], g["time_s"], dtype) for g in m["gemm"]]
    eff = fit_gemm(gemm, spec, base)
    eff = fit_memory([MemorySample(c["bytes"], c["time_s"]) for c in m["memory"]], spec, eff)
    eff = _fit_attention(m["attention_prefill"], spec, dtype, eff)
    # Decode attention: the median achieved fraction of bandwidth after the kernel overhead.
    fracs = [r["bytes"] / max(r["time_s"] - eff.kernel_overhead_s, 1e-9) / spec.mem_bw_bytes_per_s for r in m["attention_decode"]]
    eff = eff.replace(attn_decode_mem_eff=min(1.0, statistics.median(fracs)))
    return eff, spec.name


#: Parameters a calibration run measures (the rest keep their defaults when loaded).
FITTED = ("gemm_peak_eff", "gemm_tile_m", "gemm_tile_n", "gemm_mem_eff", "gemm_combine_p", "kernel_overhead_s",
          "elementwise_mem_eff", "elementwise_overhead_s", "attn_prefill_peak_eff", "attn_prefill_half_len",
          "attn_decode_mem_eff")


def calibrate(plan: CalibrationPlan, dtype: str = "bf16", spec: GpuSpec | None = None) -> dict[str, Any]:
    """Measure and fit; the JSON-ready calibration document (device, date, torch, measurements, params)."""
    meas = measure(plan, dtype)
    eff, ref = fit_calibration(meas, spec)
    params = {k: v for k, v in eff.as_dict().items() if k in FITTED}
    return {"format": FORMAT, **meas, "reference_hardware": ref, "params": params}
