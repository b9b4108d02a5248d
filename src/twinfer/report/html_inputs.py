"""Report sections that make a report stand alone: the inputs (model, hardware with sources, workload, SLOs) and the LPU partition.

Both are built only from what the results file records (the simulator writes
its inputs, hardware specs with sources and LPU partitions into
``summary.json``). Nothing is recomputed from this install's presets or
compiler: an old result must not silently describe today's hardware. What the
file does not record, the page says is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twinfer.report import charts
from twinfer.report.html_format import Cell, esc, kv_table, note, pointer, table
from twinfer.report.html_page import Figure, Section

#: Keys under which the simulator may record inputs (top level or under "inputs").
INPUT_KEYS = ("model", "workload", "slo", "scenario")
#: Fleets as (display name, key in the summary's ``fleets``, fleet summary).
Fleets = Sequence[tuple[str, str | int, Mapping[str, Any]]]


def _inputs_root(summary: Mapping[str, Any]) -> tuple[Mapping[str, Any], tuple[str, ...]]:
    """The mapping holding the inputs and its JSON path (``/inputs`` or the top level)."""
    inputs = summary.get("inputs")
    if isinstance(inputs, Mapping):
        return inputs, ("inputs",)
    return summary, ()


def _hardware_table(name: str, spec: Mapping[str, Any], src: str, base: tuple[str | int, ...]) -> str:
    """field | value | source | uncertain, for one hardware spec recorded in the results."""
    sources = spec.get("sources", {}) if isinstance(spec.get("sources"), Mapping) else {}
    uncertain = set(spec.get("uncertain", ()) or ())
    rows = []
    for key, value in spec.items():
        if key in ("sources", "uncertain"):
            continue
        if isinstance(value, Mapping):  # e.g. peak_flops_per_s: {"bf16": ...}
            items = [(f"{key}.{k}", v, (*base, key, k)) for k, v in value.items()]
        else:
            items = [(key, value, (*base, key))]
        for label, v, path in items:
            source = sources.get(label, sources.get(label.split(".")[0], ""))
            flag = "uncertain" if label in uncertain or label.split(".")[0] in uncertain else ""
            rows.append((Cell(label), Cell(v, src, pointer(path)), Cell(source), Cell(flag)))
    return table(("field", "value", "source", ""), rows, caption=name, css="hardware")


def _hardware_names(fleets: Fleets) -> list[str]:
    names: list[str] = []
    for _, _, p in _pools(fleets):
        hw = p.get("hardware")
        if isinstance(hw, str) and hw not in names:
            names.append(hw)
    return names


def inputs_section(summary: Mapping[str, Any], src: str, fleets: Fleets | None = None) -> Section:
    """Model, workload, SLOs, scenario and hardware (each value with its source) as recorded in the results."""
    root, base = _inputs_root(summary)
    parts = []
    for key in INPUT_KEYS:
        value = root.get(key)
        if isinstance(value, Mapping):
            parts.append(f"<h3>{esc(key)}</h3>" + kv_table(value, src, (*base, key)))
        elif value is not None:
            parts.append(f"<h3>{esc(key)}</h3>" + table(("field", "value"), [(Cell(key), Cell(value, src, pointer((*base, key))))]))
    recorded: set[str] = set()
    for group in ("hardware", "links"):
        specs = root.get(group)
        if isinstance(specs, Mapping) and specs:
            parts.append(f"<h3>{group}</h3>")
            for name, spec in specs.items():
                if isinstance(spec, Mapping):
                    recorded.add(str(name))
                    parts.append(_hardware_table(str(name), spec, src, (*base, group, name)))
    configs = root.get("fleets")
    if isinstance(configs, Mapping) and configs:
        parts.append("<h3>fleets</h3>")
        for name, cfg in configs.items():
            if not isinstance(cfg, Mapping):
                continue
            shown = {k: v for k, v in cfg.items() if k != "pools"}
            shown["pools"] = {r: {k: v for k, v in p.items() if k != "lpu_partition"}
                              for r, p in (cfg.get("pools") or {}).items() if isinstance(p, Mapping)}
            parts.append(f"<details><summary>{esc(name)}</summary>"
                         f"{kv_table(shown, src, (*base, 'fleets', name))}</details>")
    missing = [n for n in _hardware_names(fleets or []) if n not in recorded]
    if missing:
        parts.append(note(f"The results name hardware they do not describe ({', '.join(missing)}); rerun "
                          "`twinfer simulate --out` with this version to record each spec with its sources.",
                          kind="warn"))
    if not parts:
        parts.append(note("The results file records no inputs.", kind="warn"))
    return Section("inputs", "Inputs", "".join(parts))


def _pools(fleets: Fleets) -> list[tuple[str, tuple[str | int, ...], Mapping[str, Any]]]:
    """(fleet name, JSON path of the pool, pool) for every pool of every fleet."""
    out: list[tuple[str, tuple[str | int, ...], Mapping[str, Any]]] = []
    for fname, fkey, f in fleets:
        pools = f.get("pools")
        if pools is None:  # only the flat "pool.<role>.<key>" summary keys: rebuild one mapping per role
            flat: dict[str, dict[str, Any]] = {}
            for key, value in f.items():
                if key.startswith("pool.") and key.count(".") >= 2:
                    role, _, name = key[len("pool."):].partition(".")
                    flat.setdefault(role, {"role": role})[name] = value
            for p in flat.values():
                out.append((fname, ("fleets", fkey), p))
            continue
        items = pools.items() if isinstance(pools, Mapping) else enumerate(pools)
        for pkey, p in items:
            if isinstance(p, Mapping):
                out.append((fname, ("fleets", fkey, "pools", pkey), p))
    return out


def _recorded_kind(pool: Mapping[str, Any], config: Mapping[str, Any], root: Mapping[str, Any]) -> str | None:
    """The pool's hardware kind (gpu, lpu) as the results record it: on the pool, its config, or its hardware spec."""
    for kind in (pool.get("kind"), config.get("kind")):
        if isinstance(kind, str):
            return kind
    specs = root.get("hardware")
    spec = specs.get(pool.get("hardware")) if isinstance(specs, Mapping) else None
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    return kind if isinstance(kind, str) else None


