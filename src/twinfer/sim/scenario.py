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
        router: least_outstanding        # round_robin | least_outstanding | least_kv
        pools:                           # {mixed: ...} or {prefill: ..., decode: ...}
          mixed:
            hardware: h100               # twinfer hardware preset (GPU or LPU)
            tp: 4                        # GPUs: tensor x pipeline parallel (default 1, 1)
            pp: 1
            ep: 1                        # GPUs, MoE models: attention replicas with the experts split over them
            expert_imbalance: 1.0        # with ep > 1: hottest rank's expert load / mean
            chips: null                  # LPUs: chips per instance (null: the fewest that fit)
            count: 2                     # instances in the pool
            precision: bf16              # bf16 | fp8 | int8 (weights; KV bf16) or
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
            speculative: null            # mixed/decode pools: {method: draft | mtp | eagle, k: 3,
                                         #   acceptance: 0.7 or [0.9, 0.8, 0.7], draft_model: llama-3.1-8b}
                                         #   (k: 0 turns it off; twinfer.sim.speculative_batch)
        kv_link:                         # disaggregated fleets only
          name: ib-ndr                   # twinfer.hardware.get_link preset
          count: 4                       # links per prefill instance (bandwidths add)
          layerwise: false               # stream KV layer by layer during prefill (Splitwise)

Mode is ``aggregated`` for ``{mixed}`` pools and ``disaggregated`` for
``{prefill, decode}``; an explicit ``mode:`` key must agree. Errors name the
file and the key path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError, yaml_number_hint
from twinfer.models.ops import Precision
from twinfer.perf.speculative import SpeculativeConfig
from twinfer.sim.kinds import FLEET_LAYOUTS, INSTANCE_KINDS
from twinfer.sim.router import ROUTERS
from twinfer.sim.scheduler import BatchingConfig

PRECISION_SHORTHANDS = {
    "bf16": Precision(),
    "fp16": Precision(weights="fp16", activations="fp16", kv_cache="fp16"),
    "fp8": Precision(weights="fp8"),
    "int8": Precision(weights="int8"),
    "fp8-kv8": Precision(weights="fp8", kv_cache="fp8"),
}


#: Instances per pool the simulator accepts: each instance is a scheduler with its own queues, and the
#: router looks at every instance per request, so millions would not finish (10,000 instances of 8 GPUs
#: is an 80,000-GPU fleet; measured here: 10,000 instances serving 300 requests take 3.7 s and 85 MB).
MAX_POOL_INSTANCES = 10_000
#: Ceilings of scenario numbers (by key), checked before anything is built; absurd values are refused.
_CEILINGS: dict[str, float] = {
    "count": MAX_POOL_INSTANCES, "tp": 1024, "pp": 1024, "chips": 100_000, "token_budget": 10_000_000,
    "max_batch_seqs": 1_000_000, "block_tokens": 65_536, "price_per_hour_usd": 1e6, "power_idle_w": 1e8,
    "power_max_w": 1e8, "ttft_s": 1e6, "tpot_s": 1e6, "attainment": 1.0, "sample_interval_s": 1e9,
}


def _keys(d: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__} {d!r}")
    for k in d:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {k!r}; allowed keys are {', '.join(allowed)}")
    return d


def _num(d: Mapping[str, Any], key: str, where: str, default: Any = None, *, integer: bool = False,
         minimum: float = 0.0, strict: bool = True) -> Any:
    v = d.get(key)
    if v is None:  # absent or an explicit null: the default (None for optional keys)
        v = default
    if v is None:
        return None
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok or not math.isfinite(v) or v < minimum or (strict and v == minimum == 0):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key}: expected {kind} >= {minimum}{' (> 0)' if strict and minimum == 0 else ''}, "
                          f"got {v!r}{yaml_number_hint(v)}")
    limit = _CEILINGS.get(key)
    if limit is not None and v > limit:
        raise ConfigError(f"{where}.{key}: {v!r} is above the limit of {limit:,g}; use a smaller value")
    return v


