"""Run scenarios: build a fleet's simulator from its config, run it, collect results.

Public entry points (used by the CLI, the planner's sweeps, the report and the
emulation server):

* :func:`build_fleet_sim` -- a ready :class:`FleetSim` plus pricing, for
  incremental use (``submit`` / ``run_until`` / callbacks) or batch runs.
* :func:`simulate_fleet` -- one fleet on the scenario's workload -> :class:`FleetResult`.
* :func:`simulate` -- every fleet of a scenario on the same workload -> :class:`ScenarioResult`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, MutableMapping
from dataclasses import replace
from typing import Any

import numpy as np

from twinfer.errors import ConfigError, TwinferError
from twinfer.hardware.loader import HardwareSet
from twinfer.kvcache.tiers import TierSpec
from twinfer.models.spec import ModelSpec
from twinfer.perf.base import StepCostModel
from twinfer.perf.pipeline import pipelined
from twinfer.perf.speculative_cost import SpeculativeStepCost
from twinfer.sim.cluster import FleetSim, LinkSetup, PoolSetup
from twinfer.sim.metrics import PoolPricing, fleet_result
from twinfer.sim.prefix_sched import PrefixSetup
from twinfer.sim.results import FleetResult, ScenarioResult
from twinfer.sim.scenario import FleetConfig, PoolConfig, PrefixCacheConfig, Scenario
from twinfer.sim.scenario_fleet_options import check_prefix_ids

#: A memo of step-cost models by :func:`pool_cost_key` (a :class:`StepCostCache`, or a plain dict).
CostCache = MutableMapping[Hashable, StepCostModel]

#: progress(done_requests, total_requests, fleet_name)
Progress = Callable[[int, int, str], None]


def load_scenario_model(scenario: Scenario) -> ModelSpec:
    """The scenario's ModelSpec (preset name or config.json path)."""
    from twinfer.models import load_model

    return load_model(scenario.model)


class StepCostCache(MutableMapping[Hashable, StepCostModel]):
    """A bounded least-recently-used memo of step-cost models (a mapping; a plain dict works too, unbounded).

    Keys come from :func:`pool_cost_key`: the frozen :class:`ModelSpec` itself
    (every field, not its name: two ``config.json`` folders may share a name)
    plus every setting passed to the backend, so two different instances never
    share a model. Step-cost models are stateless and pure, so reusing one only
    saves building it.
    """

    def __init__(self, max_entries: int = 64) -> None:
        if max_entries < 1:
            raise ValueError(f"a step-cost cache needs room for at least one model, got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, StepCostModel] = OrderedDict()

    def __getitem__(self, key: Hashable) -> StepCostModel:
        cost = self._items[key]
        self._items.move_to_end(key)  # now the most recently used
        return cost

    def __setitem__(self, key: Hashable, cost: StepCostModel) -> None:
        self._items[key] = cost
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)  # the least recently used

    def __delitem__(self, key: Hashable) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def pool_cost_key(model: ModelSpec, pool: PoolConfig, extra_hardware: HardwareSet | None = None) -> tuple[Hashable, ...]:
    """What determines the step-cost model of one instance of ``pool``: the whole model and every backend setting.

    With a user hardware file the chip is keyed by its whole spec, not its name
    (two files may define chips of the same name).
    """
    hardware: Hashable = pool.hardware
    if extra_hardware is not None:
        from twinfer.hardware import get_hardware

        hardware = repr(get_hardware(pool.hardware, extra_hardware))
    return (model, hardware, pool.tp, pool.pp, pool.chips, pool.precision, pool.batching.max_batch_seqs,
            pool.engine, pool.ep, pool.expert_imbalance, pool.afd)



