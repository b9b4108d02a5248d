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
          enabled: true                  # (a pool's own prefix_cache: key overrides this one)
          blocks: auto                   # cached blocks per instance (auto: as many as its KV cache holds)
          tiers: [h100-host-dram]        # offload tiers below the device, top first (twinfer/kvcache/tiers.toml)
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
          decode:                        # an AFD decode pool (twinfer.afd) instead of hardware/tp/ep/chips:
            attention: {hardware: vr200, count: 8, tp: 1}   # GPU replicas holding attention + the KV cache
            ffn: {hardware: groq3-lp30, chips: null}        # LPUs: chips (null: fewest); GPUs: ep, tp (or count)
            link: lpx-gpu                # per attention GPU (null: lpx-gpu to LPUs, the GPU's scale-up link to GPUs)
            micro_batches: 2             # ping-pong micro-batches in flight
            speculative: null            # mixed/decode pools: {method: draft | mtp | eagle, k: 3,
                                         #   acceptance: 0.7 or [0.9, 0.8, 0.7], draft_model: llama-3.1-8b}
                                         #   (k: 0 turns it off; twinfer.sim.speculative_batch)
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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twinfer.afd.config import AfdConfig, AttentionGroup, FfnGroup
from twinfer.errors import ConfigError, UnknownNameError, yaml_number_hint
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
    "interval_s": 1e9, "window_s": 1e9, "percentile": 100.0, "reconfigure_delay_s": 1e9, "patience_windows": 1000,
    "ep": 1024, "micro_batches": 64,
}
#: Keys of a pool that an AFD pool sets per group instead (under attention: and ffn:).
_GROUP_KEYS = ("hardware", "tp", "pp", "ep", "chips", "engine")


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
    afd: AfdConfig | None = None  # an attention/FFN-disaggregated decode pool (hardware: its attention GPU)
    speculative: SpeculativeConfig | None = None  # speculative decoding (None: off)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> PoolConfig:
        """Parse one entry of ``pools:``."""
        d = _keys(d, ("hardware", "count", "tp", "pp", "ep", "expert_imbalance", "chips", "precision", "batching",
                      "price_per_hour_usd", "power_idle_w", "power_max_w", "engine", "attention", "ffn", "link",
                      "micro_batches", "speculative"), where)
        afd = _afd(d, where)
        if afd is not None:
            d = {**d, "hardware": afd.attention.hardware}
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
            afd=afd,
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


