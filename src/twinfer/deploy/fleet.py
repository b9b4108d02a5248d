"""The fleet to deploy, read from ``plan.json`` or ``summary.json``: pools with parallelism, batch limits and chips."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinfer.deploy.hardware import is_preset, plan_hardware, pool_chip, recorded_hardware
from twinfer.errors import ConfigError
from twinfer.hardware import GpuSpec, HardwareSet, HardwareSpec


@dataclass(frozen=True)
class DeployPool:
    """One pool of identical instances: what an engine launch needs."""

    role: str  # mixed, prefill or decode
    hardware: str  # twinfer hardware preset
    kind: str  # gpu or lpu
    count: int  # instances
    tp: int  # tensor-parallel GPUs per instance
    pp: int  # pipeline stages per instance
    max_num_seqs: int  # sequences per step: the cap the plan or simulation used
    max_num_batched_tokens: int | None  # tokens per step (chunked-prefill budget; None: the engine's default)
    weights_dtype: str  # bf16, fp8 ...
    kv_cache_dtype: str  # bf16 or fp8
    chips: int | None = None  # LPU chips per instance
    gpus_per_node: int | None = None  # GPUs in one scale-up (NVLink) domain of this chip; None for an LPU
    user_chip: bool = False  # the chip comes from a user's hardware file (or the run's record of one), not a preset

    @property
    def gpus_per_instance(self) -> int:
        """GPUs one instance takes (tp x pp)."""
        return self.tp * self.pp


@dataclass(frozen=True)
class DeployFleet:
    """A fleet to deploy: model, pools, and where it came from."""

    name: str
    model: str  # twinfer model preset or config path
    mode: str  # aggregated or disaggregated
    pools: tuple[DeployPool, ...]
    source: str  # the file it was read from
    kv_link: str | None = None  # disaggregated: twinfer link preset between prefill and decode
    hardware_from: str | None = None  # where user chips were read: a hardware file, or the run's recorded specs
    prefix_tiers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (role, offload tiers under its prefix cache)


def _read(path: Path) -> tuple[Path, dict[str, Any]]:
    """The JSON document at ``path``, or at ``path``/plan.json, else ``path``/summary.json."""
    candidates = [path] if path.is_file() else [path / "plan.json", path / "summary.json"]
    file = next((f for f in candidates if f.is_file()), None)
    if file is None:
        raise ConfigError(f"{path}: no plan.json or summary.json found; give the folder of `twinfer plan --out DIR` "
                          "or `twinfer simulate --out DIR`")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{file}: expected a JSON object")
    return file, doc


def _int(value: Any, default: int | None = None) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _chip_fields(spec: HardwareSpec) -> dict[str, Any]:
    """The pool fields that come from its chip: kind, GPUs per node, and whether it is a user's chip."""
    return {"kind": spec.kind, "gpus_per_node": spec.scale_up_gpus if isinstance(spec, GpuSpec) else None,
            "user_chip": not is_preset(spec)}


def _from_plan(doc: dict[str, Any], file: Path, fleet: str | None, extra: HardwareSet | None) -> DeployFleet:
    cands = {c.get("key"): c for c in doc.get("candidates") or [] if isinstance(c, dict)}
    if fleet is None:
        rec = doc.get("recommended") or {}
        fleet = rec.get("key") if isinstance(rec, dict) else None
        if fleet is None:
            raise ConfigError(f"{file}: the plan recommends no fleet (none met the SLOs); pick one with --fleet KEY "
                              f"(candidates: {', '.join(sorted(str(k) for k in cands)) or 'none'})")
    if fleet not in cands:
        names = sorted(map(str, cands))
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        raise ConfigError(f"{file}: no candidate fleet {fleet!r}; candidates include {', '.join(names[:8])}{more} "
                          "(keys as in plan.json)")
    cand = cands[fleet]
    if extra is None:
        extra = plan_hardware(doc.get("hardware_file"), file)
    pools = []
    for p in cand.get("pools") or []:
        _refuse_unsupported(p, file, str(fleet))
        batching = p.get("batching") or {}
        spec = pool_chip(str(p["hardware"]), str(p["role"]), str(fleet), extra, None, file)
        pools.append(DeployPool(
            role=str(p["role"]), hardware=str(p["hardware"]),
            count=_int(p.get("count"), 1) or 1, tp=_int(p.get("tp"), 1) or 1, pp=1,
            max_num_seqs=_seq_cap(p.get("max_batch_seqs"), None),
            max_num_batched_tokens=_int(batching.get("token_budget")),
            weights_dtype="bf16", kv_cache_dtype="bf16", chips=_int(p.get("chips")), **_chip_fields(spec)))
    link = (doc.get("search") or {}).get("link") if isinstance(doc.get("search"), dict) else None
    return DeployFleet(str(fleet), str(doc.get("model")), str(cand.get("mode", "aggregated")), tuple(pools),
                       str(file), link.get("name") if isinstance(link, dict) else None,
                       _hardware_from(pools, extra))


