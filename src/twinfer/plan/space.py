"""A plan's inputs (model, workload, SLOs, objective, hardware, limits) and its search space of fleets.

A plan YAML file (see ``examples/plans/``)::

    name: llama3-70b-conv
    model: llama-3-70b
    workload: {trace: builtin:azure-conv-sample, max_requests: 400}   # a scenario workload section
    target_rate_per_s: 4          # arrivals become Poisson at this rate (lengths kept from the trace)
    arrival_pattern: poisson      # or trace: keep the trace's own (bursty) timestamps, scaled to each rate
    rates_per_s: [1, 2, 4, 8]     # also plan at these rates (the "as traffic grows" table)
    slo: {ttft_s: 2.0, tpot_s: 0.1, percentile: 90}   # >= 90 % of requests meet both
    objective: min_cost           # min_cost | max_goodput_per_usd | max_goodput_per_watt
    hardware: [h100, h200]        # allowed silicon (GPUs and LPUs)
    limits: {budget_per_hour_usd: 400, power_w: 100000, racks: 2}
    search:
      modes: [aggregated, disaggregated]
      tp: [2, 4, 8]               # GPU tensor parallelism per instance
      lpu_chips: [null]           # LPU chips per replica (null: smallest that fits)
      max_batch_seqs: [null]      # batch caps (null: the backend's limit)
      max_instances_per_pool: 8
      link: ib-ndr                # prefill -> decode KV link, or {name: ib-ndr, count: 8, layerwise: true}
      batching: {policy: chunked, token_budget: 2048}   # or a list of variants to search over
      strategy: staircase         # or exhaustive (see twinfer.plan.search)
      afd_decode: []              # AFD decode pools to pair with every prefill type (twinfer.plan.afd)
    seed: 0

Devices per rack, for the ``racks`` limit, default to 32 GPUs (4 DGX-class
8-GPU servers per rack: a guess, typical of 40 kW air-cooled racks) and 64
LPU chips (GroqRack: 8 GroqNode servers x 8 cards, Groq product brief);
override with ``limits.devices_per_rack``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinfer.afd.config import AfdConfig
from twinfer.errors import ConfigError, yaml_number_hint
from twinfer.workload.config import MAX_RATE_PER_S

OBJECTIVES = ("min_cost", "max_goodput_per_usd", "max_goodput_per_watt")
MODES = ("aggregated", "disaggregated")
#: Devices per rack by kind (see the module doc for sources; the GPU value is a guess).
DEVICES_PER_RACK = {"gpu": 32, "lpu": 64}
PLAN_KEYS = frozenset({"name", "model", "workload", "target_rate_per_s", "rates_per_s", "slo", "objective",
                       "hardware", "limits", "search", "seed", "description", "arrival_pattern",
                       "hardware_file"})
ARRIVAL_PATTERNS = ("poisson", "trace")
STRATEGIES = ("staircase", "exhaustive")
#: Largest instance count per pool the search enumerates (disaggregated fleets grow as its square).
MAX_INSTANCES_PER_POOL = 256
#: Largest number of candidate fleets enumerated before pruning (each is a few hundred bytes; more
#: would take minutes just to list).
MAX_CANDIDATES = 2_000_000


@dataclass(frozen=True)
class PoolChoice:
    """One pool of a candidate fleet: silicon, parallelism, instance count and batch cap."""

    role: str  # mixed | prefill | decode
    hardware: str
    count: int
    tp: int = 1  # GPUs per instance (tensor parallel); 1 for LPUs
    chips: int | None = None  # LPU chips per replica (None: the smallest that fits)
    max_batch_seqs: int | None = None
    kind: str = "gpu"  # gpu | lpu
    batching: tuple[tuple[str, Any], ...] = ()  # scenario batching settings (sorted items), cap aside
    batching_tag: str = ""  # shown in labels when the plan searches several batching variants
    afd: AfdConfig | None = None  # an attention/FFN-disaggregated decode pool (hardware: its attention GPU)

    def label(self) -> str:
        """Short text such as ``3x h100 tp4``, ``1x groq-tsp-v1 c576`` (``c*``: smallest chip count that fits)."""
        if self.afd is not None:
            a, f = self.afd.attention, self.afd.ffn
            ffn = f"c{f.chips}" if f.chips else (f"ep{f.ep}" if self.kind != "lpu" and f.ep > 1 else "c*")
            return f"{self.count}x AFD({a.replicas}x {a.hardware} tp{a.tp} + {f.hardware} {ffn} m{self.afd.micro_batches})"
        par = (f"c{self.chips}" if self.chips else "c*") if self.kind == "lpu" else f"tp{self.tp}"
        cap = f" b{self.max_batch_seqs}" if self.max_batch_seqs else ""
        tag = f" {self.batching_tag}" if self.batching_tag else ""
        return f"{self.count}x {self.hardware} {par}{cap}{tag}"


@dataclass(frozen=True)
class Candidate:
    """A fleet the planner considers: aggregated (one mixed pool) or disaggregated (prefill + decode)."""

    mode: str
    pools: tuple[PoolChoice, ...]

    @property
    def key(self) -> str:
        """A readable unique id, e.g. ``agg[4x h100 tp4]`` or ``disagg[2x h100 tp4 -> 3x h200 tp2]``."""
        inner = " -> ".join(p.label() for p in self.pools)
        return f"{'agg' if self.mode == 'aggregated' else 'disagg'}[{inner}]"


@dataclass(frozen=True)
class PlanSpec:
    """A parsed plan file."""

    name: str
    model: str
    workload: dict[str, Any]
    target_rate_per_s: float
    rates_per_s: tuple[float, ...]  # sorted, includes the target
    ttft_s: float
    tpot_s: float
    percentile: float  # e.g. 90: at least 90 % of requests meet both SLOs
    objective: str
    hardware: tuple[str, ...]
    modes: tuple[str, ...] = MODES
    tp: tuple[int, ...] = (1, 2, 4, 8)
    lpu_chips: tuple[int | None, ...] = (None,)
    max_batch_seqs: tuple[int | None, ...] = (None,)
    max_instances_per_pool: int = 8
    link: dict[str, Any] = field(default_factory=lambda: {"name": "ib-ndr"})  # scenario kv_link section
    batchings: tuple[dict[str, Any], ...] = ({},)  # batching variants searched (scenario batching mappings)
    budget_per_hour_usd: float | None = None
    power_w: float | None = None
    racks: int | None = None
    devices_per_rack: int | None = None
    strategy: str = "staircase"  # staircase | exhaustive (see twinfer.plan.search)
    arrival_pattern: str = "poisson"  # poisson at each rate | trace (its timestamps, rescaled to each rate)
    seed: int = 0
    base_dir: str | None = None
    hardware_file: str | None = None  # user chips and links (absolute path), passed to every scenario

    def extra_hardware(self) -> Any:
        """The chips and links of ``hardware_file`` (None without one)."""
        if self.hardware_file is None:
            return None
        from twinfer.hardware import load_hardware_file

        return load_hardware_file(self.hardware_file)
    afd_decode: tuple[AfdConfig, ...] = ()  # AFD decode pools paired with every prefill type

    @property
    def attainment(self) -> float:
        """Fraction of requests that must meet both SLOs."""
        return self.percentile / 100.0


def _number(value: Any, where: str, *, high: float, low: float = 0.0, integer: bool = False,
            low_open: bool = True) -> Any:
    """A finite number (an integer when asked) in (low, high] (or [low, high]); else a ConfigError."""
    import math

    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}: expected {kind}, got {value!r}{yaml_number_hint(value)}")
    if value < low or (low_open and value == low) or value > high:
        raise ConfigError(f"{where}: expected a value {'>' if low_open else '>='} {low:g} and <= {high:g}, "
                          f"got {value!r}")
    return value


def _tuple(value: Any, where: str, kind: type | tuple[type, ...]) -> tuple[Any, ...]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is not None and (isinstance(item, bool) or not isinstance(item, kind)):
            raise ConfigError(f"{where}: {item!r} is not a {getattr(kind, '__name__', kind)}")
    return tuple(items)


def _batchings(value: Any, where: str) -> tuple[dict[str, Any], ...]:
    """``{policy: chunked}`` or a list of such mappings -> the batching variants to search."""
    items = value if isinstance(value, list) else [value or {}]
    if not items or not all(isinstance(b, dict) for b in items):
        raise ConfigError(f"{where}: give a batching mapping (policy, token_budget, ...) or a list of them")
    if any("max_batch_seqs" in b for b in items):
        raise ConfigError(f"{where}: set batch caps with search.max_batch_seqs, not inside batching")
    return tuple(dict(b) for b in items)


def batching_tag(batching: dict[str, Any]) -> str:
    """Short label of a batching variant, e.g. ``chunked/2048`` or ``continuous``."""
    policy = str(batching.get("policy", "chunked"))
    budget = batching.get("token_budget")
    return f"{policy}/{budget}" if budget is not None else policy


def _link(value: Any, where: str) -> dict[str, Any]:
    """``ib-ndr`` or ``{name: ib-ndr, count: 8, layerwise: true}`` -> the scenario's kv_link mapping."""
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and "name" in value:
        return dict(value)
    raise ConfigError(f"{where}: give a link preset name or a mapping with name (and count, layerwise)")