def make_pool_cost(model: ModelSpec, pool: PoolConfig, cache: CostCache | None = None,
                   extra_hardware: HardwareSet | None = None) -> StepCostModel:
    """The step-cost model of one instance of ``pool`` (memoised in ``cache``, see :func:`pool_cost_key`).

    ``extra_hardware`` holds the scenario's user chips and links (:meth:`Scenario.extra_hardware`).
    """
    from twinfer.perf import make_step_cost

    key = pool_cost_key(model, pool, extra_hardware)
    cost = cache.get(key) if cache is not None else None
    if cost is None and pool.afd is not None:
        from twinfer.afd.step_cost import AfdStepCost

        cost = AfdStepCost(model, pool.afd, precision=pool.precision, expert_imbalance=pool.expert_imbalance,
                           max_batch_seqs=pool.batching.max_batch_seqs, extra_hardware=extra_hardware)
    elif cost is None:
        cost = make_step_cost(model, pool.hardware, tp=pool.tp, pp=pool.pp, chips=pool.chips,
                              precision=pool.precision, max_batch_seqs=pool.batching.max_batch_seqs,
                              engine=pool.engine, ep=pool.ep, expert_imbalance=pool.expert_imbalance,
                              extra_hardware=extra_hardware)
    else:
        return cost
    if cache is not None:
        cache[key] = cost
    return cost


def speculative_pool_cost(model: ModelSpec, pool: PoolConfig, target: StepCostModel,
                          cache: CostCache | None = None, extra_hardware: HardwareSet | None = None) -> StepCostModel:
    """``target`` plus the pool's drafter, on the same devices (its memory charged) or on its own (:mod:`twinfer.perf.speculative_cost`)."""
    from twinfer.errors import ConfigError, UnknownNameError
    from twinfer.models import load_model
    from twinfer.perf.speculative_cost import SpeculativeStepCost, draft_kv_capacity

    cfg = pool.speculative
    assert cfg is not None
    if cfg.method != "draft":
        return SpeculativeStepCost(target, cfg, 1.0 / model.num_layers)  # a head about one layer of the target
    assert cfg.draft_model is not None
    try:
        draft_spec = load_model(cfg.draft_model)
    except (ConfigError, UnknownNameError) as exc:
        raise ConfigError(f"speculative.draft_model: {exc}") from None
    if cfg.draft_devices is not None:
        return _drafter_on_own_devices(draft_spec, pool, target, cache, extra_hardware)
    kv = pool.precision.kv_cache
    capacity = draft_kv_capacity(target.resources().kv_capacity_tokens, model.kv_bytes_per_token(kv),
                                 draft_spec.weight_bytes(pool.precision.weights), draft_spec.kv_bytes_per_token(kv),
                                 "speculative.draft_model")
    return SpeculativeStepCost(target, cfg, make_pool_cost(draft_spec, pool, cache, extra_hardware), capacity)


def _drafter_on_own_devices(draft_spec: ModelSpec, pool: PoolConfig, target: StepCostModel, cache: CostCache | None,
                            extra_hardware: HardwareSet | None) -> StepCostModel:
    """A draft model on ``speculative.draft_devices`` beside each target instance, over the link between them.

    A pipelined drafter (LPU stages) spreads the batch over its lanes, as a
    pipelined pool does (:mod:`twinfer.perf.pipeline`). Default link:
    :func:`~twinfer.hardware.specs.default_link_between` (NVLink
    between GPUs, C2C between LPUs, ``lpx-gpu`` between an LPU and a GPU).
    """
    from twinfer.hardware import get_hardware, get_link
    from twinfer.hardware.specs import default_link_between
    from twinfer.perf.speculative import SeparateDrafter
    from twinfer.perf.speculative_cost import SpeculativeStepCost

    cfg = pool.speculative
    assert cfg is not None and cfg.draft_devices is not None
    where = "speculative.draft_devices"
    devices = cfg.draft_devices
    drafter_pool = replace(pool, hardware=devices.hardware, tp=devices.tp, chips=devices.chips, pp=1, ep=1,
                           expert_imbalance=1.0, afd=None, speculative=None, price_per_hour_usd=None,
                           power_idle_w=None, power_max_w=None, precision=devices.precision or pool.precision)
    try:
        drafter = pipelined(make_pool_cost(draft_spec, drafter_pool, cache, extra_hardware))  # LPU stages: lanes
        default = default_link_between(get_hardware(pool.hardware, extra_hardware),
                                       get_hardware(devices.hardware, extra_hardware))
        link = get_link(devices.link or default, extra_hardware)
    except TwinferError as exc:
        raise type(exc)(f"{where}: {exc} (for the drafter, set {where}.tp or .chips)") from None
    return SpeculativeStepCost(target, cfg, drafter, separate=SeparateDrafter(drafter.resources(), link))


