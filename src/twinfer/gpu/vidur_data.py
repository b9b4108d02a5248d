"""Read Vidur's per-operator GPU timings (microsoft/vidur, MIT) into fit/validation samples.

``<gpu>__<model>__linear_ops.csv`` rows hold ``time_stats.<op>.median`` in
milliseconds per (num_tokens, num_tensor_parallel_workers) plus the model
shape; ``<system>__all_reduce.csv`` rows hold NCCL all-reduce medians by
message ``size`` in bytes, ``num_workers`` and ``devices_per_node`` (fewer
devices per node than workers means the group spans nodes). Vidur profiled fp16 kernels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from twinfer.errors import DataError
from twinfer.gpu.fit import CollectiveSample, GemmSample, MemorySample

#: Vidur op name -> twinfer op name (as in twinfer.models.ops).
OP_NAMES = {
    "attn_pre_proj": "qkv_proj",
    "attn_post_proj": "attn_out_proj",
    "mlp_up_proj": "mlp_up_proj",
    "mlp_down_proj": "mlp_down_proj",
    "input_layernorm": "input_norm",
}
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEM_BYTES = 2  # fp16


@dataclass(frozen=True)
class KernelRow:
    """One measured op of one linear_ops row, as a GEMM or a memory-bound sample."""

    op: str  # Vidur op name
    tokens: int
    tp: int
    gemm: GemmSample | None
    memory: MemorySample | None

    @property
    def time_s(self) -> float:
        """Measured median time of this op."""
        return self.gemm.time_s if self.gemm is not None else self.memory.time_s  # type: ignore[union-attr]


def _int(row: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(float(row[key]))
    except (KeyError, ValueError):
        raise DataError(f"{path}: column {key!r} missing or not a number in row {row.get('num_tokens')}") from None


def read_linear_ops(path: str | Path) -> list[KernelRow]:
    """All GEMM and input-layernorm samples of one ``*__linear_ops.csv`` file."""
    p = Path(path)
    out: list[KernelRow] = []
    with p.open(newline="") as fh:
        for row in csv.DictReader(fh):
            t, tp = _int(row, "num_tokens", p), _int(row, "num_tensor_parallel_workers", p)
            h, heads, kv = _int(row, "n_embd", p), _int(row, "n_head", p), _int(row, "n_kv_head", p)
            inter = _int(row, "n_expanded_embd", p)
            gated = row.get("use_gated_mlp", "True").strip().lower() == "true"
            hd = h // heads
            shapes = {
                "attn_pre_proj": (h, (heads // tp + 2 * max(1, kv // tp)) * hd),
                "attn_post_proj": (heads // tp * hd, h),
                "mlp_up_proj": (h, (2 if gated else 1) * inter // tp),
                "mlp_down_proj": (inter // tp, h),
            }
            for op, (k, n) in shapes.items():
                ms = float(row[f"time_stats.{op}.median"])
                moved = ELEM_BYTES * (k * n + t * k + t * n)
                out.append(KernelRow(op, t, tp, GemmSample(t, n, k, moved, ms * 1e-3, "fp16"), None))
            ms = float(row["time_stats.input_layernorm.median"])
            out.append(KernelRow("input_layernorm", t, tp, None, MemorySample(2 * ELEM_BYTES * t * h, ms * 1e-3)))
    return out


def read_all_reduce(path: str | Path) -> list[CollectiveSample]:
    """All-reduce samples of one ``*__all_reduce.csv`` file (size is bytes per rank)."""
    p = Path(path)
    out = []
    with p.open(newline="") as fh:
        for row in csv.DictReader(fh):
            size, workers = _int(row, "size", p), _int(row, "num_workers", p)
            per_node = _int(row, "devices_per_node", p) if row.get("devices_per_node") else workers
            out.append(CollectiveSample(float(size), workers, float(row["time_stats.all_reduce.median"]) * 1e-3,
                                        gpus_per_node=per_node))
    return out
