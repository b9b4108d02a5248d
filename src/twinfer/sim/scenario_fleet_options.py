"""Fleet options beyond pools: a planner that resizes the fleet (autoscale) and per-pool prefix caches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from twinfer.errors import ConfigError
from twinfer.sim.scenario_fields import check_keys, number, text
from twinfer.sim.scenario_pool import PoolConfig

AUTOSCALE_POLICIES = ("dynamo",)
#: Pool settings of a role, not of an instance: the planner's moved instance rejoins as a fresh instance of
#: the other pool (:meth:`twinfer.sim.cluster.FleetSim.add_instance`), restarted with that role's batching and
#: speculative decoding (a decode pool's drafter is loaded with the weights, within ``reconfigure_delay_s``).
_ROLE_SETTINGS = ("count", "batching", "speculative")


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
        d = check_keys(d, ("policy", "interval_s", "window_s", "percentile", "ttft_target_s", "itl_target_s",
                      "reconfigure_delay_s", "patience_windows", "queue_per_instance_hot", "hot_ratio", "cold_ratio",
                      "min_instances", "max_instances"), where)
        policy = text(d, "policy", where, "dynamo") or "dynamo"
        if policy not in AUTOSCALE_POLICIES:
            raise ConfigError(f"{where}.policy: unknown policy {policy!r}; choose one of {', '.join(AUTOSCALE_POLICIES)}")
        bounds = {}
        for key, default in (("min_instances", lambda c: 1), ("max_instances", lambda c: 2 * c)):
            given = check_keys(d.get(key) or {}, tuple(pools), f"{where}.{key}")
            bounds[key] = {r: int(number(given, r, f"{where}.{key}", default(p.count), integer=True, minimum=1))
                           for r, p in pools.items()}
        for role, pool in pools.items():
            lo, hi = bounds["min_instances"][role], bounds["max_instances"][role]
            if not lo <= pool.count <= hi:
                raise ConfigError(f"{where}: the {role} pool starts with {pool.count} instances, outside "
                                  f"min_instances {lo} .. max_instances {hi}; widen the bounds or change its count")
        if len(pools) > 1:
            differ = _instance_differences(pools["prefill"], pools["decode"])
            for role, pool in pools.items():
                if pool.speculative is not None and pool.speculative.draft_devices is not None:
                    raise ConfigError(f"{where}: the {role} pool's drafter has devices of its own "
                                      "(speculative.draft_devices), so its instances cost more than the other "
                                      "pool's and would change price as the planner moves them; put the drafter "
                                      "on the pool's devices (drop draft_devices) or drop autoscale")
            if differ:
                raise ConfigError(f"{where}: the planner moves instances between prefill and decode, so both pools "
                                  "need the same hardware, parallelism, precision, engine and price (only count, "
                                  f"batching and speculative may differ); they differ in {'; '.join(differ)}: make "
                                  "them equal or drop autoscale")
        cfg = cls(
            policy=policy,
            interval_s=float(number(d, "interval_s", where, 60.0)),
            window_s=number(d, "window_s", where, None),
            percentile=float(number(d, "percentile", where, 90.0)),
            ttft_target_s=number(d, "ttft_target_s", where, None),
            itl_target_s=number(d, "itl_target_s", where, None),
            reconfigure_delay_s=float(number(d, "reconfigure_delay_s", where, 30.0, strict=False)),
            patience_windows=int(number(d, "patience_windows", where, 2, integer=True, minimum=1)),
            queue_per_instance_hot=float(number(d, "queue_per_instance_hot", where, 4.0)),
            hot_ratio=float(number(d, "hot_ratio", where, 1.0)),
            cold_ratio=float(number(d, "cold_ratio", where, 0.5, strict=False)),
            min_instances=bounds["min_instances"],
            max_instances=bounds["max_instances"],
        )
        if cfg.cold_ratio >= cfg.hot_ratio:
            raise ConfigError(f"{where}.cold_ratio: must be below hot_ratio ({cfg.hot_ratio}), got {cfg.cold_ratio}")
        return cfg


def _instance_differences(prefill: PoolConfig, decode: PoolConfig) -> list[str]:
    """``field prefill-value vs decode-value`` for each instance setting (not a role setting) the pools differ in."""
    from dataclasses import fields

    out = []
    for f in fields(PoolConfig):
        a, b = getattr(prefill, f.name), getattr(decode, f.name)
        if f.name not in _ROLE_SETTINGS and a != b:
            out.append(f"{f.name} ({_shown(a)} vs {_shown(b)})")
    return out


def _shown(value: Any) -> str:
    """A pool setting as a message shows it: None as 'unset', a dataclass by its non-default fields."""
    if value is None:
        return "unset"
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import fields

        parts = [f"{f.name}={getattr(value, f.name)}" for f in fields(value) if getattr(value, f.name) != f.default]
        return ", ".join(parts) or "defaults"
    return str(value)


@dataclass(frozen=True)
class PrefixCacheConfig:
    """A pool's prefix cache (twinfer.sim.prefix_sched): its size and the offload tiers below it."""

    blocks: int | None = None  # cached blocks per instance; None (auto): as many as its KV cache holds
    tiers: tuple[str, ...] = ()  # offload tier presets (twinfer.kvcache tiers.toml), top first
    key: str = field(default="prefix_cache", compare=False)  # the fleet's key that set it, for messages

    @classmethod
    def from_dict(cls, d: Any, where: str) -> PrefixCacheConfig | None:
        """Parse ``prefix_cache:``; None when it is absent or not enabled (its other keys are checked all the same)."""
        if d is None or d is False:
            return None
        d = check_keys({"enabled": True} if d is True else d, ("enabled", "blocks", "tiers"), where)
        enabled = d.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: expected true or false, got {enabled!r}")
        cfg = cls._parse(d, where)
        return cfg if enabled else None

    @classmethod
    def _parse(cls, d: Mapping[str, Any], where: str) -> PrefixCacheConfig:
        """The settings of a ``prefix_cache:`` mapping, checked (enabled or not)."""
        blocks = d.get("blocks")
        if blocks is None:
            blocks = "auto"
        if blocks != "auto":
            blocks = number(d, "blocks", where, None, integer=True, minimum=0, strict=False)
        tiers = d.get("tiers") or []
        if not isinstance(tiers, list) or not all(isinstance(t, str) for t in tiers):
            raise ConfigError(f"{where}.tiers: expected a list of tier names (see tiers.toml), got {tiers!r}")
        twice = sorted({t for t in tiers if tiers.count(t) > 1})
        if twice:
            raise ConfigError(f"{where}.tiers: {twice[0]!r} is listed twice; each tier is one level of the offload "
                              "chain below the device (top first), so name each tier once, e.g. "
                              "[h100-host-dram, h100-local-nvme]")
        if tiers:
            from twinfer.kvcache.tiers import load_tiers

            known = load_tiers()
            for t in tiers:
                if t not in known:
                    raise ConfigError(f"{where}.tiers: unknown tier {t!r}; choose from {', '.join(sorted(known))}")
            shared = [t for t in tiers if known[t].shared]
            if shared and (len(shared) > 1 or tiers[-1] != shared[0]):
                raise ConfigError(f"{where}.tiers: a shared pool ({', '.join(shared)}) must be the one last tier, "
                                  "below the instance's own; e.g. [h100-host-dram, mooncake-store]")
        if blocks == 0 and tiers:
            raise ConfigError(f"{where}.blocks: 0 device blocks under offload tiers ({', '.join(tiers)}): blocks reach "
                              "the tiers only when evicted from the device cache, so with none the tiers are never "
                              "used; give blocks > 0 (or auto) or remove the tiers")
        return cls(blocks=None if blocks == "auto" else int(blocks), tiers=tuple(tiers))