def pool_pricing(pool: PoolConfig, cost: StepCostModel) -> PoolPricing:
    """Per-instance price and power: the backend's resources unless the scenario overrides them."""
    res = cost.resources()
    return PoolPricing(
        hardware=res.hardware,
        devices=res.num_devices,
        price_per_hour_usd=pool.price_per_hour_usd if pool.price_per_hour_usd is not None else res.price_per_hour_usd,
        power_idle_w=pool.power_idle_w if pool.power_idle_w is not None else res.power_idle_w,
        power_max_w=pool.power_max_w if pool.power_max_w is not None else res.power_max_w,
    )


def build_fleet_sim(
    scenario: Scenario,
    fleet: FleetConfig,
    *,
    model: ModelSpec | None = None,
    costs: dict[str, StepCostModel] | None = None,
    cost_cache: CostCache | None = None,
    record_timeline: bool = False,
    sample_interval_s: float | None = None,
    track_tokens: bool = False,
    prefix_block_tokens: int | None = None,
    seed: int = 0,
) -> tuple[FleetSim, dict[str, PoolPricing]]:
    """A fresh simulator of ``fleet`` and the pricing of its pools.

    ``costs`` (role -> StepCostModel) replaces the backends, e.g. with a fake in
    tests; otherwise :func:`twinfer.perf.make_step_cost` builds them.
    ``track_tokens`` enables per-token callbacks (the emulation server).
    ``prefix_block_tokens`` is the workload's prefix block size, needed by a
    fleet with a prefix cache.
    ``seed`` seeds the draws of speculative pools (tokens accepted per verify step).
    """
    from twinfer.hardware import get_link

    model = model or load_scenario_model(scenario)
    extra = scenario.extra_hardware()
    setups, pricing = [], {}
    kv_dtype = (fleet.pools.get("prefill") or fleet.pools["mixed"]).precision.kv_cache
    for role, pool in fleet.pools.items():
        try:
            cost = costs[role] if costs and role in costs else make_pool_cost(model, pool, cost_cache, extra)
            if pool.speculative is not None and not isinstance(cost, SpeculativeStepCost):  # (bands pass it built)
                cost = speculative_pool_cost(model, pool, cost, cost_cache, extra)
        except TwinferError as exc:  # name the fleet and pool the backend refused
            raise type(exc)(f"fleet {fleet.name!r}, pools.{role}: {exc}") from None
        # A pipelined instance (LPU stages, GPU pp) keeps one micro-batch per stage in
        # flight: its batch cap is stages x the compiled batch (twinfer.perf.pipeline).
        cost = pipelined(cost)
        router = fleet.router
        if router == "kv_aware" and role == "decode":
            router = "least_outstanding"  # decode instances hold no prefix cache to route by
        prefix = None
        if role in fleet.prefix_cache:
            prefix = prefix_setup(fleet.prefix_cache[role], pool, cost, prefix_block_tokens,
                                  model.kv_bytes_per_token(kv_dtype), f"fleet {fleet.name!r}, {role} pool", extra)
        setups.append(PoolSetup(role=role, cost=cost, count=pool.count, batching=pool.batching, router=router,
                                prefix=prefix, speculative=pool.speculative, seed=seed))
        pricing[role] = pool_pricing(pool, cost)
    setups = shared_stores(setups)
    link = None
    if fleet.kv_link is not None:
        spec = get_link(fleet.kv_link.name, extra)
        link = LinkSetup(bw_bytes_per_s=spec.bw_bytes_per_s * fleet.kv_link.count, latency_s=spec.latency_s,
                         layerwise=fleet.kv_link.layerwise)
    sim = FleetSim(setups, kv_bytes_per_token=model.kv_bytes_per_token(kv_dtype), num_layers=model.num_layers,
                   link=link, record_timeline=record_timeline, sample_interval_s=sample_interval_s,
                   track_tokens=track_tokens)
    if fleet.autoscale is not None:
        from twinfer.sim.rebalancer import Rebalancer

        Rebalancer(sim, fleet.autoscale, scenario.slo.ttft_s, scenario.slo.tpot_s)
    return sim, pricing


