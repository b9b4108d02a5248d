"""Derive the shipped GPU efficiency defaults from the TUNING half of Vidur's kernel data.

Run: ``.venv/bin/python benchmarks/gpu_fit_defaults.py [--write]``. Prints the
fitted parameters per GPU; ``--write`` stores them in
``src/twinfer/gpu/efficiency.json``. Accuracy on held-out files is measured by
``benchmarks/gpu_accuracy.py``. Attention and step-overhead parameters are
not in Vidur's shared data, so they come from the literature (noted below).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gpu_common import GPUS, TUNE_MODEL, TUNE_WORKERS, linear_files, require_kernels
from twinfer.gpu.efficiency import GpuEfficiency
from twinfer.gpu.fit import fit_all_reduce, fit_gemm, fit_memory
from twinfer.gpu.vidur_data import read_all_reduce, read_linear_ops
from twinfer.hardware import get_hardware, get_link

OUT = Path(__file__).resolve().parents[1] / "src" / "twinfer" / "gpu" / "efficiency.json"

#: Not fitted (no attention timings in shared/data): literature values, uncertain.
LITERATURE = {
    "h100-sxm": {
        "attn_prefill_peak_eff": 0.5,  # FlashAttention-2 ~35%, FlashAttention-3 up to 75% of H100 fp16 peak (Shah et al. 2024): midpoint, uncertain
    },
    "a100-80g": {
        "attn_prefill_peak_eff": 0.6,  # FlashAttention-2 forward: 50-73% of A100 peak (Dao 2023): uncertain
    },
}
COMMON_NOTE = (
    "attn_prefill_peak_eff is a literature prior (FlashAttention-2/3 papers), uncertain; "
    "attn_prefill_half_len, attn_decode_mem_eff and step_overhead_s are guesses "
    "(not validated: shared/data has no attention timings); run `twinfer calibrate` on the GPU to replace them. "
    "gemm_fp8_peak_eff [U] 0.63 (range 0.5-0.75): 8-bit GEMMs reach a smaller share of their doubled peak than "
    "16-bit ones (about 1.6x the bf16 rate, not 2x); no fp8 kernel timings are in shared/data. "
    "All-reduce: launch (allreduce_latency_s) + 2(p-1) ring steps (allreduce_step_s; the fit leaves ~0 on NVSwitch, "
    "cross-node steps add the network link's latency) + bytes; small (<= 1 MiB) and large messages weigh the same."
)


def fit_gpu(short: str) -> GpuEfficiency:
    """Fit GEMM and norm parameters on the GPU's tuning file, all-reduce on its intra-node tuning rows."""
    gpu = get_hardware(GPUS[short])
    path = next(p for m, p, tuned in linear_files(short) if tuned)
    rows = read_linear_ops(path)
    base = GpuEfficiency().replace(**LITERATURE[gpu.name])
    eff = fit_gemm([r.gemm for r in rows if r.gemm is not None], gpu, base)
    eff = fit_memory([r.memory for r in rows if r.memory is not None], gpu, eff)
    ar = [s for s in read_all_reduce(require_kernels() / f"{short}_dgx__all_reduce.csv")
          if s.group_size in TUNE_WORKERS and s.gpus_per_node == s.group_size]
    return fit_all_reduce(ar, gpu, get_link(gpu.scale_up_link), eff)


def main() -> None:
    """Fit both GPUs and print (or write) the parameter file."""
    entries = {}
    for short, name in GPUS.items():
        eff = fit_gpu(short)
        params = {k: (round(v, 9) if isinstance(v, float) else v) for k, v in eff.as_dict().items()}
        entries[name] = {
            "note": (f"GEMM/norm fitted on Vidur {short}__{TUNE_MODEL}__linear_ops.csv; all-reduce on {short}_dgx "
                     f"intra-node rows with {TUNE_WORKERS} workers (benchmarks/gpu_fit_defaults.py). {COMMON_NOTE}"),
            "params": params,
        }
        print(name, json.dumps(params))
    # GPUs without measurements (H200, B200, GB200, user GPUs) reuse the H100 efficiencies (same or newer
    # generation of tensor cores and NCCL): an assumption, flagged in the note.
    entries["default"] = {
        "note": "ASSUMPTION: GPUs without their own entry (h200, b200, gb200, user GPUs) reuse the h100-sxm "
                "efficiencies; calibrate them with `twinfer calibrate` when you can.",
        "params": entries["h100-sxm"]["params"],
    }
    doc = {"source": "Vidur per-operator kernel timings (microsoft/vidur, MIT licence)", "gpus": entries}
    if "--write" in sys.argv:
        OUT.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