def _str(d: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    v = d.get(key, default)
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{where}.{key}: expected a string, got {v!r}")
    return v


@dataclass(frozen=True)
class SloConfig:
    """Latency targets: a request meets its SLO when TTFT <= ttft_s and TPOT <= tpot_s."""

    ttft_s: float = 2.0  # MLPerf v4.0 Llama-2-70B server limit (gpu-and-serving.md)
    tpot_s: float = 0.2  # MLPerf v4.0 Llama-2-70B server limit: TPOT <= 200 ms
    attainment: float = 0.9  # DistServe: goodput counts rates where >= 90 % meet both

    @classmethod
    def from_dict(cls, d: Any, where: str = "slo") -> SloConfig:
        """Parse ``slo:``."""
        d = _keys(d, ("ttft_s", "tpot_s", "attainment"), where)
        att = _num(d, "attainment", where, 0.9)
        if att > 1:
            raise ConfigError(f"{where}.attainment: a fraction in (0, 1], got {att!r}")
        return cls(ttft_s=float(_num(d, "ttft_s", where, 2.0)), tpot_s=float(_num(d, "tpot_s", where, 0.2)),
                   attainment=float(att))


@dataclass(frozen=True)
class PoolConfig:
    """One pool: instances of one hardware/parallelism/precision, their count and batching."""

    hardware: str
    count: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1  # expert-parallel attention replicas (GPUs: ep x tp per instance)
    expert_imbalance: float = 1.0  # hottest EP rank's expert load over the mean
    chips: int | None = None  # LPU chips per instance (None: the fewest that fit)
    precision: Precision = field(default_factory=Precision)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    price_per_hour_usd: float | None = None  # per instance override
    power_idle_w: float | None = None
    power_max_w: float | None = None
    engine: str | None = None  # GPU serving-engine profile (twinfer.gpu.engines); None: the roofline
    speculative: SpeculativeConfig | None = None  # speculative decoding (None: off)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> PoolConfig:
        """Parse one entry of ``pools:``."""
        d = _keys(d, ("hardware", "count", "tp", "pp", "ep", "expert_imbalance", "chips", "precision", "batching",
                      "price_per_hour_usd", "power_idle_w", "power_max_w", "engine", "speculative"), where)
        hw = _str(d, "hardware", where)
        if not hw:
            raise ConfigError(f"{where}.hardware: required (a preset such as h100 or groq-tsp-v1; see `twinfer hardware`)")
        b = _keys(d.get("batching") or {}, ("policy", "token_budget", "max_batch_seqs", "kv_policy", "block_tokens"),
                  f"{where}.batching")
        batching = BatchingConfig(
            policy=_str(b, "policy", f"{where}.batching", "chunked") or "chunked",
            token_budget=int(_num(b, "token_budget", f"{where}.batching", 2048, integer=True, minimum=1)),
            max_batch_seqs=_num(b, "max_batch_seqs", f"{where}.batching", None, integer=True, minimum=1),
            kv_policy=_str(b, "kv_policy", f"{where}.batching", "reserve") or "reserve",
            block_tokens=int(_num(b, "block_tokens", f"{where}.batching", 16, integer=True, minimum=1)),
        )
        batching.check(f"{where}.batching")
        return cls(
            hardware=hw,
            count=int(_num(d, "count", where, 1, integer=True, minimum=1)),
            tp=int(_num(d, "tp", where, 1, integer=True, minimum=1)),
            pp=int(_num(d, "pp", where, 1, integer=True, minimum=1)),
            ep=int(_num(d, "ep", where, 1, integer=True, minimum=1)),
            expert_imbalance=float(_num(d, "expert_imbalance", where, 1.0, minimum=1.0, strict=False)),
            chips=_num(d, "chips", where, None, integer=True, minimum=1),
            precision=parse_precision(d.get("precision", "bf16"), f"{where}.precision"),
            batching=batching,
            price_per_hour_usd=_num(d, "price_per_hour_usd", where, None, strict=False),
            power_idle_w=_num(d, "power_idle_w", where, None, strict=False),
            power_max_w=_num(d, "power_max_w", where, None, strict=False),
            engine=_engine(d, where),
            speculative=_speculative(d.get("speculative"), batching, f"{where}.speculative"),
        )


def _speculative(v: Any, batching: BatchingConfig, where: str) -> SpeculativeConfig | None:
    """``speculative:`` of a pool; None when absent, null, false or ``k: 0`` (off)."""
    if v is None or v is False:
        return None
    if isinstance(v, Mapping) and v.get("k") == 0 and not isinstance(v.get("k"), bool):
        return None
    cfg = SpeculativeConfig.from_dict(v, where)
    if cfg.k + 1 > batching.block_tokens:
        raise ConfigError(f"{where}.k: a verify step writes k + 1 = {cfg.k + 1} tokens of KV, more than a block of "
                          f"{batching.block_tokens} (batching.block_tokens); raise block_tokens or lower k")
    return cfg


def _engine(d: dict, where: str) -> str | None:
    """``engine:`` of a pool: a GPU serving-engine profile name, checked against twinfer.gpu.engines."""
    name = _str(d, "engine", where)
    if name is None:
        return None
    from twinfer.gpu.engines import ENGINES

    if name not in ENGINES:
        raise ConfigError(f"{where}.engine: unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    return name


def parse_precision(v: Any, where: str) -> Precision:
    """``bf16`` / ``fp8`` / ``int8`` / ``fp8-kv8`` shorthand, or a {weights, activations, kv_cache} mapping."""
    if isinstance(v, Precision):
        return v
    if isinstance(v, str):
        if v not in PRECISION_SHORTHANDS:
            raise ConfigError(f"{where}: unknown precision {v!r}; use one of {', '.join(PRECISION_SHORTHANDS)} "
                              "or a mapping {weights, activations, kv_cache}")
        return PRECISION_SHORTHANDS[v]
    d = _keys(v, ("weights", "activations", "kv_cache"), where)
    return Precision(weights=str(d.get("weights", "bf16")), activations=str(d.get("activations", "bf16")),
                     kv_cache=str(d.get("kv_cache", "bf16")))


@dataclass(frozen=True)
class LinkConfig:
    """The KV link out of each prefill instance: a link preset, how many in parallel, streaming."""

    name: str = "ib-ndr"
    count: int = 1
    layerwise: bool = False

    @classmethod
    def from_dict(cls, d: Any, where: str) -> LinkConfig:
        """Parse ``kv_link:``."""
        d = _keys(d, ("name", "count", "layerwise"), where)
        lw = d.get("layerwise", False)
        if not isinstance(lw, bool):
            raise ConfigError(f"{where}.layerwise: expected true or false, got {lw!r}")
        return cls(name=_str(d, "name", where, "ib-ndr") or "ib-ndr",
                   count=int(_num(d, "count", where, 1, integer=True, minimum=1)), layerwise=lw)


@dataclass(frozen=True)
class FleetConfig:
    """A fleet to simulate: named pools by role, a routing policy, and (disaggregated) a KV link."""

    name: str
    pools: Mapping[str, PoolConfig]  # {"mixed": ...} or {"prefill": ..., "decode": ...}
    router: str = "least_outstanding"
    kv_link: LinkConfig | None = None

    @property
    def mode(self) -> str:
        """``aggregated`` or ``disaggregated``."""
        return FLEET_LAYOUTS[tuple(sorted(self.pools))].mode

    @classmethod
    def from_dict(cls, d: Any, where: str) -> FleetConfig:
        """Parse one entry of ``fleets:``."""
        d = _keys(d, ("name", "mode", "router", "pools", "kv_link"), where)
        name = _str(d, "name", where)
        if not name:
            raise ConfigError(f"{where}.name: every fleet needs a name")
        where = f"{where} ({name})"
        pools_d = _keys(d.get("pools"), tuple(INSTANCE_KINDS), f"{where}.pools")
        roles = tuple(sorted(pools_d))
        if roles not in FLEET_LAYOUTS:
            options = " or ".join(f"{v.pools_text} ({v.mode})" for v in FLEET_LAYOUTS.values())
            raise ConfigError(f"{where}.pools: give either {options}; got {list(roles)}")
        pools = {r: PoolConfig.from_dict(pools_d[r], f"{where}.pools.{r}") for r in pools_d}
        if "prefill" in pools and pools["prefill"].speculative is not None:
            raise ConfigError(f"{where}.pools.prefill.speculative: a prefill pool emits only first tokens; "
                              "put speculative: on the decode pool")
        if "decode" in pools and pools["decode"].batching.policy == "static":
            raise ConfigError(f"{where}.pools.decode.batching.policy: static batching applies to prefill "
                              "or mixed pools; use continuous or chunked for decode")
        router = _str(d, "router", where, "least_outstanding") or "least_outstanding"
        if router not in ROUTERS:
            raise ConfigError(f"{where}.router: unknown policy {router!r}; choose one of {', '.join(ROUTERS)}")
        link = None
        if "kv_link" in d and d["kv_link"] is not None:
            link = LinkConfig.from_dict(d["kv_link"], f"{where}.kv_link")
        fleet = cls(name=name, pools=pools, router=router, kv_link=link)
        if fleet.mode == "disaggregated" and fleet.kv_link is None:
            fleet = cls(name=name, pools=pools, router=router, kv_link=LinkConfig())
        if fleet.mode == "aggregated" and link is not None:
            raise ConfigError(f"{where}.kv_link: only disaggregated fleets (prefill + decode pools) move KV")
        mode = d.get("mode")
        if mode is not None and mode != fleet.mode:
            raise ConfigError(f"{where}.mode: says {mode!r} but the pools make it {fleet.mode!r}")
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

    @classmethod
    def from_dict(cls, d: Any, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
        """Parse a scenario mapping; ``where`` (e.g. the file name) prefixes every error."""
        from twinfer.workload import WorkloadConfig

        d = _keys(d, ("name", "model", "workload", "slo", "fleets", "sample_interval_s"), where)
        model = _str(d, "model", where)
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
        fleets = tuple(FleetConfig.from_dict(f, f"{where}.fleets[{i}]") for i, f in enumerate(fleets_d))
        names = [f.name for f in fleets]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}.fleets: fleet names must be unique, got {names}")
        return cls(
            name=_str(d, "name", where, "scenario") or "scenario",
            model=model,
            workload=workload,
            fleets=fleets,
            slo=SloConfig.from_dict(d.get("slo") or {}, f"{where}.slo"),
            sample_interval_s=_num(d, "sample_interval_s", where, None),
        )


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML file; errors name the file and the offending key."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"scenario file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if isinstance(data, Mapping) and "name" not in data:
        data = {**data, "name": p.stem}
    return Scenario.from_dict(data, str(p), p.parent)
