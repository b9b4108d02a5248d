"""Fit :class:`GpuEfficiency` parameters to measured kernel times.

Used twice: by ``benchmarks/gpu_accuracy.py`` to derive the shipped defaults
from the tuning half of Vidur's kernel measurements, and by ``twinfer
calibrate`` on a user's own microbenchmarks. The loss is the mean absolute
log error (relative, robust to a few outliers); the optimiser is a small
Nelder-Mead over log-parameters (no SciPy dependency), deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from twinfer.gpu.efficiency import GEMM_COMBINE_P_MAX, GpuEfficiency
from twinfer.gpu.kernels import KernelModel
from twinfer.hardware.specs import GpuSpec, LinkSpec

#: Tile shapes tried for wave quantisation (common CUTLASS/cuBLAS output tiles).
TILE_CHOICES = ((128, 256), (256, 128), (128, 128), (64, 128))


#: All-reduces up to this size per rank are "small" (decode steps: up to ~64 tokens x 8192 x 2 bytes).
SMALL_MESSAGE_BYTES = 1 << 20


@dataclass(frozen=True)
class GemmSample:
    """One measured GEMM [m,k]x[k,n] (bytes moved counts weights, input and output)."""

    m: int
    n: int
    k: int
    bytes_moved: float
    time_s: float
    dtype: str = "bf16"


@dataclass(frozen=True)
class MemorySample:
    """One measured bandwidth-bound kernel (copy, norm)."""

    bytes_moved: float
    time_s: float


@dataclass(frozen=True)
class CollectiveSample:
    """One measured all-reduce of ``message_bytes`` per rank over ``group_size`` GPUs."""

    message_bytes: float
    group_size: int
    time_s: float
    gpus_per_node: int = 0  # GPUs of the group in each node; 0: all in one node


def _finite_or_inf(f: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    """``f``, with overflow, division by zero and non-finite values turned into +inf."""
    def safe(x: np.ndarray) -> float:
        try:
            value = float(f(x))
        except (OverflowError, ZeroDivisionError):
            return math.inf
        return value if math.isfinite(value) else math.inf
    return safe


def nelder_mead(f: Callable[[np.ndarray], float], x0: Sequence[float], step: float = 0.3, iters: int = 400) -> np.ndarray:
    """Minimise ``f`` from ``x0`` with the Nelder-Mead simplex (standard coefficients); deterministic.

    A trial point where ``f`` overflows or is not finite counts as infinitely bad.
    """
    f = _finite_or_inf(f)
    start = np.asarray(x0, dtype=float)
    simplex = [start] + [start + step * np.eye(len(start))[i] for i in range(len(start))]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        xr = centroid + (centroid - worst)
        fr = f(xr)
        if fr < values[0]:
            xe = centroid + 2.0 * (centroid - worst)
            fe = f(xe)
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (worst - centroid)
            fc = f(xc)
            if fc < values[-1]:
                simplex[-1], values[-1] = xc, fc
            else:
                best = simplex[0]
                simplex = [best] + [best + 0.5 * (x - best) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
        if max(values) - min(values) < 1e-9:
            break
    return simplex[int(np.argmin(values))]


def _log_err(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log(pred / meas))))


def fit_gemm(samples: Sequence[GemmSample], gpu: GpuSpec, base: GpuEfficiency) -> GpuEfficiency:
    """Fit GEMM peak/memory efficiency, kernel overhead and the combine exponent; pick the best tile."""
    meas = np.array([s.time_s for s in samples])
    dummy = LinkSpec(name="none", bw_bytes_per_s=1.0, latency_s=0.0)
    best: tuple[float, GpuEfficiency] | None = None
    for tm, tn in TILE_CHOICES:

        def make(x: np.ndarray, tm: int = tm, tn: int = tn) -> GpuEfficiency:
            return base.replace(
                gemm_peak_eff=min(1.0, math.exp(x[0])), gemm_mem_eff=min(1.0, math.exp(x[1])),
                kernel_overhead_s=math.exp(x[2]), gemm_combine_p=min(GEMM_COMBINE_P_MAX, 1.0 + math.exp(x[3])),
                gemm_tile_m=tm, gemm_tile_n=tn,
            )

        def loss(x: np.ndarray, make: Callable[[np.ndarray], GpuEfficiency] = make) -> float:
            km = KernelModel(gpu, make(x), dummy, dummy)
            pred = np.array([km.gemm_time_s(s.m, s.n, s.k, s.bytes_moved, s.dtype) for s in samples])
            return _log_err(pred, meas)

        x0 = [math.log(base.gemm_peak_eff), math.log(base.gemm_mem_eff), math.log(base.kernel_overhead_s),
              math.log(max(base.gemm_combine_p - 1.0, 0.1))]
        x = nelder_mead(loss, x0)
        err = loss(x)
        if best is None or err < best[0]:
            best = (err, make(x))
    assert best is not None
    return best[1]


def fit_memory(samples: Sequence[MemorySample], gpu: GpuSpec, base: GpuEfficiency) -> GpuEfficiency:
    """Fit the L2 and HBM efficiencies, the L2 share and the fixed overhead of bandwidth-bound kernels."""
    meas = np.array([s.time_s for s in samples])
    dummy = LinkSpec(name="none", bw_bytes_per_s=1.0, latency_s=0.0)

    def make(x: np.ndarray) -> GpuEfficiency:
        return base.replace(elementwise_l2_eff=min(1.0, math.exp(x[0])), elementwise_mem_eff=min(1.0, math.exp(x[1])),
                            elementwise_overhead_s=math.exp(x[2]), elementwise_l2_fraction=min(1.0, math.exp(x[3])))

    def loss(x: np.ndarray) -> float:
        km = KernelModel(gpu, make(x), dummy, dummy)
        pred = np.array([km.memory_time_s(s.bytes_moved) for s in samples])
        return _log_err(pred, meas)

    x0 = [math.log(base.elementwise_l2_eff), math.log(base.elementwise_mem_eff),
          math.log(base.elementwise_overhead_s), math.log(base.elementwise_l2_fraction)]
    return make(nelder_mead(loss, x0, iters=1500))


def fit_all_reduce(samples: Sequence[CollectiveSample], gpu: GpuSpec, link: LinkSpec, base: GpuEfficiency) -> GpuEfficiency:
    """Fit the all-reduce launch time, per-step latency and bandwidth efficiency on ``link``.

    Each (group size, small or large message) cell weighs the same, so the
    many large messages of the data do not drown the small ones decode
    steps send (up to :data:`SMALL_MESSAGE_BYTES`).
    """
    meas = np.array([s.time_s for s in samples])
    cells = [(s.group_size, s.message_bytes <= SMALL_MESSAGE_BYTES) for s in samples]
    counts = {c: cells.count(c) for c in set(cells)}
    weight = np.array([1.0 / counts[c] for c in cells])
    weight /= weight.sum()

    def make(x: np.ndarray) -> GpuEfficiency:
        return base.replace(allreduce_latency_s=math.exp(x[0]), allreduce_bw_eff=min(1.0, math.exp(x[1])),
                            allreduce_step_s=math.exp(x[2]))

    def loss(x: np.ndarray) -> float:
        km = KernelModel(gpu, make(x), link, link)
        pred = np.array([km.all_reduce_time_s(s.message_bytes, s.group_size, s.gpus_per_node) for s in samples])
        return float(np.sum(weight * np.abs(np.log(pred / meas))))

    x = nelder_mead(loss, [math.log(base.allreduce_latency_s), math.log(base.allreduce_bw_eff),
                           math.log(max(base.allreduce_step_s, 1e-6))], iters=800)
    return make(x)
