"""Scenario: a model, a workload, SLOs, and the fleets to compare on them.

YAML schema (every key below; optional ones show their default)::

    name: llama70b-conv                  # optional, default: the file's stem
    model: llama-3-70b                   # preset name (twinfer models) or path to a config.json
    workload:                            # twinfer.workload.WorkloadConfig (see its docstring)
      trace: builtin:azure-conv-sample
    slo:
      ttft_s: 2.0                        # time to first token limit
      tpot_s: 0.1                        # time per output token limit
      attainment: 0.9                    # DistServe: goodput needs >= 90 % of requests within both
    sample_interval_s: null              # queue-length sampling period (null: ~400 samples per run)
    fleets:
      - name: colocated-h100
        router: least_outstanding        # round_robin | least_outstanding | least_kv | kv_aware
        prefix_cache:                    # optional: a prefix cache in each instance of the pools that prefill
                                         # (needs requests with prefix block ids: sessions, Mooncake/JSONL ids)
          enabled: true                  # (a pool's own prefix_cache: key overrides this one)
          blocks: auto                   # cached blocks per instance (auto: as many as its KV cache holds)
          tiers: [h100-host-dram]        # offload tiers below the device, top first, each once (kvcache/tiers.toml)
        pools:                           # {mixed: ...} or {prefill: ..., decode: ...}
          mixed:
            hardware: h100               # twinfer hardware preset (GPU or LPU)
            tp: 4                        # GPUs: tensor x pipeline parallel (default 1, 1)
            pp: 1
            ep: 1                        # GPUs, MoE models: attention replicas with the experts split over them
            expert_imbalance: 1.0        # with ep > 1: hottest rank's expert load / mean
            chips: null                  # LPUs: chips per instance (null: the fewest that fit)
            count: 2                     # instances in the pool
            precision: bf16              # bf16 | fp16 | fp8 | int8 (weights; KV bf16) | fp8-kv8 (fp8 KV too) or
                                         # {weights: fp8, activations: bf16, kv_cache: fp8}
            batching:
              policy: chunked            # continuous | chunked | static
              token_budget: 2048         # tokens per step (chunked), prompt tokens per step otherwise
              max_batch_seqs: null       # null: the backend's limit
              kv_policy: reserve         # reserve (queue until prompt+output fits) | preempt (vLLM recompute)
              block_tokens: 16
            price_per_hour_usd: null     # per instance; null: devices x the preset's price
            power_idle_w: null           # per instance; null: from the preset
            power_max_w: null
            engine: null                 # GPUs: vllm | sglang | trtllm | roofline (null: roofline, unfused)
          decode:                        # an AFD decode pool (twinfer.afd) instead of hardware/tp/ep/chips:
            attention: {hardware: vr200, count: 8, tp: 1}   # GPU replicas holding attention + the KV cache
            ffn: {hardware: groq3-lp30, chips: null}        # LPUs: chips (null: fewest); GPUs: ep, tp (or count)
            link: lpx-gpu                # per attention GPU (null: lpx-gpu to LPUs, the GPU's scale-up link to GPUs)
            micro_batches: 2             # ping-pong micro-batches in flight
            speculative: null            # mixed/decode pools: {method: draft | mtp | eagle, k: 3,
                                         #   acceptance: 0.7 or [0.9, 0.8, 0.7], draft_model: llama-3.1-8b,
                                         #   draft_devices: {hardware: h100, tp: 1} (the drafter's own; default: the pool's)}
                                         #   (k: 0 turns it off; twinfer.sim.speculative_batch; draft_model
                                         #   with method draft only; mtp needs the model's MTP module)
        kv_link:                         # disaggregated fleets only
          name: ib-ndr                   # twinfer.hardware.get_link preset
          count: 4                       # links per prefill instance (bandwidths add)
          layerwise: false               # stream KV layer by layer during prefill (Splitwise)
        autoscale:                       # optional: a planner resizes the fleet during the run
          policy: dynamo                 # SLO-driven, in the manner of NVIDIA Dynamo's planner
          interval_s: 60                 # planning period
          window_s: null                 # signals over the last window_s (null: interval_s)
          percentile: 90                 # TTFT / ITL percentile compared with the targets
          ttft_target_s: null            # null: slo.ttft_s
          itl_target_s: null             # null: slo.tpot_s
          reconfigure_delay_s: 30        # weights loaded / role switched, after the drain
          patience_windows: 2            # hot (or cold) windows in a row before acting
          queue_per_instance_hot: 4      # queued requests per serving instance that make a role hot
          hot_ratio: 1.0                 # percentile / target above this: hot
          cold_ratio: 0.5                # below this with an empty queue: cold
          min_instances: {mixed: 1}      # per pool (default 1)
          max_instances: {mixed: 8}      # per pool (default 2 x count)

Mode is ``aggregated`` for ``{mixed}`` pools and ``disaggregated`` for
``{prefill, decode}`` (reported as ``AFD`` when the decode pool is split
into attention and FFN groups); an explicit ``mode:`` key must agree. Errors name the
file and the key path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError
from twinfer.sim.kinds import FLEET_LAYOUTS, INSTANCE_KINDS
from twinfer.sim.router import ROUTERS
from twinfer.sim.scenario_fields import MAX_POOL_INSTANCES, check_keys, number, text
from twinfer.sim.scenario_fleet_options import (
    AutoscaleConfig,
    PrefixCacheConfig,
    check_prefix_block_tokens,
    check_prefix_ids,
    check_tier_hardware,
    prefix_caches,
)
from twinfer.sim.scenario_pool import (
    PRECISION_SHORTHANDS,
    LinkConfig,
    PoolConfig,
    check_drafters,
    parse_precision,
)

__all__ = ["MAX_POOL_INSTANCES", "PRECISION_SHORTHANDS", "AutoscaleConfig", "FleetConfig", "LinkConfig", "PoolConfig",
           "PrefixCacheConfig", "Scenario", "SloConfig", "load_scenario", "parse_precision", "with_hardware_file"]


@dataclass(frozen=True)
class SloConfig:
    """Latency targets: a request meets its SLO when TTFT <= ttft_s and TPOT <= tpot_s."""

    ttft_s: float = 2.0  # MLPerf v4.0 Llama-2-70B server limit (gpu-and-serving.md)
    tpot_s: float = 0.2  # MLPerf v4.0 Llama-2-70B server limit: TPOT <= 200 ms
    attainment: float = 0.9  # DistServe: goodput counts rates where >= 90 % meet both

    @classmethod
    def from_dict(cls, d: Any, where: str = "slo") -> SloConfig:
        """Parse ``slo:``."""
        d = check_keys(d, ("ttft_s", "tpot_s", "attainment"), where)
        att = number(d, "attainment", where, 0.9)
        if att > 1:
            raise ConfigError(f"{where}.attainment: a fraction in (0, 1], got {att!r}")
        return cls(ttft_s=float(number(d, "ttft_s", where, 2.0)), tpot_s=float(number(d, "tpot_s", where, 0.2)),
                   attainment=float(att))


@dataclass(frozen=True)
class FleetConfig:
    """A fleet to simulate: named pools by role, a routing policy, and (disaggregated) a KV link."""

    name: str
    pools: Mapping[str, PoolConfig]  # {"mixed": ...} or {"prefill": ..., "decode": ...}
    router: str = "least_outstanding"
    kv_link: LinkConfig | None = None
    prefix_cache: Mapping[str, PrefixCacheConfig] = field(default_factory=dict)  # role -> cache (none: no caching)
    autoscale: AutoscaleConfig | None = None  # None: the fleet keeps its size

    @property
    def mode(self) -> str:
        """``aggregated`` or ``disaggregated``."""
        return FLEET_LAYOUTS[tuple(sorted(self.pools))].mode

    @property
    def mode_label(self) -> str:
        """The mode as reports name it: ``AFD`` when a pool is attention/FFN-disaggregated, else :attr:`mode`."""
        return "AFD" if any(p.afd is not None for p in self.pools.values()) else self.mode

    @classmethod
    def from_dict(cls, d: Any, where: str, extra_hardware: Any = None) -> FleetConfig:
        """Parse one entry of ``fleets:`` (``extra_hardware``: the scenario's user chips and links)."""
        d = check_keys(d, ("name", "mode", "router", "pools", "kv_link", "prefix_cache", "autoscale"), where)
        name = text(d, "name", where)
        if not name:
            raise ConfigError(f"{where}.name: every fleet needs a name")
        where = f"{where} ({name})"
        pools_d = check_keys(d.get("pools"), tuple(INSTANCE_KINDS), f"{where}.pools")
        roles = tuple(sorted(pools_d))
        if roles not in FLEET_LAYOUTS:
            options = " or ".join(f"{v.pools_text} ({v.mode})" for v in FLEET_LAYOUTS.values())
            raise ConfigError(f"{where}.pools: give either {options}; got {list(roles)}")
        prefix = prefix_caches(d, pools_d, where)
        pools = {r: PoolConfig.from_dict({k: v for k, v in pools_d[r].items() if k != "prefix_cache"}
                                         if isinstance(pools_d[r], Mapping) else pools_d[r], f"{where}.pools.{r}",
                                         extra_hardware)
                 for r in pools_d}
        split = [r for r, p in pools.items() if p.afd is not None and r != "decode"]
        if split:
            raise ConfigError(f"{where}.pools.{split[0]}: attention:/ffn: groups split a decode pool (AFD); "
                              "give the prefill or mixed pool plain hardware and put the groups under pools.decode")
        if "prefill" in pools and pools["prefill"].speculative is not None:
            raise ConfigError(f"{where}.pools.prefill.speculative: a prefill pool emits only first tokens; "
                              "put speculative: on the decode pool")
        both = [r for r in prefix if pools[r].speculative is not None]
        if both:
            raise ConfigError(f"{where}.pools.{both[0]}: prefix_cache and speculative are not modelled together in "
                              "one pool yet; drop one of them (or split the fleet into prefill and decode pools)")
        if "decode" in pools and pools["decode"].batching.policy == "static":
            raise ConfigError(f"{where}.pools.decode.batching.policy: static batching applies to prefill "
                              "or mixed pools; use continuous or chunked for decode")
        router = text(d, "router", where, "least_outstanding") or "least_outstanding"
        if router not in ROUTERS:
            raise ConfigError(f"{where}.router: unknown policy {router!r}; choose one of {', '.join(ROUTERS)}")
        entry = "prefill" if "prefill" in pools else "mixed"
        if router == "kv_aware" and entry not in prefix:
            raise ConfigError(f"{where}.router: kv_aware routes by cached prefixes; enable "
                              f"prefix_cache on the fleet or its {entry} pool")
        link = None
        if "kv_link" in d and d["kv_link"] is not None:
            link = LinkConfig.from_dict(d["kv_link"], f"{where}.kv_link")
        fleet = cls(name=name, pools=pools, router=router, kv_link=link, prefix_cache=prefix)
        if fleet.mode == "disaggregated" and fleet.kv_link is None:
            fleet = cls(name=name, pools=pools, router=router, kv_link=LinkConfig(), prefix_cache=prefix)
        if fleet.mode == "aggregated" and link is not None:
            raise ConfigError(f"{where}.kv_link: only disaggregated fleets (prefill + decode pools) move KV")
        mode = d.get("mode")
        if mode is not None and mode != fleet.mode:
            raise ConfigError(f"{where}.mode: says {mode!r} but the pools make it {fleet.mode!r}")
        if d.get("autoscale") is not None:
            fleet = replace(fleet, autoscale=AutoscaleConfig.from_dict(d["autoscale"], f"{where}.autoscale", pools))
        return fleet


@dataclass(frozen=True)
class Scenario:
    """Everything one ``twinfer simulate`` run compares: model, workload, SLOs, fleets."""

    name: str
    model: str  # preset name or path to a config.json
    workload: Any  # twinfer.workload.WorkloadConfig
    fleets: tuple[FleetConfig, ...]
    slo: SloConfig = field(default_factory=SloConfig)
    sample_interval_s: float | None = None
    hardware_file: str | None = None  # user chips and links (TOML/YAML, as `twinfer hardware --hardware-file`)

    @classmethod
    def from_dict(cls, d: Any, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
        """Parse a scenario mapping; ``where`` (e.g. the file name) prefixes every error."""
        from twinfer.workload import WorkloadConfig

        d = check_keys(d, ("name", "model", "workload", "slo", "fleets", "sample_interval_s", "hardware_file"), where)
        hardware_file = resolve_hardware_file(d, where, base_dir)
        model = text(d, "model", where)
        if not model:
            raise ConfigError(f"{where}.model: required (a preset such as llama-3-70b, or a config.json path)")
        if base_dir is not None and (model.endswith(".json") or "/" in model) and not Path(model).is_absolute():
            model = str(base_dir / model)
        if "workload" not in d:
            raise ConfigError(f"{where}.workload: required (e.g. {{trace: builtin:azure-conv-sample}})")
        workload = WorkloadConfig.from_dict(d["workload"], f"{where}: workload", base_dir)
        fleets_d = d.get("fleets")
        if not isinstance(fleets_d, list) or not fleets_d:
            raise ConfigError(f"{where}.fleets: expected a non-empty list of fleets")
        extra = None
        if hardware_file is not None:
            from twinfer.hardware import load_hardware_file

            extra = load_hardware_file(hardware_file)
        fleets = tuple(FleetConfig.from_dict(f, f"{where}.fleets[{i}]", extra) for i, f in enumerate(fleets_d))
        names = [f.name for f in fleets]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.fleets: fleet names must be unique, got {names}")
        _check_names(fleets, where, extra)
        check_tier_hardware(fleets, extra, where)
        check_drafters(model, fleets, where)
        if any(f.prefix_cache for f in fleets):
            from twinfer.workload.prefix_ids import missing_prefix_ids, prefix_block_tokens

            check_prefix_ids(fleets, missing_prefix_ids(workload), where)
            check_prefix_block_tokens(fleets, prefix_block_tokens(workload), where)
        return cls(
            name=text(d, "name", where, "scenario") or "scenario",
            model=model,
            workload=workload,
            fleets=fleets,
            slo=SloConfig.from_dict(d.get("slo") or {}, f"{where}.slo"),
            sample_interval_s=number(d, "sample_interval_s", where, None),
            hardware_file=hardware_file,
        )

    def extra_hardware(self) -> Any:
        """The chips and links of ``hardware_file`` as a :class:`twinfer.hardware.HardwareSet` (None without one)."""
        if self.hardware_file is None:
            return None
        from twinfer.hardware import load_hardware_file

        return load_hardware_file(self.hardware_file)


def _check_names(fleets: tuple[FleetConfig, ...], where: str, extra: Any) -> None:
    """Every pool's chip and every KV link is a preset or in the hardware file (a ConfigError naming the key)."""
    from twinfer.errors import UnknownNameError
    from twinfer.hardware import get_hardware, get_link

    for i, fleet in enumerate(fleets):
        checks: list[tuple[str, Callable[..., object], str]] = [
            (f"pools.{role}.hardware", get_hardware, pool.hardware) for role, pool in fleet.pools.items()]
        if fleet.kv_link is not None:
            checks.append(("kv_link.name", get_link, fleet.kv_link.name))
        for key, lookup, name in checks:
            try:
                lookup(name, extra)
            except (ConfigError, UnknownNameError) as exc:
                raise ConfigError(f"{where}.fleets[{i}].{key}: {exc}") from None


def with_hardware_file(scenario: Scenario, path: str | Path) -> Scenario:
    """``scenario`` reading its user chips and links from ``path`` (checked; e.g. from ``--hardware-file``)."""
    from dataclasses import replace

    return replace(scenario, hardware_file=resolve_hardware_file({"hardware_file": str(path)}, "--hardware-file", Path.cwd()))


def resolve_hardware_file(d: Mapping[str, Any], where: str, base_dir: Path | None) -> str | None:
    """The scenario's ``hardware_file``, made absolute (relative paths are read from the scenario's folder), and checked."""
    raw = text(d, "hardware_file", where)
    if not raw:
        return None
    path = Path(raw).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    from twinfer.hardware import load_hardware_file

    try:
        load_hardware_file(path)
    except ConfigError as exc:
        raise ConfigError(f"{where}.hardware_file: {exc}") from None
    return str(path.resolve())


#: Scenarios shipped in the package, run as ``twinfer simulate builtin:NAME``.
BUILTIN_SCENARIOS = {"factory-2026": "factory_2026.yaml"}


def builtin_scenario_path(spec: str) -> Path:
    """The packaged file of ``builtin:NAME`` (a clear error naming the choices otherwise)."""
    name = spec.removeprefix("builtin:")
    if name not in BUILTIN_SCENARIOS:
        raise ConfigError(f"unknown built-in scenario {spec!r}; choose one of "
                          + ", ".join(f"builtin:{n}" for n in BUILTIN_SCENARIOS)
                          + " (or run `twinfer simulate` with no argument for the default comparison)")
    return Path(__file__).parent / "scenarios" / BUILTIN_SCENARIOS[name]


def load_scenario(path: str | Path, hardware_file: str | Path | None = None) -> Scenario:
    """Read a scenario YAML file (or ``builtin:NAME``, a packaged one); errors name the file and the offending key.

    ``hardware_file`` (e.g. ``--hardware-file``, read from the working folder) replaces the file's own
    ``hardware_file:``, so every pool, AFD groups included, may name its chips.
    """
    import yaml

    p = builtin_scenario_path(str(path)) if str(path).startswith("builtin:") else Path(path)
    if p.is_dir():
        raise ConfigError(f"{str(p)!r} is a folder; give a scenario YAML file (see examples/)")
    if not p.is_file():
        raise ConfigError(f"scenario file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if isinstance(data, Mapping) and "name" not in data:
        data = {**data, "name": p.stem}
    if hardware_file is not None and isinstance(data, Mapping):
        data = {**data, "hardware_file": resolve_hardware_file({"hardware_file": str(hardware_file)},
                                                               "--hardware-file", Path.cwd())}
    return Scenario.from_dict(data, str(p), p.parent)