def parse_plan(raw: Any, *, where: str = "plan", base_dir: Path | None = None) -> PlanSpec:
    """Check a plan mapping (as read from YAML) and return its :class:`PlanSpec`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a plan file must be a mapping (see examples/plans/)")
    unknown = set(raw) - PLAN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(PLAN_KEYS)}")
    for key in ("model", "workload", "target_rate_per_s", "slo", "hardware"):
        if key not in raw:
            raise ConfigError(f"{where}: '{key}' is missing")
    slo = raw["slo"]
    if not isinstance(slo, dict) or not {"ttft_s", "tpot_s"} <= set(slo):
        raise ConfigError(f"{where}: slo needs ttft_s and tpot_s (and optionally percentile, default 90)")
    if set(slo) - {"ttft_s", "tpot_s", "percentile"}:
        raise ConfigError(f"{where}.slo: unknown keys {sorted(set(slo) - {'ttft_s', 'tpot_s', 'percentile'})}; "
                          "allowed: ttft_s, tpot_s, percentile")
    percentile = float(_number(slo.get("percentile", 90), f"{where}.slo.percentile", high=100))
    ttft_s = float(_number(slo["ttft_s"], f"{where}.slo.ttft_s", high=1e6))
    tpot_s = float(_number(slo["tpot_s"], f"{where}.slo.tpot_s", high=1e6))
    objective = raw.get("objective", "min_cost")
    if objective not in OBJECTIVES:
        raise ConfigError(f"{where}: objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    target = float(_number(raw["target_rate_per_s"], f"{where}.target_rate_per_s", high=MAX_RATE_PER_S))
    rates = sorted({target, *(float(_number(r, f"{where}.rates_per_s", high=MAX_RATE_PER_S))
                              for r in _tuple(raw.get("rates_per_s", []), f"{where}.rates_per_s", (int, float)))})
    search = raw.get("search") or {}
    limits = raw.get("limits") or {}
    if not isinstance(search, dict) or not isinstance(limits, dict) or not isinstance(raw["workload"], dict):
        raise ConfigError(f"{where}: workload, search and limits must be mappings")
    modes = _tuple(search.get("modes", list(MODES)), f"{where}.search.modes", str)
    if not set(modes) <= set(MODES):
        raise ConfigError(f"{where}: search.modes must be among {', '.join(MODES)}")
    pattern = str(raw.get("arrival_pattern", "poisson"))
    if pattern not in ARRIVAL_PATTERNS:
        raise ConfigError(f"{where}: arrival_pattern {pattern!r} is not one of {', '.join(ARRIVAL_PATTERNS)}")
    if pattern == "trace" and "trace" not in raw["workload"]:
        raise ConfigError(f"{where}: arrival_pattern: trace needs a workload with a trace (timestamps to replay)")
    known_limits = {"budget_per_hour_usd", "power_w", "racks", "devices_per_rack"}
    if set(limits) - known_limits:
        raise ConfigError(f"{where}: unknown limits {sorted(set(limits) - known_limits)}; allowed: {sorted(known_limits)}")
    for key, value in limits.items():
        if value is not None:
            _number(value, f"{where}.limits.{key}", high=1e12, integer=key in ("racks", "devices_per_rack"))
    strategy = raw_strategy = search.get("strategy", "staircase")
    if strategy not in STRATEGIES:
        raise ConfigError(f"{where}.search.strategy: {raw_strategy!r} is not one of {', '.join(STRATEGIES)}")
    max_n = _number(search.get("max_instances_per_pool", 8), f"{where}.search.max_instances_per_pool",
                    high=MAX_INSTANCES_PER_POOL, low=1, low_open=False, integer=True)
    tps = _tuple(search.get("tp", [1, 2, 4, 8]), f"{where}.search.tp", int)
    chips = _tuple(search.get("lpu_chips", [None]), f"{where}.search.lpu_chips", int)
    caps = _tuple(search.get("max_batch_seqs", [None]), f"{where}.search.max_batch_seqs", int)
    for name, values, high in (("tp", tps, 1024), ("lpu_chips", chips, 100_000), ("max_batch_seqs", caps, 1e6)):
        for v in values:
            if v is not None:
                _number(v, f"{where}.search.{name}", high=high, low=1, low_open=False, integer=True)
    seed = _number(raw.get("seed", 0), f"{where}.seed", high=2**63 - 1, low=0, low_open=False, integer=True)
    hardware = _tuple(raw["hardware"], f"{where}.hardware", str)
    if not hardware or not all(isinstance(h, str) and h for h in hardware):
        raise ConfigError(f"{where}.hardware: give a list of hardware preset names (see `twinfer hardware`), "
                          f"got {raw['hardware']!r}")
    if not tps or None in tps:
        raise ConfigError(f"{where}.search.tp: give a list of tensor-parallel sizes such as [1, 2, 4, 8], got {tps!r}")
    batchings = _batchings(search.get("batching"), f"{where}.search.batching")
    from twinfer.plan.afd import parse_afd_templates

    hardware_file = _hardware_file(raw, where, base_dir)
    extra = None
    if hardware_file is not None:
        from twinfer.hardware import load_hardware_file

        extra = load_hardware_file(hardware_file)
    afd_decode = parse_afd_templates(search.get("afd_decode"), f"{where}.search.afd_decode", extra)
    if afd_decode and "disaggregated" not in modes:
        raise ConfigError(f"{where}.search.afd_decode: AFD decode pools are paired with prefill pools in "
                          f"disaggregated fleets, but search.modes is {list(modes)}; add disaggregated to "
                          "search.modes or drop afd_decode")
    per_pool = len(hardware) * max(len(tps), len(chips)) * len(caps) * len(batchings) * max_n
    if per_pool + per_pool**2 > MAX_CANDIDATES:
        raise ConfigError(f"{where}.search: ~{per_pool + per_pool**2:.3g} candidate fleets, above the limit of "
                          f"{MAX_CANDIDATES:,}; lower max_instances_per_pool or list fewer tp/hardware/batch caps")
    return PlanSpec(
        name=str(raw.get("name", "plan")),
        model=str(raw["model"]),
        workload=dict(raw["workload"]),
        target_rate_per_s=target,
        rates_per_s=tuple(rates),
        ttft_s=ttft_s,
        tpot_s=tpot_s,
        percentile=percentile,
        objective=objective,
        hardware=hardware,
        modes=modes,
        tp=tps,
        lpu_chips=chips,
        max_batch_seqs=caps,
        max_instances_per_pool=int(max_n),
        link=_link(search.get("link", "ib-ndr"), f"{where}.search.link"),
        batchings=batchings,
        budget_per_hour_usd=limits.get("budget_per_hour_usd"),
        power_w=limits.get("power_w"),
        racks=limits.get("racks"),
        devices_per_rack=limits.get("devices_per_rack"),
        strategy=str(strategy),
        arrival_pattern=pattern,
        seed=int(seed),
        base_dir=str(base_dir) if base_dir is not None else None,
        hardware_file=hardware_file,
        afd_decode=afd_decode,
    )


def _hardware_file(raw: dict[str, Any], where: str, base_dir: Path | None) -> str | None:
    """The plan's ``hardware_file`` as an absolute, checked path (read like a scenario's)."""
    from twinfer.sim.scenario import resolve_hardware_file

    return resolve_hardware_file(raw, where, base_dir)


def load_plan(path: str | Path) -> PlanSpec:
    """Read and check the plan YAML at ``path`` (relative trace paths are read beside it)."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return parse_plan(raw, where=str(path), base_dir=path.resolve().parent)