def prefix_caches(d: Mapping[str, Any], pools_d: Mapping[str, Any], where: str) -> dict[str, PrefixCacheConfig]:
    """Per role prefix caches: the fleet's ``prefix_cache`` for its pools that prefill, a pool's own overriding it."""
    fleet_level = PrefixCacheConfig.from_dict(d.get("prefix_cache"), f"{where}.prefix_cache")
    out: dict[str, PrefixCacheConfig] = {}
    for role, pool_d in pools_d.items():
        own = pool_d.get("prefix_cache", ...) if isinstance(pool_d, Mapping) else ...
        cfg = fleet_level if own is ... else PrefixCacheConfig.from_dict(own, f"{where}.pools.{role}.prefix_cache")
        if cfg is not None and own is not ...:
            cfg = replace(cfg, key=f"pools.{role}.prefix_cache")
        if cfg is None or (own is ... and role == "decode"):
            continue
        if role == "decode":
            raise ConfigError(f"{where}.pools.decode.prefix_cache: decode instances receive KV, they do not "
                              "prefill prompts; cache prefixes in the prefill pool")
        out[role] = cfg
    return out


def check_prefix_ids(fleets: Sequence[Any], why: str | None, where: str) -> None:
    """Refuse a fleet's prefix cache when the workload's requests carry no prefix block ids (``why``; None: they do)."""
    if why is None:
        return
    for i, fleet in enumerate(fleets):
        if fleet.prefix_cache:
            key = next(iter(fleet.prefix_cache.values())).key
            raise ConfigError(f"{where}.fleets[{i}] ({fleet.name}).{key}: a prefix cache matches requests by their "
                              f"prefix block ids, and {why}; use a workload with them (sessions:, a Mooncake trace "
                              "with hash_ids, or a twinfer JSONL trace with prefix_block_ids) or remove prefix_cache")


def check_prefix_block_tokens(fleets: Sequence[Any], block_tokens: int | None, where: str) -> None:
    """Refuse a prefix-cached pool whose KV block does not divide the workload's prefix blocks of ``block_tokens``.

    A cached prefix block is held as whole KV blocks (twinfer.sim.prefix_sched);
    ``block_tokens`` None: the workload has no prefix ids (checked elsewhere).
    """
    if block_tokens is None:
        return
    for i, fleet in enumerate(fleets):
        for role in fleet.prefix_cache:
            kv = fleet.pools[role].batching.block_tokens
            if block_tokens % kv:
                fit = max(d for d in range(1, kv) if block_tokens % d == 0)
                raise ConfigError(f"{where}.fleets[{i}] ({fleet.name}).pools.{role}.batching.block_tokens: KV blocks "
                                  f"of {kv} tokens do not divide the workload's prefix blocks of {block_tokens} tokens, "
                                  "and the prefix cache holds each prefix block as whole KV blocks; set it to a "
                                  f"divisor of {block_tokens} (e.g. {fit})")


def check_tier_hardware(fleets: Sequence[Any], extra_hardware: Any, where: str) -> None:
    """Refuse offload tiers under an LPU pool's prefix cache (``extra_hardware``: the scenario's user chips)."""
    from twinfer.hardware import get_hardware

    for i, fleet in enumerate(fleets):
        for role, cfg in fleet.prefix_cache.items():
            if cfg.tiers and get_hardware(fleet.pools[role].hardware, extra_hardware).kind == "lpu":
                raise ConfigError(f"{where}.fleets[{i}] ({fleet.name}).{cfg.key}.tiers: offload tiers are modelled "
                                  f"for GPUs only, and the {role} pool runs on {fleet.pools[role].hardware}, an LPU "
                                  "(its KV lives in on-chip SRAM with no host tier here); remove the tiers")