def _afd(d: Mapping[str, Any], where: str) -> AfdConfig | None:
    """``attention:``/``ffn:``/``link:``/``micro_batches:`` of an AFD pool (None for a plain pool)."""
    from twinfer.hardware import get_hardware, get_link
    from twinfer.hardware.specs import LpuSpec

    if not any(k in d for k in ("attention", "ffn", "link", "micro_batches")):
        return None
    for k in ("attention", "ffn"):
        if d.get(k) is None:
            raise ConfigError(f"{where}.{k}: an AFD pool needs both attention: {{hardware, count, tp}} and "
                              "ffn: {hardware, chips | ep, tp}")
    clash = [k for k in _GROUP_KEYS if k in d]
    if clash:
        raise ConfigError(f"{where}: {', '.join(clash)} of an AFD pool go under attention: or ffn:, not beside them")
    wa, wf = f"{where}.attention", f"{where}.ffn"
    a = _keys(d["attention"], ("hardware", "count", "tp"), wa)
    f = _keys(d["ffn"], ("hardware", "chips", "count", "ep", "tp"), wf)
    specs = {}
    for g, w in ((a, wa), (f, wf)):
        name = _str(g, "hardware", w)
        if not name:
            raise ConfigError(f"{w}.hardware: required (a preset such as vr200 or groq3-lp30; see `twinfer hardware`)")
        try:
            specs[w] = get_hardware(name)
        except (ConfigError, UnknownNameError) as exc:
            raise ConfigError(f"{w}.hardware: {exc}") from None
    attention = AttentionGroup(hardware=specs[wa].name, replicas=int(_num(a, "count", wa, 1, integer=True, minimum=1)),
                               tp=int(_num(a, "tp", wa, 1, integer=True, minimum=1)))
    tp = int(_num(f, "tp", wf, 1, integer=True, minimum=1))
    count, ep = _num(f, "count", wf, None, integer=True, minimum=1), _num(f, "ep", wf, None, integer=True, minimum=1)
    chips = _num(f, "chips", wf, None, integer=True, minimum=1)
    if isinstance(specs[wf], LpuSpec):
        if ep is not None or "tp" in f or (count is not None and chips is not None):
            raise ConfigError(f"{wf}: {specs[wf].name} is an LPU; give its chips (chips:, or count:), not ep/tp")
        ffn = FfnGroup(hardware=specs[wf].name, chips=chips if chips is not None else count)
    else:
        if chips is not None:
            raise ConfigError(f"{wf}.chips: {specs[wf].name} is a GPU; give ep (expert-parallel ranks) and tp, or count")
        if count is not None and (count % tp or (ep is not None and ep * tp != count)):
            raise ConfigError(f"{wf}.count: {count} GPUs must be ep x tp ({ep or '?'} x {tp}); fix one of them")
        ffn = FfnGroup(hardware=specs[wf].name, ep=ep or (count // tp if count else 1), tp=tp)
    link = _str(d, "link", where)
    if link is not None:
        try:
            link = get_link(link).name
        except (ConfigError, UnknownNameError) as exc:
            raise ConfigError(f"{where}.link: {exc}") from None
    return AfdConfig(attention=attention, ffn=ffn, link=link,
                     micro_batches=int(_num(d, "micro_batches", where, 2, integer=True, minimum=1)))


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


AUTOSCALE_POLICIES = ("dynamo",)
#: Pool settings an instance keeps when the planner moves it between prefill and decode (all but these).
_ROLE_SETTINGS = ("count", "batching")


@dataclass(frozen=True)
class AutoscaleConfig:
    """A fleet's planner: every ``interval_s`` it reads the last ``window_s`` and may resize (see :mod:`twinfer.sim.rebalancer`)."""

    policy: str = "dynamo"
    interval_s: float = 60.0
    window_s: float | None = None  # None: interval_s
    percentile: float = 90.0
    ttft_target_s: float | None = None  # None: the scenario's slo.ttft_s
    itl_target_s: float | None = None  # None: the scenario's slo.tpot_s
    reconfigure_delay_s: float = 30.0
    patience_windows: int = 2
    queue_per_instance_hot: float = 4.0
    hot_ratio: float = 1.0
    cold_ratio: float = 0.5
    min_instances: Mapping[str, int] = field(default_factory=dict)  # per pool role (absent: 1)
    max_instances: Mapping[str, int] = field(default_factory=dict)  # per pool role (absent: 2 x count)

    @classmethod
    def from_dict(cls, d: Any, where: str, pools: Mapping[str, PoolConfig]) -> AutoscaleConfig:
        """Parse ``autoscale:`` of a fleet whose pools are ``pools``."""
        d = _keys(d, ("policy", "interval_s", "window_s", "percentile", "ttft_target_s", "itl_target_s",
                      "reconfigure_delay_s", "patience_windows", "queue_per_instance_hot", "hot_ratio", "cold_ratio",
                      "min_instances", "max_instances"), where)
        policy = _str(d, "policy", where, "dynamo") or "dynamo"
        if policy not in AUTOSCALE_POLICIES:
            raise ConfigError(f"{where}.policy: unknown policy {policy!r}; choose one of {', '.join(AUTOSCALE_POLICIES)}")
        bounds = {}
        for key, default in (("min_instances", lambda c: 1), ("max_instances", lambda c: 2 * c)):
            given = _keys(d.get(key) or {}, tuple(pools), f"{where}.{key}")
            bounds[key] = {r: int(_num(given, r, f"{where}.{key}", default(p.count), integer=True, minimum=1))
                           for r, p in pools.items()}
        for role, pool in pools.items():
            lo, hi = bounds["min_instances"][role], bounds["max_instances"][role]
            if not lo <= pool.count <= hi:
                raise ConfigError(f"{where}: the {role} pool starts with {pool.count} instances, outside "
                                  f"min_instances {lo} .. max_instances {hi}; widen the bounds or change its count")
        if len(pools) > 1:
            kept = [replace(p, **{k: getattr(pools["prefill"], k) for k in _ROLE_SETTINGS}) for p in pools.values()]
            if kept[0] != kept[1]:
                raise ConfigError(f"{where}: the planner moves instances between prefill and decode, so both pools "
                                  "need the same hardware, parallelism, precision, engine and price (only count and "
                                  "batching may differ); make them equal or drop autoscale")
        cfg = cls(
            policy=policy,
            interval_s=float(_num(d, "interval_s", where, 60.0)),
            window_s=_num(d, "window_s", where, None),
            percentile=float(_num(d, "percentile", where, 90.0)),
            ttft_target_s=_num(d, "ttft_target_s", where, None),
            itl_target_s=_num(d, "itl_target_s", where, None),
            reconfigure_delay_s=float(_num(d, "reconfigure_delay_s", where, 30.0, strict=False)),
            patience_windows=int(_num(d, "patience_windows", where, 2, integer=True, minimum=1)),
            queue_per_instance_hot=float(_num(d, "queue_per_instance_hot", where, 4.0)),
            hot_ratio=float(_num(d, "hot_ratio", where, 1.0)),
            cold_ratio=float(_num(d, "cold_ratio", where, 0.5, strict=False)),
            min_instances=bounds["min_instances"],
            max_instances=bounds["max_instances"],
        )
        if cfg.cold_ratio >= cfg.hot_ratio:
            raise ConfigError(f"{where}.cold_ratio: must be below hot_ratio ({cfg.hot_ratio}), got {cfg.cold_ratio}")
        return cfg


@dataclass(frozen=True)
class PrefixCacheConfig:
    """A pool's prefix cache (twinfer.sim.prefix_sched): its size and the offload tiers below it."""

    blocks: int | None = None  # cached blocks per instance; None (auto): as many as its KV cache holds
    tiers: tuple[str, ...] = ()  # offload tier presets (twinfer.kvcache tiers.toml), top first

    @classmethod
    def from_dict(cls, d: Any, where: str) -> PrefixCacheConfig | None:
        """Parse ``prefix_cache:``; None when it is absent or not enabled."""
        if d is None or d is False:
            return None
        d = _keys({"enabled": True} if d is True else d, ("enabled", "blocks", "tiers"), where)
        enabled = d.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: expected true or false, got {enabled!r}")
        if not enabled:
            return None
        blocks = d.get("blocks")
        if blocks is None:
            blocks = "auto"
        if blocks != "auto":
            blocks = _num(d, "blocks", where, None, integer=True, minimum=0, strict=False)
        tiers = d.get("tiers") or []
        if not isinstance(tiers, list) or not all(isinstance(t, str) for t in tiers):
            raise ConfigError(f"{where}.tiers: expected a list of tier names (see tiers.toml), got {tiers!r}")
        if tiers:
            from twinfer.kvcache.tiers import load_tiers

            known = load_tiers()
            for t in tiers:
                if t not in known:
                    raise ConfigError(f"{where}.tiers: unknown tier {t!r}; choose from {', '.join(sorted(known))}")
                if known[t].shared:
                    raise ConfigError(f"{where}.tiers: {t!r} is a shared pool; the simulator models "
                                      "per-instance tiers only")
        return cls(blocks=None if blocks == "auto" else int(blocks), tiers=tuple(tiers))


def _prefix_caches(d: Mapping[str, Any], pools_d: Mapping[str, Any], where: str) -> dict[str, PrefixCacheConfig]:
    """Per role prefix caches: the fleet's ``prefix_cache`` for its pools that prefill, a pool's own overriding it."""
    fleet_level = PrefixCacheConfig.from_dict(d.get("prefix_cache"), f"{where}.prefix_cache")
    out: dict[str, PrefixCacheConfig] = {}
    for role, pool_d in pools_d.items():
        own = pool_d.get("prefix_cache", ...) if isinstance(pool_d, Mapping) else ...
        cfg = fleet_level if own is ... else PrefixCacheConfig.from_dict(own, f"{where}.pools.{role}.prefix_cache")
        if cfg is None or (own is ... and role == "decode"):
            continue
        if role == "decode":
            raise ConfigError(f"{where}.pools.decode.prefix_cache: decode instances receive KV, they do not "
                              "prefill prompts; cache prefixes in the prefill pool")
        out[role] = cfg
    return out


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
    def from_dict(cls, d: Any, where: str) -> FleetConfig:
        """Parse one entry of ``fleets:``."""
        d = _keys(d, ("name", "mode", "router", "pools", "kv_link", "prefix_cache", "autoscale"), where)
        name = _str(d, "name", where)
        if not name:
            raise ConfigError(f"{where}.name: every fleet needs a name")
        where = f"{where} ({name})"
        pools_d = _keys(d.get("pools"), tuple(INSTANCE_KINDS), f"{where}.pools")
        roles = tuple(sorted(pools_d))
        if roles not in FLEET_LAYOUTS:
            options = " or ".join(f"{v.pools_text} ({v.mode})" for v in FLEET_LAYOUTS.values())
            raise ConfigError(f"{where}.pools: give either {options}; got {list(roles)}")
        prefix = _prefix_caches(d, pools_d, where)
        pools = {r: PoolConfig.from_dict({k: v for k, v in pools_d[r].items() if k != "prefix_cache"}
                                         if isinstance(pools_d[r], Mapping) else pools_d[r], f"{where}.pools.{r}")
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
        router = _str(d, "router", where, "least_outstanding") or "least_outstanding"
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

        d = _keys(d, ("name", "model", "workload", "slo", "fleets", "sample_interval_s", "hardware_file"), where)
        hardware_file = resolve_hardware_file(d, where, base_dir)
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
            hardware_file=hardware_file,
        )

    def extra_hardware(self) -> Any:
        """The chips and links of ``hardware_file`` as a :class:`twinfer.hardware.HardwareSet` (None without one)."""
        if self.hardware_file is None:
            return None
        from twinfer.hardware import load_hardware_file

        return load_hardware_file(self.hardware_file)


def with_hardware_file(scenario: Scenario, path: str | Path) -> Scenario:
    """``scenario`` reading its user chips and links from ``path`` (checked; e.g. from ``--hardware-file``)."""
    from dataclasses import replace

    return replace(scenario, hardware_file=resolve_hardware_file({"hardware_file": str(path)}, "--hardware-file", Path.cwd()))


def resolve_hardware_file(d: Mapping[str, Any], where: str, base_dir: Path | None) -> str | None:
    """The scenario's ``hardware_file``, made absolute (relative paths are read from the scenario's folder), and checked."""
    raw = _str(d, "hardware_file", where)
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


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML file (or ``builtin:NAME``, a packaged one); errors name the file and the offending key."""
    import yaml

    p = builtin_scenario_path(str(path)) if str(path).startswith("builtin:") else Path(path)
    if not p.is_file():
        raise ConfigError(f"scenario file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if isinstance(data, Mapping) and "name" not in data:
        data = {**data, "name": p.stem}
    return Scenario.from_dict(data, str(p), p.parent)
