"""The built-in scenario of ``twinfer simulate`` with no arguments.

Llama-3-70B on the shipped Azure 2023 conversation sample, four fleets at equal
budget ($/h from the hardware presets): (a) colocated H100s, (b) H100 prefill
-> H100 decode, (c) H100 prefill -> Groq TSP v1 decode, (d) TSP v1 only.

Prices are those in effect: the presets', or a ``hardware_file``'s where it
replaces a preset (``twinfer simulate --hardware-file``), so the fleets are
sized on the prices they are then billed at.

Equal budget: without LPUs, the budget is 4 instances of 4 H100s; with LPUs it
is two whole LPU systems (the smallest LPU-only fleet with a spare), since an
LPU system is the unit that must hold the model. So that a bigger budget does
not just idle, the trace's arrival rate is scaled by budget / (cost of 4
H100x4 instances): load per dollar stays that of 4 H100x4 instances serving
the trace as recorded. Disaggregated fleets get enough prefill instances for
the offered prompt load at 60% utilisation (from the prefill step time of the
trace's mean prompt) and spend the rest of the budget on decode instances;
a fleet may spend less than the budget when its unit price does not divide it.
LPU fleets appear only when the LPU backend (twinfer.lpu.step_cost) is
importable; otherwise they are listed in ``notes`` as pending.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from twinfer.errors import TwinferError
from twinfer.sim.scenario import FleetConfig, LinkConfig, PoolConfig, Scenario, SloConfig
from twinfer.sim.scheduler import BatchingConfig

MODEL = "llama-3-70b"
GPU = "h100"
LPU = "groq-tsp-v1"
GPU_TP = 4  # Llama-3-70B bf16 (141 GB of weights) on 4 x 80 GB leaves ~40 % of HBM for KV
BASE_GPU_INSTANCES = 4
PREFILL_TARGET_UTILISATION = 0.6  # headroom for bursts; DistServe sizes prefill for the TTFT SLO, not 100% load
LPU_STEP_TOKEN_BUDGET = 131072  # ~64 stages x 2048 tokens


TRACE = "builtin:azure-conv-sample"
TRACE_RATE_PER_S = 5.783  # the shipped sample: 2,000 requests over 345.6 s (`twinfer workload builtin:azure-conv-sample`)
DEFAULT_REQUESTS = 8000


def _default_workload(scale: float):
    """Poisson arrivals at the sample's rate x ``scale``, (prompt, output) pairs drawn from the sample.

    The sample's inter-arrival CV is 1.01, so Poisson keeps its burstiness; 8,000
    requests make the drain after the last arrival small next to the run.
    """
    from twinfer.workload import WorkloadConfig

    empirical = {"kind": "empirical", "trace": TRACE}
    return WorkloadConfig.from_dict({
        "num_requests": DEFAULT_REQUESTS,
        "arrivals": {"kind": "poisson", "rate_per_s": TRACE_RATE_PER_S * scale},
        "prompt_tokens": empirical, "output_tokens": empirical,
    }, where="built-in scenario workload")


def _prefill_instances_needed(model, gpu_pool: PoolConfig, workload, extra: Any) -> int:
    """H100 prefill instances for the workload's prompt load at PREFILL_TARGET_UTILISATION."""
    import numpy as np

    from twinfer.models.step import StepShape
    from twinfer.sim.run import make_pool_cost
    from twinfer.workload import build_workload

    wl = build_workload(workload, np.random.default_rng(0))
    mean_prompt = max(1, round(float(np.mean(wl.prompt_tokens))))
    per_prompt_s = make_pool_cost(model, gpu_pool, extra_hardware=extra).step_time_s(StepShape.prefill([mean_prompt]))
    load = wl.mean_rate_per_s * per_prompt_s  # busy seconds per second of one instance
    return max(1, int(np.ceil(load / PREFILL_TARGET_UTILISATION)))