def shared_stores(setups: list[PoolSetup]) -> list[PoolSetup]:
    """``setups`` with one block store per shared tier (Mooncake Store) handed to every pool that uses it.

    The store pools what each GPU lends (the tier's capacity is per GPU): its
    capacity is the tier's per-instance capacity summed over the instances the
    fleet starts with, in blocks of the pool's cache. Each instance reaches it
    at its own scaled bandwidth.
    """
    from twinfer.kvcache.offload import BlockStore

    totals: dict[tuple[str, float], float] = {}
    for s in setups:
        if s.prefix is not None and s.prefix.tiers and s.prefix.tiers[-1].shared:
            block_bytes = s.prefix.kv_bytes_per_token * s.prefix.block_tokens
            key = (s.prefix.tiers[-1].name, block_bytes)
            totals[key] = totals.get(key, 0.0) + s.prefix.tiers[-1].capacity_bytes * s.count
    if not totals:
        return setups
    stores = {key: BlockStore(int(total // key[1])) for key, total in totals.items()}
    out = []
    for s in setups:
        if s.prefix is not None and s.prefix.tiers and s.prefix.tiers[-1].shared:
            store = stores[(s.prefix.tiers[-1].name, s.prefix.kv_bytes_per_token * s.prefix.block_tokens)]
            s = replace(s, prefix=replace(s.prefix, shared_store=store))
        out.append(s)
    return out


def prefix_setup(cfg: PrefixCacheConfig, pool: PoolConfig, cost: StepCostModel, block_tokens: int | None,
                 kv_bytes_per_token: float, where: str, extra_hardware: HardwareSet | None = None) -> PrefixSetup:
    """A pool's prefix cache from its scenario setting, the workload's block size and the backend.

    ``extra_hardware`` holds the scenario's user chips (:meth:`Scenario.extra_hardware`).
    """
    if block_tokens is None:
        raise ConfigError(f"{where}: prefix_cache needs a workload whose requests carry prefix block ids (a "
                          "Mooncake trace, a twinfer JSONL trace with prefix_block_ids, or a sessions workload)")
    tiers: tuple[TierSpec, ...] = ()
    if cfg.tiers:
        from twinfer.hardware import get_hardware
        from twinfer.kvcache.tiers import get_tier

        if get_hardware(pool.hardware, extra_hardware).kind == "lpu":
            raise ConfigError(f"{where}: offload tiers are modelled for GPUs only (an LPU keeps KV in on-chip "
                              "SRAM with no host tier here); remove prefix_cache.tiers from this pool")
        gpus = cost.resources().num_devices
        tiers = tuple(get_tier(name).for_gpus(gpus) for name in cfg.tiers)
    return PrefixSetup(block_tokens=block_tokens, capacity_blocks=cfg.blocks, tiers=tiers,
                       kv_bytes_per_token=kv_bytes_per_token)


def prefix_keys(workload: Any) -> list[np.ndarray]:
    """Each request's chain keys over its full prefix blocks (one interner for the workload)."""
    from twinfer.kvcache.chain import ChainInterner

    ids = workload.prefix_block_ids
    if ids is None:
        return []  # prefix_setup has refused the fleet already
    bt = workload.prefix_block_tokens
    interner = ChainInterner()
    return [interner.keys_for(b[: int(p) // bt]) for b, p in zip(ids, workload.prompt_tokens, strict=True)]


def build_scenario_workload(scenario: Scenario, seed: int) -> Any:
    """The scenario's workload for ``seed`` (the same for every fleet of the scenario)."""
    from twinfer.workload import build_workload

    workload = build_workload(scenario.workload, np.random.default_rng(seed))
    if any(f.prefix_cache for f in scenario.fleets):  # a JSONL trace's ids are known once it is read
        from twinfer.workload.prefix_ids import missing_prefix_ids

        check_prefix_ids(scenario.fleets, missing_prefix_ids(scenario.workload, workload), f"scenario {scenario.name}")
    return workload


def simulate_fleet(
    scenario: Scenario,
    fleet: FleetConfig,
    seed: int = 0,
    progress: Progress | None = None,
    *,
    workload: Any = None,
    model: ModelSpec | None = None,
    costs: dict[str, StepCostModel] | None = None,
    cost_cache: CostCache | None = None,
    record_timeline: bool = False,
) -> FleetResult:
    """Simulate one fleet of ``scenario`` on its workload (built from ``seed`` unless given).

    An autoscaled fleet also runs as the static fleet sized for its peak, for the
    comparison in its ``autoscale.*`` summary keys (:mod:`twinfer.sim.autoscale_results`).
    """
    workload = workload if workload is not None else build_scenario_workload(scenario, seed)

    def run(f: FleetConfig) -> tuple[FleetResult, FleetSim, dict[str, PoolPricing]]:
        return _simulate_once(scenario, f, seed, progress, workload, model, costs, cost_cache, record_timeline)

    if fleet.autoscale is None:
        return run(fleet)[0]
    from twinfer.sim.autoscale_results import simulate_autoscaled

    return simulate_autoscaled(fleet, run)


def _simulate_once(scenario: Scenario, fleet: FleetConfig, seed: int, progress: Progress | None, workload: Any,
                   model: ModelSpec | None, costs: dict[str, StepCostModel] | None, cost_cache: CostCache | None,
                   record_timeline: bool) -> tuple[FleetResult, FleetSim, dict[str, PoolPricing]]:
    n = len(workload.arrival_s)
    horizon = float(workload.arrival_s[-1]) if n else 0.0
    interval = scenario.sample_interval_s or max(horizon / 400.0, 1e-3)
    block_tokens = getattr(workload, "prefix_block_tokens", None)
    sim, pricing = build_fleet_sim(scenario, fleet, model=model, costs=costs, cost_cache=cost_cache,
                                   record_timeline=record_timeline, sample_interval_s=interval,
                                   prefix_block_tokens=block_tokens, seed=seed)
    keys = prefix_keys(workload) if fleet.prefix_cache else None
    sim.load_workload(workload.arrival_s, workload.prompt_tokens, workload.output_tokens, keys)
    if progress is None:
        sim.run_until()
    else:
        slices = 50
        for k in range(1, slices + 1):
            sim.run_until(horizon * k / slices if k < slices else float("inf"))
            progress(sim.completed + sim.rejected, n, fleet.name)
    if sim.completed + sim.rejected != n or not sim.done():
        raise RuntimeError(f"fleet {fleet.name}: simulation stopped with {n - sim.completed - sim.rejected} "
                           "requests unfinished (a simulator bug; please report it with the scenario)")
    result = fleet_result(fleet.name, sim, pricing, scenario.slo.ttft_s, scenario.slo.tpot_s,
                          scenario.slo.attainment)
    result.summary["workload"] = getattr(workload, "name", "workload")
    result.summary["seed"] = seed
    for role, pool in fleet.pools.items():  # name wide expert parallelism where a pool uses it
        if pool.ep > 1:
            result.summary[f"pool.{role}.ep"] = pool.ep
    if fleet.mode_label != fleet.mode:  # name the AFD split and its groups (twinfer.afd)
        result.summary["mode"] = fleet.mode_label
        for role, pool in fleet.pools.items():
            if pool.afd is not None:
                cost = costs[role] if costs and role in costs else make_pool_cost(
                    model or load_scenario_model(scenario), pool, cost_cache, scenario.extra_hardware())
                describe = getattr(cost, "describe", None)
                result.summary[f"pool.{role}.afd"] = describe() if describe else pool.afd.label()
    return result, sim, pricing


def simulate(scenario: Scenario, seed: int = 0, progress: Progress | None = None, *,
             record_timeline: bool = False) -> ScenarioResult:
    """Simulate every fleet of ``scenario`` on the same workload for ``seed``."""
    workload = build_scenario_workload(scenario, seed)
    model = load_scenario_model(scenario)
    cache = StepCostCache()
    fleets = [simulate_fleet(scenario, f, seed, progress, workload=workload, model=model, cost_cache=cache,
                             record_timeline=record_timeline) for f in scenario.fleets]
    return ScenarioResult(scenario_name=scenario.name, seed=seed, fleets=fleets)


def with_rate_scale(scenario: Scenario, factor: float) -> Scenario:
    """The scenario with its workload's arrival rate multiplied by ``factor`` (for rate sweeps)."""
    wl = scenario.workload
    return replace(scenario, workload=replace(wl, rate_scale=wl.rate_scale * factor))
