"""Accuracy of the GPU model against measured kernels and published end-to-end numbers.

Run: ``.venv/bin/python benchmarks/gpu_accuracy.py``. Needs ../shared/data/gpu-kernels
(Vidur's measurements, MIT licence). Uses the SHIPPED efficiency defaults (fitted
by gpu_fit_defaults.py on the tuning split in gpu_common.py) and reports the
median absolute % error per op and GPU separately for tuned and held-out data.
Then it compares with public end-to-end results (shared/reference/gpu-and-serving.md)
under fixed, stated scenario assumptions: nothing is tuned per case.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from gpu_common import GPUS, TUNE_WORKERS, linear_files, require_kernels
from twinfer.gpu import GpuStepCost, default_efficiency
from twinfer.gpu.fit import SMALL_MESSAGE_BYTES
from twinfer.gpu.kernels import KernelModel
from twinfer.gpu.vidur_data import OP_NAMES, read_all_reduce, read_linear_ops
from twinfer.hardware import get_hardware, get_link
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision


def kernel_model(gpu_name: str) -> KernelModel:
    """Kernel formulas of a GPU preset with its shipped efficiencies."""
    gpu = get_hardware(gpu_name)
    return KernelModel(gpu, default_efficiency(gpu.name), get_link(gpu.scale_up_link), get_link("ib-ndr"))


def pct(pred: float, meas: float) -> float:
    """Absolute percentage error."""
    return abs(pred / meas - 1.0) * 100.0


def linear_ops_table() -> None:
    """Median abs % error per op, per GPU, tuned vs held-out files."""
    print("## Per-operator kernels (Vidur linear_ops; median |error| %, rows = (tokens 1..4096) x TP 1/2/4/8)")
    print(f"{'gpu':6} {'split':9} {'op':16} {'files':>5} {'rows':>6} {'median':>7} {'p90':>7}")
    for short, name in GPUS.items():
        km = kernel_model(name)
        errs: dict[tuple[bool, str], list[float]] = defaultdict(list)
        files: dict[bool, set[str]] = defaultdict(set)
        per_file: dict[tuple[str, str], list[float]] = defaultdict(list)
        for model, path, tuned in linear_files(short):
            files[tuned].add(model)
            for r in read_linear_ops(path):
                if r.gemm is not None:
                    g = r.gemm
                    pred = km.gemm_time_s(g.m, g.n, g.k, g.bytes_moved, g.dtype)
                else:
                    pred = km.memory_time_s(r.memory.bytes_moved)  # type: ignore[union-attr]
                e = pct(pred, r.time_s)
                errs[(tuned, OP_NAMES[r.op])].append(e)
                per_file[(model, OP_NAMES[r.op])].append(e)
        for tuned in (True, False):
            for op in OP_NAMES.values():
                v = errs[(tuned, op)]
                label = "tuned" if tuned else "held-out"
                print(f"{short:6} {label:9} {op:16} {len(files[tuned]):>5} {len(v):>6} "
                      f"{np.median(v):7.1f} {np.percentile(v, 90):7.1f}")
        pooled = [e for (tuned, _), v in errs.items() if not tuned for e in v]
        print(f"{short} held-out, all ops pooled: median {np.median(pooled):.1f}% over {len(pooled)} rows")
        print(f"{short} held-out files: {', '.join(sorted(files[False]))}")
        for model in sorted(files[False]):
            cells = " ".join(f"{op}={np.median(per_file[(model, op)]):.1f}" for op in OP_NAMES.values())
            print(f"    {model:28} {cells}")


def all_reduce_table() -> None:
    """Median abs % error of all-reduce per system, worker count, workers per node and message size band."""
    print("\n## All-reduce (Vidur NCCL; tuned on *_dgx intra-node rows with 2 and 8 workers; the rest held out)")
    print("   cross-node rows use the ib-ndr preset (50 GB/s per GPU): the network of Vidur's cluster is not known")
    print(f"   small = up to {SMALL_MESSAGE_BYTES >> 20} MiB per rank (decode steps), large = above")
    print(f"{'system':22} {'workers':>7} {'per node':>8} {'split':24} {'rows':>5} {'median':>7} {'small':>7} {'large':>7}")
    for short, name in GPUS.items():
        km = kernel_model(name)
        for system in (f"{short}_dgx", f"{short}_pairwise_nvlink"):
            samples = read_all_reduce(require_kernels() / f"{system}__all_reduce.csv")
            for w, per_node in sorted({(s.group_size, s.gpus_per_node) for s in samples}):
                cell = [s for s in samples if (s.group_size, s.gpus_per_node) == (w, per_node)]
                v = [pct(km.all_reduce_time_s(s.message_bytes, w, per_node), s.time_s) for s in cell]
                small = [e for e, s in zip(v, cell, strict=True) if s.message_bytes <= SMALL_MESSAGE_BYTES]
                large = [e for e, s in zip(v, cell, strict=True) if s.message_bytes > SMALL_MESSAGE_BYTES]
                if "pairwise" in system:
                    split = "not modelled (topology)"
                elif per_node < w:
                    split = "held-out (cross-node)"
                else:
                    split = "tuned" if w in TUNE_WORKERS else "held-out"
                print(f"{system:22} {w:>7} {per_node:>8} {split:24} {len(v):>5} {np.median(v):7.1f} "
                      f"{np.median(small):7.1f} {np.median(large):7.1f}")


def e2e_cases(engine: str) -> list[tuple[str, float, float, str]]:
    """(case, model value, measured, unit) of every published end-to-end case, with ``engine``'s profile.

    Every case here was measured on TensorRT-LLM (MLPerf NVIDIA submission, NIM, TRT-LLM docs); the
    scenario assumptions are fixed and stated, nothing is tuned per case.
    """
    fp8 = Precision(weights="fp8", activations="bf16", kv_cache="fp8")
    out: list[tuple[str, float, float, str]] = []
    # 1. MLPerf v4.0 offline, Llama-2-70B, 8x H100, FP8. Assumed: 4 instances of TP2 (uncertain), prompts ~300 tokens
    #    (recalled OpenOrca mean, uncertain), 292 output tokens (reference), batch = what KV holds, capped at the
    #    engine's max sequences (256 for the roofline profile).
    m = load_model("llama-2-70b")
    inp, out_len = 300, 292
    cost = GpuStepCost(m, "h100", tp=2, precision=fp8, engine=engine)
    batch = min(cost.max_batch_seqs, cost.resources().kv_capacity_tokens // (inp + out_len))
    prefill = cost.step_time_s(StepShape.prefill([inp] * batch))
    decode = sum(cost.step_time_s(StepShape.decode([inp + i] * batch)) for i in range(1, out_len + 1))
    out.append((f"MLPerf v4.0 offline 8xH100 Llama-2-70B fp8 (4x TP2, batch {batch} [{engine}]) output tok/s",
                4 * batch * out_len / (prefill + decode), 21805.8, "tok/s"))
    # 2. NIM 1.8.0 Llama-3.1-8B on 1x H100 (TensorRT-LLM FP8 profile), concurrency 1. Assumed 200 input tokens
    #    (uncertain); ITL at context 300. TTFT as a client sees it: one prefill step plus one request's host path.
    m8 = load_model("llama-3.1-8b")
    c = GpuStepCost(m8, "h100", precision=fp8, engine=engine)
    out.append(("NIM Llama-3.1-8B 1xH100 fp8 TTFT, 200 input tokens",
                (c.step_time_s(StepShape.prefill([200])) + c.engine.request_overhead_s) * 1e3, 10.3, "ms"))
    out.append(("NIM Llama-3.1-8B 1xH100 fp8 inter-token latency", c.step_time_s(StepShape.decode([300])) * 1e3, 4.63, "ms"))
    # 3. TensorRT-LLM v0.5 LLaMA-7B FP8 on H100, batch 1 TTFT (one prefill step plus the request's host path).
    c7 = GpuStepCost(load_model("llama-2-7b"), "h100", precision=fp8, engine=engine)
    for n, meas in ((128, 7.0), (2048, 36.0)):
        out.append((f"TRT-LLM LLaMA-7B fp8 1xH100 TTFT, {n} input tokens",
                    (c7.step_time_s(StepShape.prefill([n])) + c7.engine.request_overhead_s) * 1e3, meas, "ms"))
    return out


def e2e() -> None:
    """Published end-to-end results: the unfused roofline (before) and the engine they ran on (after)."""
    print("\n## Published end-to-end results (all measured on TensorRT-LLM; no per-case tuning)")
    before, after = e2e_cases("roofline"), e2e_cases("trtllm")
    print(f"{'case':62} {'measured':>9} {'roofline':>9} {'err':>7} {'trtllm':>9} {'err':>7}")
    for (what, b, meas, unit), (what_a, a, _, _) in zip(before, after, strict=True):
        print(f"{what:62} {meas:9.2f} {b:9.2f} {100 * (b / meas - 1):+6.1f}% {a:9.2f} {100 * (a / meas - 1):+6.1f}%  {unit}")
        if what_a != what:
            print(f"    with trtllm: {what_a}")


if __name__ == "__main__":
    try:
        linear_ops_table()
        all_reduce_table()
    except SystemExit as exc:  # ../shared/data absent: say so, still run the published end-to-end checks
        print(f"skipping the kernel tables: {exc}")
    e2e()
