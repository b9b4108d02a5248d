"""A scenario's pools and KV links: hardware, parallelism, precision, batching, engine, AFD groups, speculation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twinfer.afd.config import AfdConfig, AttentionGroup, FfnGroup
from twinfer.errors import ConfigError, UnknownNameError
from twinfer.models.ops import Precision
from twinfer.perf.speculative import SpeculativeConfig, check_draft_model, check_drafter
from twinfer.sim.scenario_fields import GROUP_KEYS, check_keys, number, text
from twinfer.sim.scheduler import BatchingConfig

PRECISION_SHORTHANDS = {
    "bf16": Precision(),
    "fp16": Precision(weights="fp16", activations="fp16", kv_cache="fp16"),
    "fp8": Precision(weights="fp8"),
    "int8": Precision(weights="int8"),
    "fp8-kv8": Precision(weights="fp8", kv_cache="fp8"),
}


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
    def from_dict(cls, d: Any, where: str, extra_hardware: Any = None) -> PoolConfig:
        """Parse one entry of ``pools:`` (``extra_hardware``: the scenario's user chips and links)."""
        d = check_keys(d, ("hardware", "count", "tp", "pp", "ep", "expert_imbalance", "chips", "precision", "batching",
                      "price_per_hour_usd", "power_idle_w", "power_max_w", "engine", "attention", "ffn", "link",
                      "micro_batches", "speculative"), where)
        afd = _afd(d, where, extra_hardware)
        if afd is not None:
            d = {**d, "hardware": afd.attention.hardware}
        hw = text(d, "hardware", where)
        if not hw:
            raise ConfigError(f"{where}.hardware: required (a preset such as h100 or groq-tsp-v1; see `twinfer hardware`)")
        b = check_keys(d.get("batching") or {}, ("policy", "token_budget", "max_batch_seqs", "kv_policy", "block_tokens"),
                  f"{where}.batching")
        batching = BatchingConfig(
            policy=text(b, "policy", f"{where}.batching", "chunked") or "chunked",
            token_budget=int(number(b, "token_budget", f"{where}.batching", 2048, integer=True, minimum=1)),
            max_batch_seqs=number(b, "max_batch_seqs", f"{where}.batching", None, integer=True, minimum=1),
            kv_policy=text(b, "kv_policy", f"{where}.batching", "reserve") or "reserve",
            block_tokens=int(number(b, "block_tokens", f"{where}.batching", 16, integer=True, minimum=1)),
        )
        batching.check(f"{where}.batching")
        idle, peak = number(d, "power_idle_w", where, None, strict=False), number(d, "power_max_w", where, None, strict=False)
        if idle is not None and peak is not None and idle > peak:
            raise ConfigError(f"{where}.power_idle_w: {idle:g} W is above power_max_w {peak:g} W; idle power must "
                              "not exceed peak power")
        return cls(
            hardware=hw,
            count=int(number(d, "count", where, 1, integer=True, minimum=1)),
            tp=int(number(d, "tp", where, 1, integer=True, minimum=1)),
            pp=int(number(d, "pp", where, 1, integer=True, minimum=1)),
            ep=int(number(d, "ep", where, 1, integer=True, minimum=1)),
            expert_imbalance=float(number(d, "expert_imbalance", where, 1.0, minimum=1.0, strict=False)),
            chips=number(d, "chips", where, None, integer=True, minimum=1),
            precision=parse_precision(d.get("precision", "bf16"), f"{where}.precision"),
            batching=batching,
            price_per_hour_usd=number(d, "price_per_hour_usd", where, None, strict=False),
            power_idle_w=number(d, "power_idle_w", where, None, strict=False),
            power_max_w=number(d, "power_max_w", where, None, strict=False),
            engine=_engine(d, where),
            afd=afd,
            speculative=_speculative(d.get("speculative"), batching, f"{where}.speculative", extra_hardware),
        )


def _speculative(v: Any, batching: BatchingConfig, where: str, extra_hardware: Any = None) -> SpeculativeConfig | None:
    """``speculative:`` of a pool; None when absent, null, false or ``k: 0`` (off)."""
    if v is None or v is False:
        return None
    if isinstance(v, Mapping) and v.get("k") == 0 and not isinstance(v.get("k"), bool):
        return None
    cfg = SpeculativeConfig.from_dict(v, where, parse_precision)
    if cfg.k + 1 > batching.block_tokens:
        raise ConfigError(f"{where}.k: a verify step writes k + 1 = {cfg.k + 1} tokens of KV, more than a block of "
                          f"{batching.block_tokens} (batching.block_tokens); raise block_tokens or lower k")
    if cfg.draft_devices is not None:
        cfg.draft_devices.check(f"{where}.draft_devices", extra_hardware)
    return cfg


def check_drafters(model: str, fleets: Sequence[Any], where: str) -> None:
    """Drafters against the target, at load: ``mtp`` needs a multi-token-prediction module, a draft model the
    target's vocabulary and fewer parameters (models are loaded only when some pool speculates)."""
    pools = [(i, fleet, role, pool.speculative) for i, fleet in enumerate(fleets) for role, pool in fleet.pools.items()
             if pool.speculative is not None and pool.speculative.method in ("mtp", "draft")]
    if not pools:
        return
    from twinfer.models import load_model

    try:
        spec = load_model(model)
    except (ConfigError, UnknownNameError) as exc:
        raise ConfigError(f"{where}.model: {exc}") from None
    for i, fleet, role, cfg in pools:
        at = f"{where}.fleets[{i}] ({fleet.name}).pools.{role}.speculative"
        if cfg.method == "mtp":
            check_drafter(cfg, spec, at)
            continue
        try:
            draft = load_model(cfg.draft_model)
        except (ConfigError, UnknownNameError) as exc:
            raise ConfigError(f"{at}.draft_model: {exc}") from None
        check_draft_model(draft, spec, f"{at}.draft_model")


def _afd(d: Mapping[str, Any], where: str, extra_hardware: Any = None) -> AfdConfig | None:
    """``attention:``/``ffn:``/``link:``/``micro_batches:`` of an AFD pool (None for a plain pool)."""
    from twinfer.hardware import get_hardware, get_link
    from twinfer.hardware.specs import LpuSpec

    if not any(k in d for k in ("attention", "ffn", "link", "micro_batches")):
        return None
    for k in ("attention", "ffn"):
        if d.get(k) is None:
            raise ConfigError(f"{where}.{k}: an AFD pool needs both attention: {{hardware, count, tp}} and "
                              "ffn: {hardware, chips | ep, tp}")
    clash = [k for k in GROUP_KEYS if k in d]
    if clash:
        raise ConfigError(f"{where}: {', '.join(clash)} of an AFD pool go under attention: or ffn:, not beside them")
    wa, wf = f"{where}.attention", f"{where}.ffn"
    a = check_keys(d["attention"], ("hardware", "count", "tp"), wa)
    f = check_keys(d["ffn"], ("hardware", "chips", "count", "ep", "tp"), wf)
    specs = {}
    for g, w in ((a, wa), (f, wf)):
        name = text(g, "hardware", w)
        if not name:
            raise ConfigError(f"{w}.hardware: required (a preset such as vr200 or groq3-lp30; see `twinfer hardware`)")
        try:
            specs[w] = get_hardware(name, extra_hardware)
        except (ConfigError, UnknownNameError) as exc:
            raise ConfigError(f"{w}.hardware: {exc}") from None
    attention = AttentionGroup(hardware=specs[wa].name, replicas=int(number(a, "count", wa, 1, integer=True, minimum=1)),
                               tp=int(number(a, "tp", wa, 1, integer=True, minimum=1)))
    tp = int(number(f, "tp", wf, 1, integer=True, minimum=1))
    count, ep = number(f, "count", wf, None, integer=True, minimum=1), number(f, "ep", wf, None, integer=True, minimum=1)
    chips = number(f, "chips", wf, None, integer=True, minimum=1)
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
    link = text(d, "link", where)
    if link is not None:
        try:
            link = get_link(link, extra_hardware).name
        except (ConfigError, UnknownNameError) as exc:
            raise ConfigError(f"{where}.link: {exc}") from None
    return AfdConfig(attention=attention, ffn=ffn, link=link,
                     micro_batches=int(number(d, "micro_batches", where, 2, integer=True, minimum=1)))


def _engine(d: dict, where: str) -> str | None:
    """``engine:`` of a pool: a GPU serving-engine profile name, checked against twinfer.gpu.engines."""
    name = text(d, "engine", where)
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
    d = check_keys(v, ("weights", "activations", "kv_cache"), where)
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
        d = check_keys(d, ("name", "count", "layerwise"), where)
        lw = d.get("layerwise", False)
        if not isinstance(lw, bool):
            raise ConfigError(f"{where}.layerwise: expected true or false, got {lw!r}")
        return cls(name=text(d, "name", where, "ib-ndr") or "ib-ndr",
                   count=int(number(d, "count", where, 1, integer=True, minimum=1)), layerwise=lw)