def _from_summary(doc: dict[str, Any], file: Path, fleet: str | None, extra: HardwareSet | None) -> DeployFleet:
    inputs = doc.get("inputs") or {}
    fleets = inputs.get("fleets") or {}
    if not fleets:
        raise ConfigError(f"{file}: no recorded inputs (fleets and pools); rerun `twinfer simulate --out DIR`")
    if fleet is None:
        if len(fleets) != 1:
            raise ConfigError(f"{file}: {len(fleets)} fleets were simulated; pick one with --fleet NAME "
                              f"({', '.join(fleets)})")
        fleet = next(iter(fleets))
    if fleet not in fleets:
        raise ConfigError(f"{file}: no fleet {fleet!r}; simulated fleets: {', '.join(fleets)}")
    if extra is None:
        extra = recorded_hardware(inputs.get("hardware"), file)
    f = fleets[fleet]
    pools = []
    for role, p in (f.get("pools") or {}).items():
        _refuse_unsupported(p, file, str(fleet))
        prec = p.get("precision") or {}
        batching = p.get("batching") or {}
        spec = pool_chip(str(p["hardware"]), str(role), str(fleet), extra, p.get("kind"), file)
        pools.append(DeployPool(
            role=str(role), hardware=str(p["hardware"]),
            count=_int(p.get("count"), 1) or 1, tp=_int(p.get("tp"), 1) or 1, pp=_int(p.get("pp"), 1) or 1,
            max_num_seqs=_seq_cap(batching.get("max_batch_seqs"), p.get("engine")),
            max_num_batched_tokens=_int(batching.get("token_budget")),
            weights_dtype=str(prec.get("weights", "bf16")), kv_cache_dtype=str(prec.get("kv_cache", "bf16")),
            chips=_int(p.get("chips")), **_chip_fields(spec)))
    mode = "aggregated" if "mixed" in (f.get("pools") or {}) else "disaggregated"
    link = f.get("kv_link")
    return DeployFleet(str(fleet), str((inputs.get("model") or {}).get("name")), mode, tuple(pools), str(file),
                       link.get("name") if isinstance(link, dict) else None, _hardware_from(pools, extra),
                       _prefix_tiers(f.get("prefix_cache")))


def _prefix_tiers(caches: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(role, tiers) of each recorded prefix cache that offloads to tiers (summary.json ``inputs.fleets.F.prefix_cache``)."""
    if not isinstance(caches, dict):
        return ()
    out = []
    for role, cfg in sorted(caches.items()):
        tiers = cfg.get("tiers") if isinstance(cfg, dict) else None
        if isinstance(tiers, list) and tiers:
            out.append((str(role), tuple(str(t) for t in tiers)))
    return tuple(out)


def _hardware_from(pools: list[DeployPool], extra: HardwareSet | None) -> str | None:
    """Where the fleet's user chips were read, when it has any."""
    return extra.origin if extra is not None and any(p.user_chip for p in pools) else None


def _refuse_unsupported(pool: dict[str, Any], file: Path, fleet: str) -> None:
    """Pools without a launch recipe here (AFD, wide expert parallelism, speculative decoding): say so rather
    than write commands that silently drop what the simulation assumed."""
    if pool.get("afd"):
        raise ConfigError(f"{file}: fleet {fleet!r} has an attention/FFN-disaggregated (AFD) decode pool, which "
                          "twinfer cannot deploy (no vLLM, SGLang or Dynamo recipe for it); deploy an aggregated or "
                          "prefill/decode fleet")
    ep = _int(pool.get("ep"), 1) or 1
    if ep > 1:
        raise ConfigError(f"{file}: fleet {fleet!r} has a pool with expert parallelism (ep={ep}), which twinfer "
                          "cannot deploy yet (its launch recipes cover tp and pp only); the commands would drop "
                          "the EP layout the simulation assumed; deploy a fleet without ep")
    if pool.get("speculative"):
        raise ConfigError(f"{file}: fleet {fleet!r} has a speculative pool, which twinfer cannot deploy yet (its "
                          "launch recipes carry no drafter configuration); deploy a fleet without speculative:")


def _seq_cap(value: Any, engine: Any) -> int:
    """The sequence cap the run used: the pool's, else the default of the engine profile it ran with.

    Plans and pools without ``engine:`` ran the roofline profile (256 sequences), so the deployment gets
    that cap too rather than the serving engine's larger default the simulation never saw.
    """
    from twinfer.gpu.engines import get_engine

    return _int(value) or get_engine(str(engine) if engine else None).max_num_seqs


def load_fleet(path: str | Path, fleet: str | None = None, extra: HardwareSet | None = None) -> DeployFleet:
    """The fleet to deploy from a plan folder/``plan.json`` (recommended, or ``fleet``) or a simulate folder/``summary.json``.

    ``extra`` is a user's hardware file (``--hardware-file``); without it, user chips come from the
    plan's own ``hardware_file`` or the specs the simulation recorded (:mod:`twinfer.deploy.hardware`).
    """
    file, doc = _read(Path(path))
    if str(doc.get("schema", "")).startswith("twinfer.plan/"):
        return _from_plan(doc, file, fleet, extra)
    if "fleets" in doc:
        return _from_summary(doc, file, fleet, extra)
    raise ConfigError(f"{file}: neither a plan (schema twinfer.plan/1) nor a simulation summary (fleets)")