def partition_block(title: str, part: Mapping[str, Any], src: str, base: tuple[str | int, ...], fig_id: str) -> tuple[str, Figure | None]:
    """Table of a partition's stages and a chart of SRAM used per chip, from a recorded partition dict.

    Expects ``stages`` (each with ``chips``, ``first_block``, ``last_block``,
    ``bytes_per_chip``) and optionally ``capacity_bytes``, ``tp``, ``chips_used``.
    """
    head = {k: v for k, v in part.items() if not isinstance(v, list | Mapping)}
    html = f"<h3>{esc(title)}</h3>" + kv_table(head, src, base)
    stages = part.get("stages") or []
    rows, chips, used = [], [], []
    for i, st in enumerate(stages):
        chip_ids = list(st.get("chips", []))
        rows.append((Cell(st.get("index", i)), Cell(f"{chip_ids[0]}–{chip_ids[-1]}" if chip_ids else ""),
                     Cell(st.get("first_block"), src, pointer((*base, "stages", i, "first_block"))),
                     Cell(st.get("last_block"), src, pointer((*base, "stages", i, "last_block"))),
                     Cell(st.get("bytes_per_chip"), src, pointer((*base, "stages", i, "bytes_per_chip")))))
        chips += chip_ids
        used += [st.get("bytes_per_chip", 0)] * len(chip_ids)
    if rows:
        html += "<details><summary>pipeline stages</summary>" + table(
            ("stage", "chips", "first block", "last block", "SRAM bytes per chip"), rows) + "</details>"
    fig = Figure(fig_id, charts.sram_figure(f"{title}: SRAM used per chip", chips, used, part.get("capacity_bytes"))) if chips else None
    return html, fig


def lpu_section(fleets: Fleets, summary: Mapping[str, Any] | None = None) -> Section:
    """The LPU partition and SRAM use per chip for each LPU pool the results record, or a note saying why it is absent.

    Reads the partition the results record (pool key ``lpu_partition``, on the
    fleet summary's pool or in the recorded inputs).
    """
    root, root_path = _inputs_root(summary or {})
    configs = root.get("fleets")
    configs = configs if isinstance(configs, Mapping) else {}
    parts, figs, unknown = [], [], []
    i = 0
    for fname, path, pool in _pools(fleets):
        role = str(pool.get("role", "pool"))
        fleet_cfg = configs.get(fname)
        pools_cfg = fleet_cfg.get("pools") if isinstance(fleet_cfg, Mapping) else None
        config = pools_cfg.get(role) if isinstance(pools_cfg, Mapping) else None
        config = config if isinstance(config, Mapping) else {}
        kind = _recorded_kind(pool, config, root)
        if kind is None:
            unknown.append(f"{fname}: {role} on {pool.get('hardware', '?')}")
            continue
        if kind != "lpu":
            continue
        label = f"{fname}: {role} on {pool.get('hardware', 'LPU')}"
        part, base = pool.get("lpu_partition"), (*path, "lpu_partition")
        if not isinstance(part, Mapping) and isinstance(config.get("lpu_partition"), Mapping):
            part = config["lpu_partition"]
            base = (*root_path, "fleets", fname, "pools", role, "lpu_partition")
        if not isinstance(part, Mapping):
            parts.append(note(f"{label}: the results do not record the LPU partition; rerun "
                              "`twinfer simulate --out` with this version to record it.", kind="warn"))
            continue
        html, fig = partition_block(label, part, "summary.json", base, f"lpu-sram-{i}")
        i += 1
        parts.append(html)
        figs += [fig] if fig else []
    if unknown:
        parts.append(note("The results do not record the hardware kind of " + "; ".join(unknown)
                          + ", so whether they are LPUs (and their partitions) is not shown.", kind="warn"))
    if not parts:
        return Section("lpu", "LPU partition", note("No LPU pool in these results."))
    return Section("lpu", "LPU partition and SRAM per chip", "".join(parts), tuple(figs))
