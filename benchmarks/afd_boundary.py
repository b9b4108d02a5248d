"""Where does attention/FFN disaggregation (AFD) beat plain decode? A sweep of link bandwidth and expert granularity.

Run: .venv/bin/python benchmarks/afd_boundary.py [--ctx 2000] [--slo-ms 50]

Claim (Baidu, arXiv 2602.09721, via /work/shared/reference/factory-2026.md): AFD pays
only where interconnect bandwidth is abundant and experts are coarse; otherwise wide
expert parallelism (EP) wins. Setup, all decode steps of sequences with ``--ctx``
tokens of context, on H100 compute and memory (calibrated roofline) but with one
fabric of B GB/s per GPU for every GPU (a superpod; B swept 25..1600):

* plain: wide EP over all N GPUs (attention data-parallel, experts split, NCCL-style
  all-to-all on the fabric: its fitted efficiency, 75 % of B and 29 us a collective);
* AFD: A attention GPUs + N - A expert GPUs over the same fabric at the same achieved
  bandwidth and per-transfer latency, with the best split A in {N/4, N/2, 3N/4} and the
  best micro-batch count in 1..4 for each point (AFD at its best).

Models: coarse = Mixtral-8x7B (8 experts x 14,336 wide, top-2, bf16, N = 8), fine =
DeepSeek-V3 (256 x 2,048, top-8, fp8, N = 32); and granularity alone, at equal total
and active expert parameters on Mixtral's skeleton: 8 x 14,336 top-2, 32 x 3,584 top-8,
128 x 896 top-32. Per-token latency: the step at 8 sequences per GPU. $/M tokens: the
price per hour over the highest throughput with a step within ``--slo-ms`` (batches
up to 512 per GPU, within KV capacity). Prints what the model finds, whatever it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from twinfer.afd.config import AfdConfig, AttentionGroup, FfnGroup
from twinfer.afd.step_cost import AfdStepCost
from twinfer.errors import CapacityError, ConfigError
from twinfer.gpu.efficiency import default_efficiency
from twinfer.gpu.expert_parallel import ExpertParallelStepCost
from twinfer.hardware import get_hardware
from twinfer.hardware.loader import HardwareSet
from twinfer.hardware.specs import LinkSpec
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec

GPU = "h100-sxm"
FACTORY_GPU, FACTORY_LPU = "vr200", "groq3-lp30"
LPX_GBPS = (25, 50, 100, 200, 400, 800)  # lpx-gpu preset: 50-200 GB/s [U]; wider to see the trend
BANDWIDTHS_GBPS = (25, 50, 100, 200, 400, 800, 1600)
BATCHES_PER_GPU = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def fabric(bw_gbps: float, gpu_name: str = GPU) -> HardwareSet:
    """GPUs whose scale-up domain is every GPU, on a fabric of ``bw_gbps`` GB/s per GPU and direction."""
    gpu = get_hardware(gpu_name)
    eff = default_efficiency(gpu.name)
    wide = dataclasses.replace(gpu, scale_up_link="fabric", scale_up_gpus=4096)
    return HardwareSet(chips={gpu.name: wide}, links={
        "fabric": LinkSpec("fabric", bw_bytes_per_s=bw_gbps * 1e9, latency_s=3e-6),
        # AFD's transfers at the achieved bandwidth and per-collective latency EP's all-to-all gets.
        "fabric-achieved": LinkSpec("fabric-achieved", bw_bytes_per_s=bw_gbps * 1e9 * eff.allreduce_bw_eff,
                                    latency_s=eff.allreduce_latency_s),
    })


def granular(base: ModelSpec, experts: int, top_k: int, width: int) -> ModelSpec:
    """``base`` with its experts re-cut: same total (experts x width) and active (top_k x width) FFN parameters."""
    assert base.moe is not None
    moe = dataclasses.replace(base.moe, num_experts=experts, experts_per_token=top_k, expert_intermediate_size=width)
    return dataclasses.replace(base, name=f"{base.name} {experts}x{width} top-{top_k}", moe=moe)


def best_cost(step, price_per_hour: float, kv_tokens: int, gpus: int, ctx: int, slo_s: float) -> float:
    """$/M output tokens at the highest throughput whose step fits the SLO and the KV cache (inf if none)."""
    best = 0.0
    for per_gpu in BATCHES_PER_GPU:
        seqs = per_gpu * gpus
        if seqs * ctx > kv_tokens:
            break
        t = step(seqs)
        if t <= slo_s:
            best = max(best, seqs / t)
    return price_per_hour / 3600.0 / best * 1e6 if best else float("inf")


def ep_overlapped_s(plain: ExpertParallelStepCost, shape: StepShape) -> float:
    """An optimistic bound on EP with its all-to-all hidden behind compute (SGLang's two-batch overlap)."""
    step = plain.step_time_s(shape)
    comm = sum(o.total_s for o in plain.op_times(shape) if o.name in ("ep_dispatch", "ep_combine"))
    return max(step - comm, comm)


def afd_best(configs, model: ModelSpec, prec: Precision, hw: HardwareSet, cap: int, lat_seqs: int, gpus: int,
             ctx: int, slo_s: float) -> tuple[float, str, float, str]:
    """(latency ms, its layout, $/M tokens, its layout) of the best of the AFD ``configs`` that fit."""
    afd_ms, afd_usd, how_ms, how_usd = float("inf"), float("inf"), "", ""
    for cfg in configs:
        try:
            afd = AfdStepCost(model, cfg, precision=prec, extra_hardware=hw, max_batch_seqs=cap)
        except (CapacityError, ConfigError):
            continue

        def afd_step(seqs: int, afd: AfdStepCost = afd) -> float:
            return afd.step_time_s(StepShape.decode([ctx] * seqs))

        r = afd.resources()
        ms = afd_step(lat_seqs) * 1e3
        usd = best_cost(afd_step, r.price_per_hour_usd, r.kv_capacity_tokens, gpus, ctx, slo_s)
        how = f"{cfg.attention.replicas}+{afd.ffn_devices} m{cfg.micro_batches}"
        if ms < afd_ms:
            afd_ms, how_ms = ms, how
        if usd < afd_usd:
            afd_usd, how_usd = usd, how
    return afd_ms, how_ms, afd_usd, how_usd


def point(model: ModelSpec, prec: Precision, gpus: int, bw: float, ctx: int, slo_s: float, lpu: str | None) -> dict:
    """Plain EP (as modelled, and with its all-to-all ideally hidden) and the best AFD at one bandwidth."""
    hw = fabric(bw, GPU if lpu is None else FACTORY_GPU)
    gpu = GPU if lpu is None else FACTORY_GPU
    cap = 512 * gpus
    plain = ExpertParallelStepCost(model, gpu, ep=gpus, precision=prec, extra_hardware=hw, max_batch_seqs=cap)
    res = plain.resources()
    lat_seqs = 8 * gpus
    out = {}
    for key, step in (("plain", lambda n: plain.step_time_s(StepShape.decode([ctx] * n))),
                      ("overlap", lambda n: ep_overlapped_s(plain, StepShape.decode([ctx] * n)))):
        out[f"{key}_ms"] = step(lat_seqs) * 1e3
        out[f"{key}_usd"] = best_cost(step, res.price_per_hour_usd, res.kv_capacity_tokens, gpus, ctx, slo_s)
    if lpu is None:  # A attention GPUs + the rest for the experts, same fabric
        configs = [AfdConfig(AttentionGroup(gpu, replicas=a), FfnGroup(gpu, ep=gpus - a), link="fabric-achieved",
                             micro_batches=m) for a in (gpus // 4, gpus // 2, 3 * gpus // 4) for m in (1, 2, 3, 4)]
    else:  # every GPU runs attention; the experts go to the fewest LPU chips that hold them
        configs = [AfdConfig(AttentionGroup(gpu, replicas=gpus), FfnGroup(lpu), link="fabric", micro_batches=m)
                   for m in (1, 2, 3, 4)]
    afd_ms, how_ms, afd_usd, how_usd = afd_best(configs, model, prec, hw, cap, lat_seqs, gpus, ctx, slo_s)
    return {**out, "afd_ms": afd_ms, "afd_usd": afd_usd, "how_ms": how_ms, "how_usd": how_usd}


def sweep(title: str, model: ModelSpec, prec: Precision, gpus: int, ctx: int, slo_s: float,
          lpu: str | None = None, bandwidths: tuple[float, ...] = BANDWIDTHS_GBPS) -> None:
    print(f"\n{title}: {model.name}, {gpus} GPUs, context {ctx}")
    print(f"{'GB/s':>6} | {'EP ms':>7} {'EP+ovl':>7} {'AFD ms':>7} {'(layout)':>12} {'AFD/EP':>6} {'/ovl':>5} | "
          f"{'EP $/M':>7} {'EP+ovl':>7} {'AFD $/M':>7} {'(layout)':>12} {'AFD/EP':>6} {'/ovl':>5} | AFD wins on")
    for bw in bandwidths:
        p = point(model, prec, gpus, bw, ctx, slo_s, lpu)
        lat, lat_o = p["afd_ms"] / p["plain_ms"], p["afd_ms"] / p["overlap_ms"]
        usd, usd_o = p["afd_usd"] / p["plain_usd"], p["afd_usd"] / p["overlap_usd"]
        wins = [w for w, r, ro in (("latency", lat, lat_o), ("$/token", usd, usd_o)) if r < 1.0]
        wins = [w + (" (also vs overlapped EP)" if {"latency": lat_o, "$/token": usd_o}[w] < 1.0 else "") for w in wins]
        print(f"{bw:>6g} | {p['plain_ms']:>7.2f} {p['overlap_ms']:>7.2f} {p['afd_ms']:>7.2f} {p['how_ms']:>12} "
              f"{lat:>6.2f} {lat_o:>5.2f} | {p['plain_usd']:>7.3f} {p['overlap_usd']:>7.3f} {p['afd_usd']:>7.3f} "
              f"{p['how_usd']:>12} {usd:>6.2f} {usd_o:>5.2f} | {', '.join(wins) or '-'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ctx", type=int, default=2000, help="context tokens per sequence")
    ap.add_argument("--slo-ms", type=float, default=50.0, help="TPOT limit for the $/token point")
    args = ap.parse_args()
    t0 = time.perf_counter()
    slo = args.slo_ms / 1e3
    mixtral = load_model("mixtral-8x7b")
    sweep("coarse experts", mixtral, Precision(), 8, args.ctx, slo)
    sweep("fine experts", load_model("deepseek-v3"), Precision(weights="fp8"), 32, args.ctx, slo)
    for experts, k, width in ((32, 8, 3584), (128, 32, 896)):
        sweep("granularity alone", granular(mixtral, experts, k, width), Precision(), 8, args.ctx, slo)
    fp8 = Precision(weights="fp8")
    sweep("the factory split, coarse (vr200 attention + LP30 experts vs vr200 EP)", mixtral, fp8, 8, args.ctx, slo,
          FACTORY_LPU, LPX_GBPS)
    sweep("the factory split, fine (vr200 attention + LP30 experts vs vr200 EP)", load_model("deepseek-v3"), fp8, 8,
          args.ctx, slo, FACTORY_LPU, LPX_GBPS)
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
