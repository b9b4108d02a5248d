"""The built-in scenario of ``twinfer simulate`` with no arguments.

Llama-3-70B on the shipped Azure 2023 conversation sample, four fleets at equal
budget ($/h from the hardware presets): (a) colocated H100s, (b) H100 prefill
-> H100 decode, (c) H100 prefill -> Groq TSP v1 decode, (d) TSP v1 only.

Equal budget: the budget is the cost of the smallest fleet of each shape that
can hold the model (for GPUs, 4 instances of 4 H100s), and each fleet gets as
many instances as fit in it. So that a bigger budget does not just idle, the
trace's arrival rate is scaled by budget / (cost of 4 H100x4 instances): load
per dollar stays that of 4 H100x4 instances serving the trace as recorded.
LPU fleets appear only when the LPU backend (twinfer.lpu.step_cost) is
importable; otherwise they are listed in ``notes`` as pending.
"""

from __future__ import annotations

from dataclasses import replace

from twinfer.errors import TwinferError
from twinfer.sim.scenario import FleetConfig, LinkConfig, PoolConfig, Scenario, SloConfig
from twinfer.sim.scheduler import BatchingConfig

MODEL = "llama-3-70b"
GPU = "h100"
LPU = "groq-tsp-v1"
GPU_TP = 4  # Llama-3-70B bf16 (141 GB of weights) on 4 x 80 GB leaves ~40 % of HBM for KV
BASE_GPU_INSTANCES = 4


def default_scenario(lpu: bool | None = None) -> tuple[Scenario, list[str]]:
    """The built-in scenario and notes on how it was sized (and what is pending)."""
    from twinfer.models import load_model
    from twinfer.sim.run import make_pool_cost, pool_pricing
    from twinfer.workload import WorkloadConfig

    model = load_model(MODEL)
    notes: list[str] = []
    gpu_pool = PoolConfig(hardware=GPU, tp=GPU_TP, batching=BatchingConfig(policy="chunked", token_budget=2048))
    gpu_price = pool_pricing(gpu_pool, make_pool_cost(model, gpu_pool)).price_per_hour_usd
    base = BASE_GPU_INSTANCES * gpu_price
    lpu_pool = None
    lpu_price = 0.0
    if lpu is not False:
        try:
            lpu_pool = PoolConfig(hardware=LPU, precision=replace(PoolConfig(hardware=LPU).precision, weights="int8"),
                                  batching=BatchingConfig(policy="continuous", token_budget=2048))
            lpu_price = pool_pricing(lpu_pool, make_pool_cost(model, lpu_pool)).price_per_hour_usd
        except ImportError:
            lpu_pool = None
            notes.append("LPU fleets (c) and (d) pending: the LPU backend twinfer.lpu.step_cost is not available yet")
        except TwinferError as exc:
            lpu_pool = None
            notes.append(f"LPU fleets (c) and (d) skipped: {exc}")
    budget = base
    if lpu_pool is not None:
        budget = max(base, lpu_price + gpu_price, lpu_price)
    scale = budget / base
    n_gpu = max(1, int(budget // gpu_price))
    fleets = [
        FleetConfig(name="a) colocated H100", pools={"mixed": replace(gpu_pool, count=n_gpu)}),
        FleetConfig(name="b) H100 -> H100", pools={
            "prefill": replace(gpu_pool, count=max(1, n_gpu // 2)),
            "decode": replace(gpu_pool, count=max(1, n_gpu - n_gpu // 2), batching=BatchingConfig(policy="continuous")),
        }, kv_link=LinkConfig(name="ib-ndr", count=GPU_TP)),
    ]
    if lpu_pool is not None:
        n_lpu_dec = max(1, int((budget - gpu_price) // lpu_price))
        n_pre = max(1, int((budget - n_lpu_dec * lpu_price) // gpu_price))
        fleets.append(FleetConfig(name="c) H100 -> TSP v1", pools={
            "prefill": replace(gpu_pool, count=n_pre), "decode": replace(lpu_pool, count=n_lpu_dec)},
            kv_link=LinkConfig(name="ib-ndr", count=GPU_TP)))
        fleets.append(FleetConfig(name="d) TSP v1 only", pools={"mixed": replace(lpu_pool, count=max(1, int(budget // lpu_price)))}))
        notes.append("GPU->LPU KV link assumed InfiniBand NDR x4 per prefill instance (no public GroqRack ingress figure)")
    notes.append(f"budget ${budget:,.2f}/h per fleet (prices are preset assumptions); trace rate x{scale:.2f}")
    workload = replace(WorkloadConfig.default(), rate_scale=scale)
    scen = Scenario(name="built-in: Llama-3-70B on Azure conv sample", model=MODEL, workload=workload,
                    fleets=tuple(fleets), slo=SloConfig(ttft_s=2.0, tpot_s=0.2))
    return scen, notes
