"""The GPU model's efficiency parameters: what fraction of the roofline each kind of kernel reaches.

The defaults live in ``efficiency.json`` beside this module, one entry per GPU
preset (plus ``default`` for GPUs without one), each with a note on where it
came from. A calibration file written by ``twinfer calibrate`` replaces the
fields it holds (see :func:`load_calibration`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError


@dataclass(frozen=True)
class GpuEfficiency:
    """Efficiency curves of one GPU, a small documented parameter set (see kernels.py for the formulas).

    GEMM: compute time counts whole tiles of ``gemm_tile_m`` x ``gemm_tile_n``
    in waves over the SMs at ``gemm_peak_eff`` of the dense peak; memory time
    streams weights and activations at ``gemm_mem_eff`` of HBM bandwidth; the
    two combine as a p-norm (p = ``gemm_combine_p``: 1 is no overlap, large
    p is the plain roofline max).
    """

    gemm_peak_eff: float = 0.75  # fraction of dense tensor-core peak reached by large GEMMs
    gemm_fp8_peak_eff: float = 0.63  # the same for 8-bit GEMMs (fraction of the 8-bit peak) [U], see efficiency.json
    gemm_tile_m: int = 128  # output tile rows (tokens) per thread block
    gemm_tile_n: int = 256  # output tile columns per thread block
    gemm_mem_eff: float = 0.85  # fraction of HBM bandwidth reached streaming GEMM operands
    gemm_combine_p: float = 2.0  # p-norm combining compute and memory time
    kernel_overhead_s: float = 5e-6  # fixed time of every kernel (launch gap, prologue, tail)
    elementwise_mem_eff: float = 0.25  # fraction of HBM bandwidth for norms / activations / adds beyond L2
    elementwise_l2_eff: float = 0.5  # same, for the bytes that stay in L2 (as a fraction of HBM bandwidth)
    elementwise_l2_fraction: float = 0.7  # share of the L2 a bandwidth-bound kernel's data effectively keeps
    elementwise_overhead_s: float = 4e-6  # fixed time of a bandwidth-bound kernel
    attn_prefill_peak_eff: float = 0.5  # FlashAttention fraction of peak at long prompts
    attn_prefill_half_len: float = 512.0  # prompt length (tokens per sequence) at half that efficiency
    attn_decode_mem_eff: float = 0.75  # decode attention fraction of HBM bandwidth reading the KV cache
    allreduce_latency_s: float = 20e-6  # fixed cost of one NCCL all-reduce call (kernel launch, setup, sync)
    allreduce_step_s: float = 0.0  # latency of each of the 2 (p - 1) ring steps (on top of the link's own latency)
    allreduce_bw_eff: float = 0.6  # achieved ring bus bandwidth / per-direction link bandwidth
    step_overhead_s: float = 0.0  # per-step host time not hidden by the GPU (scheduling, sampling)

    def replace(self, **changes: Any) -> GpuEfficiency:
        """A copy with ``changes`` applied (unknown names raise ConfigError)."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ConfigError(f"unknown efficiency parameter(s) {bad}; known: {', '.join(sorted(names))}")
        typed: dict[str, Any] = {k: (int(v) if isinstance(getattr(self, k), int) else float(v)) for k, v in changes.items()}
        return dataclasses.replace(self, **typed)

    def as_dict(self) -> dict[str, float]:
        """Plain dict of the parameters (JSON-ready)."""
        return dataclasses.asdict(self)


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    text = resources.files("twinfer.gpu").joinpath("efficiency.json").read_text(encoding="utf-8")
    return json.loads(text)


def default_efficiency(gpu_name: str) -> GpuEfficiency:
    """Shipped efficiency parameters of GPU preset ``gpu_name`` (``default`` entry when it has none)."""
    data = _shipped()["gpus"]
    entry = data.get(gpu_name, data["default"])
    return GpuEfficiency().replace(**entry["params"])


#: Largest p-norm exponent a calibration may hold: at p = 100 the combine is max(compute, memory) to 0.7%.
GEMM_COMBINE_P_MAX = 100.0


def _check_param(key: str, value: Any, path: Path) -> None:
    """A calibration value must be finite and in range: efficiencies in (0, 1], tiles whole and positive,
    overheads and lengths >= 0 (under 1 s for times), the p-norm exponent in [1, 100]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"calibration file {path}: params.{key} must be a finite number, got {value!r}")
    if key.endswith(("_eff", "_fraction")):
        ok, want = 0 < value <= 1, "in (0, 1]"
    elif key.startswith("gemm_tile_"):
        ok, want = float(value).is_integer() and 1 <= value <= 65536, "a whole number from 1 to 65536"
    elif key.endswith("_s"):
        ok, want = 0 <= value < 1, "in [0, 1) seconds"
    elif key == "gemm_combine_p":
        ok, want = 1 <= value <= GEMM_COMBINE_P_MAX, f"in [1, {GEMM_COMBINE_P_MAX:g}]"
    else:
        ok, want = 0 <= value <= 1e9, "in [0, 1e9]"
    if not ok:
        raise ConfigError(f"calibration file {path}: params.{key} must be {want}, got {value!r}; "
                          "rerun `twinfer calibrate` or fix the value")


def load_calibration(path: str | Path, base: GpuEfficiency | None = None) -> GpuEfficiency:
    """Parameters from a ``twinfer calibrate`` JSON file, replacing the fields it fits in ``base``."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"calibration file {p} does not exist; write one with `twinfer calibrate --out {p}`")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"calibration file {p} is not valid JSON: {exc}") from None
    params = data.get("params") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise ConfigError(f"calibration file {p} has no 'params' table of efficiency parameters")
    for key, value in params.items():
        _check_param(key, value, p)
    try:
        return (base or GpuEfficiency()).replace(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"calibration file {p}: bad parameter value ({exc})") from None
    except ConfigError as exc:
        raise ConfigError(f"calibration file {p}: {exc}") from None