def default_scenario(lpu: bool | None = None, hardware_file: str | Path | None = None) -> tuple[Scenario, list[str]]:
    """The built-in scenario and notes on how it was sized (and what is pending).

    ``hardware_file`` (``--hardware-file``) may replace the presets the fleets use;
    the budget and the fleets' sizes then follow its prices.
    """
    from twinfer.models import load_model
    from twinfer.sim.run import make_pool_cost, pool_pricing
    from twinfer.sim.scenario import resolve_hardware_file

    hw_path = None
    extra = None
    if hardware_file is not None:
        from twinfer.hardware import load_hardware_file

        hw_path = resolve_hardware_file({"hardware_file": str(hardware_file)}, "--hardware-file", Path.cwd())
        extra = load_hardware_file(hw_path) if hw_path is not None else None
    model = load_model(MODEL)
    notes: list[str] = []
    gpu_pool = PoolConfig(hardware=GPU, tp=GPU_TP, batching=BatchingConfig(policy="chunked", token_budget=2048))
    gpu_price = pool_pricing(gpu_pool, make_pool_cost(model, gpu_pool, extra_hardware=extra)).price_per_hour_usd
    base = BASE_GPU_INSTANCES * gpu_price
    lpu_pool = None
    lpu_price = 0.0
    if lpu is not False:
        try:
            # The token budget bounds one step of the whole pipelined system, which carries
            # one micro-batch per stage (twinfer.perf.pipeline): give each stage room for a prompt.
            lpu_pool = PoolConfig(hardware=LPU, precision=replace(PoolConfig(hardware=LPU).precision, weights="int8"),
                                  batching=BatchingConfig(policy="continuous", token_budget=LPU_STEP_TOKEN_BUDGET))
            lpu_price = pool_pricing(lpu_pool, make_pool_cost(model, lpu_pool, extra_hardware=extra)).price_per_hour_usd
        except ImportError:
            lpu_pool = None
            notes.append("LPU fleets (c) and (d) pending: the LPU backend twinfer.lpu.step_cost is not available yet")
        except TwinferError as exc:
            lpu_pool = None
            notes.append(f"LPU fleets (c) and (d) skipped: {exc}")
    budget = base
    if lpu_pool is not None:
        budget = max(base, 2 * lpu_price)
    scale = budget / base
    workload = _default_workload(scale)
    n_gpu = max(1, int(budget // gpu_price))
    n_pre = _prefill_instances_needed(model, gpu_pool, workload, extra)
    fleets = [
        FleetConfig(name="a) colocated H100", pools={"mixed": replace(gpu_pool, count=n_gpu)}),
        FleetConfig(name="b) H100 -> H100", pools={
            "prefill": replace(gpu_pool, count=min(n_pre, n_gpu - 1)),
            "decode": replace(gpu_pool, count=max(1, n_gpu - min(n_pre, n_gpu - 1)),
                              batching=BatchingConfig(policy="continuous")),
        }, kv_link=LinkConfig(name="ib-ndr", count=GPU_TP)),
    ]
    if lpu_pool is not None:
        n_lpu_dec = max(1, int((budget - n_pre * gpu_price) // lpu_price))
        fleets.append(FleetConfig(name="c) H100 -> TSP v1", pools={
            "prefill": replace(gpu_pool, count=n_pre), "decode": replace(lpu_pool, count=n_lpu_dec)},
            kv_link=LinkConfig(name="ib-ndr", count=GPU_TP)))
        fleets.append(FleetConfig(name="d) TSP v1 only", pools={"mixed": replace(lpu_pool, count=max(1, int(budget // lpu_price)))}))
        notes.append("GPU->LPU KV link assumed InfiniBand NDR x4 per prefill instance (no public GroqRack ingress figure)")
    priced = "are preset assumptions" if extra is None else f"from {Path(str(hw_path)).name} where it replaces a preset, else preset assumptions"
    notes.append(f"budget ${budget:,.2f}/h per fleet (prices {priced}); trace rate x{scale:.2f}; "
                 f"{n_pre} H100x{GPU_TP} prefill instances sized for the prompt load at 60% utilisation")
    scen = Scenario(name="built-in: Llama-3-70B on Azure conv sample", model=MODEL, workload=workload,
                    fleets=tuple(fleets), slo=SloConfig(ttft_s=2.0, tpot_s=0.2), hardware_file=hw_path)
    return scen, notes
