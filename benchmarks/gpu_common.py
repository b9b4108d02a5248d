"""Shared bits of the GPU benchmarks: where Vidur's kernel data lives and the tuning split.

The split was fixed before any fitting (it is not chosen by results):
* GEMMs and norms are tuned on ``<gpu>__Llama-2-7b-hf__linear_ops.csv`` only, per GPU;
  every other model file is held out.
* All-reduce is tuned per GPU on ``<gpu>_dgx__all_reduce.csv`` rows inside one node
  (devices_per_node == num_workers) with 2 and 8 workers; 4 workers and every
  cross-node row (devices_per_node < num_workers) are held out.
  ``*_pairwise_nvlink`` files are a topology the model does not describe (NVLink
  bridges between GPU pairs, no NVSwitch); they
  are reported separately, never tuned on.
"""

from __future__ import annotations

from pathlib import Path

KERNELS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gpu-kernels"
GPUS = {"h100": "h100-sxm", "a100": "a100-80g"}
TUNE_MODEL = "Llama-2-7b-hf"
TUNE_WORKERS = (2, 8)


def require_kernels() -> Path:
    """The kernel folder, or exit with a message when ../shared/data is absent."""
    if not KERNELS.exists():
        raise SystemExit(f"{KERNELS} not found: this benchmark needs ../shared/data/gpu-kernels beside the repository")
    return KERNELS


def linear_files(gpu: str) -> list[tuple[str, Path, bool]]:
    """(model, path, tuned?) for every linear_ops file of ``gpu`` (h100 or a100)."""
    out = []
    for path in sorted(require_kernels().glob(f"{gpu}__*__linear_ops.csv")):
        model = path.name.split("__")[1]
        out.append((model, path, model == TUNE_MODEL))
    return out