def instance_shapes(spec: PlanSpec, kind_of: dict[str, str]) -> list[tuple[str, int, int | None, int | None]]:
    """(hardware, tp, chips, max_batch_seqs) of every instance type in the search space."""
    shapes = []
    for hw in spec.hardware:
        pars = [(1, c) for c in spec.lpu_chips] if kind_of[hw] == "lpu" else [(t, None) for t in spec.tp]
        for (tp, chips), cap in itertools.product(pars, spec.max_batch_seqs):
            shapes.append((hw, tp, chips, cap))
    return shapes


def enumerate_candidates(
    spec: PlanSpec, shapes: list[tuple[str, int, int | None, int | None]], kinds: dict[str, str] | None = None
) -> list[Candidate]:
    """Every fleet of the search space built from the given instance types, in a fixed order.

    Each instance type is crossed with the plan's batching variants (one pool
    type = hardware, parallelism, batch cap, batching policy).
    """
    kinds = kinds or {}
    several = len(spec.batchings) > 1
    types = [(hw, tp, chips, cap, tuple(sorted(b.items())), batching_tag(b) if several else "")
             for (hw, tp, chips, cap), b in itertools.product(shapes, spec.batchings)]

    def pool(role: str, t: tuple, n: int) -> PoolChoice:
        hw, tp, chips, cap, batching, tag = t
        return PoolChoice(role=role, hardware=hw, count=n, tp=tp, chips=chips, max_batch_seqs=cap,
                          kind=kinds.get(hw, "gpu"), batching=batching, batching_tag=tag)

    counts = range(1, spec.max_instances_per_pool + 1)
    out: list[Candidate] = []
    if "aggregated" in spec.modes:
        for t, n in itertools.product(types, counts):
            out.append(Candidate("aggregated", (pool("mixed", t, n),)))
    if "disaggregated" in spec.modes:
        for p, d in itertools.product(types, types):
            for n_p, n_d in itertools.product(counts, counts):
                out.append(Candidate("disaggregated", (pool("prefill", p, n_p), pool("decode", d, n_d))))
        for p, afd in itertools.product(types, spec.afd_decode):
            for n_p, n_d in itertools.product(counts, counts):
                dec = PoolChoice(role="decode", hardware=afd.attention.hardware, count=n_d, kind=kinds.get(
                    afd.ffn.hardware, "gpu"), batching=p[4], afd=afd)
                out.append(Candidate("disaggregated", (pool("prefill", p, n_p), dec)))
    return out
