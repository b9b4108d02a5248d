"""Sweep definitions: a base scenario plus a grid and/or a list of overrides, expanded to jobs.

A sweep YAML file looks like this (every key but ``base`` is optional)::

    name: rate-by-count
    base: ../scenarios/colocated.yaml   # a path (relative to this file) or an inline mapping
    seeds: [0, 1]                       # or ``seed: 0`` (default 0)
    grid:                               # cartesian product over dotted keys
      workload.arrivals.rate_per_s: [2, 4, 8]
      fleets.0.pools.mixed.count: [2, 4]
    cases:                              # explicit overrides, each crossed with the grid
      - {fleets.0.pools.mixed.hardware: h100-sxm}
      - {fleets.0.pools.mixed.hardware: h200}

Expansion order is deterministic: for each case (or one empty case), for each
grid point (keys in file order, the last key varying fastest), for each seed.
A dotted key walks mappings by name and lists by integer index
(``fleets.1.pools.decode.count``); a missing mapping key is created, a list index
out of range is an error. Each job's id is a hash of its canonical JSON
(scenario + seed), so the same scenario always gets the same id and a rerun
can skip what is done.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError

#: Keys a sweep file may have; anything else is probably a typo.
SWEEP_KEYS = frozenset({"name", "base", "seed", "seeds", "grid", "cases", "description"})
#: Most scenarios one sweep may expand to (each job holds a copy of its scenario mapping in memory).
MAX_JOBS = 1_000_000


@dataclass(frozen=True)
class Job:
    """One scenario of a sweep: the full scenario mapping, its seed and its stable id."""

    scenario_id: str  # 16 hex digits of sha256(canonical JSON of scenario + seed)
    index: int  # position in the sweep's expansion order
    seed: int
    scenario: dict[str, Any]  # the base scenario with this job's overrides applied
    params: dict[str, Any]  # the overrides alone (dotted key -> value), in file order
    base_dir: str | None = None  # folder relative paths in the scenario are read from


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: base scenario, grid axes, explicit cases and seeds."""

    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    name: str = "sweep"
    base_dir: str | None = None

    def size(self) -> int:
        """Number of jobs :func:`expand` yields (without building them)."""
        n = max(1, len(self.cases)) * len(self.seeds)
        for values in self.grid.values():
            n *= len(values)
        return n


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal mappings give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def scenario_id(scenario: dict[str, Any], seed: int) -> str:
    """Stable id of (scenario, seed): the first 16 hex digits of sha256 of their canonical JSON."""
    text = canonical_json({"scenario": scenario, "seed": int(seed)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``tree[a][b][0]...`` named by the dotted ``key`` ("a.b.0") to ``value``, in place."""
    parts = key.split(".")
    node: Any = tree
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.lstrip("-").isdigit():
                raise ConfigError(f"override {key!r}: {where!r} indexes a list, so it needs an integer")
            idx = int(part)
            if not -len(node) <= idx < len(node):
                raise ConfigError(
                    f"override {key!r}: index {idx} is out of range (the list at that point has "
                    f"{len(node)} items); fix the index or add the item to the base scenario"
                )
            if last:
                node[idx] = copy.deepcopy(value)
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(
                f"override {key!r}: {'.'.join(parts[:depth])!r} is a {type(node).__name__}, "
                "not a mapping or list, so it has no field to set"
            )


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with every dotted-key override applied in order."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        set_dotted(out, key, value)
    return out


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc


def parse_sweep(raw: Any, *, where: str = "sweep", base_dir: Path | None = None) -> SweepSpec:
    """Check a sweep mapping (as read from YAML) and return its :class:`SweepSpec`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a sweep file must be a mapping with 'base' and 'grid'/'cases'")
    unknown = set(raw) - SWEEP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(SWEEP_KEYS)}")
    base_raw = raw.get("base")
    scenario_dir = base_dir
    if isinstance(base_raw, str):
        path = Path(base_raw)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        base_raw = _read_yaml(path)
        scenario_dir = path.resolve().parent
        if not isinstance(base_raw, dict):
            raise ConfigError(f"{path}: the base scenario must be a mapping")
    elif base_raw is None:
        raise ConfigError(f"{where}: 'base' is missing; give a scenario path or an inline mapping")
    elif not isinstance(base_raw, dict):
        raise ConfigError(f"{where}: 'base' must be a scenario path or an inline mapping")

    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: 'grid' must map dotted keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid axis {key!r} must be a non-empty list of values")
    cases = raw.get("cases") or []
    if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
        raise ConfigError(f"{where}: 'cases' must be a list of mappings of dotted keys to values")
    for i, case in enumerate(cases):
        both = set(case) & set(grid)
        if both:
            raise ConfigError(f"{where}: cases[{i}] and the grid both set {sorted(both)}; set each key in one place")
    if "seeds" in raw and "seed" in raw:
        raise ConfigError(f"{where}: give 'seed' or 'seeds', not both")
    seeds = raw.get("seeds", [raw.get("seed", 0)])
    if not isinstance(seeds, list) or not seeds or \
            not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in seeds):
        raise ConfigError(f"{where}: 'seeds' must be a non-empty list of integers from 0 to 2**63-1, got {seeds!r}")
    spec = SweepSpec(
        base=base_raw,
        grid={str(k): list(v) for k, v in grid.items()},
        cases=[{str(k): v for k, v in c.items()} for c in cases],
        seeds=[int(s) for s in seeds],
        name=str(raw.get("name", "sweep")),
        base_dir=str(scenario_dir) if scenario_dir is not None else None,
    )
    if spec.size() > MAX_JOBS:
        raise ConfigError(f"{where}: the grid, cases and seeds expand to {spec.size():,} scenarios, above the "
                          f"limit of {MAX_JOBS:,}; split the sweep or use fewer values per axis")
    return spec


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check the sweep YAML at ``path`` (a relative ``base`` is read beside it)."""
    path = Path(path)
    return parse_sweep(_read_yaml(path), where=str(path), base_dir=path.resolve().parent)


def expand(spec: SweepSpec) -> list[Job]:
    """Every job of the sweep, in its deterministic expansion order."""
    keys = list(spec.grid)
    points = list(itertools.product(*(spec.grid[k] for k in keys))) if keys else [()]
    jobs: list[Job] = []
    for case in spec.cases or [{}]:
        for point in points:
            params = {**case, **dict(zip(keys, point, strict=True))}
            scenario = apply_overrides(spec.base, params)
            for seed in spec.seeds:
                try:
                    sid = scenario_id(scenario, seed)
                except (TypeError, ValueError) as exc:  # NaN/inf, or a YAML date or other non-JSON value
                    raise ConfigError(
                        f"sweep {spec.name!r}: scenario {len(jobs)} (overrides {params!r}) holds a value "
                        f"JSON cannot store ({exc}); use finite numbers, strings, lists and mappings") from None
                jobs.append(
                    Job(
                        scenario_id=sid,
                        index=len(jobs),
                        seed=seed,
                        scenario=scenario,
                        params=params,
                        base_dir=spec.base_dir,
                    )
                )
    seen: dict[str, int] = {}
    for job in jobs:
        if job.scenario_id in seen:
            raise ConfigError(
                f"sweep {spec.name!r}: jobs {seen[job.scenario_id]} and {job.index} are the same "
                "scenario and seed; remove the duplicate case or grid value"
            )
        seen[job.scenario_id] = job.index
    return jobs
