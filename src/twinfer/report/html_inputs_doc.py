"""The ``inputs`` block a simulation's ``summary.json`` should carry, so its report stands alone.

``twinfer simulate --out`` writes results; a reader of the report also needs
what produced them: the model, the workload, the SLOs, every hardware preset
with the source of each number, each fleet's pools (parallelism, precision,
batching, price overrides) and, for LPU pools, the compiler's partition and
SRAM use per chip. :func:`inputs_document` builds that block from the objects
the simulator ran with; the report reads it (``/inputs/...``) and cites it
like any other results number. It builds a dict only; writing files stays in
the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from typing import Any


def _plain(value: Any) -> Any:
    """JSON-ready copy: mappings and dataclasses to dicts, tuples to lists, NaN to None."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return value


def partition_dict(plan: Any) -> dict[str, Any]:
    """An LPU partition plan (:class:`twinfer.lpu.plan.Plan`) as the report reads it."""
    return {
        "tp": plan.tp, "chips_used": plan.chips_used, "num_chips": plan.num_chips,
        "capacity_bytes": plan.capacity_bytes,
        "stages": [_plain(st) for st in plan.stages],
    }


def model_dict(model: Any) -> dict[str, Any]:
    """Headline facts of a :class:`twinfer.models.ModelSpec`."""
    return {
        "name": model.name, "architecture": model.architecture, "layers": model.num_layers,
        "hidden_size": model.hidden_size, "attention_heads": model.num_attention_heads,
        "kv_heads": model.num_kv_heads, "params": model.param_count(), "active_params": model.active_param_count(),
        "kv_bytes_per_token_bf16": model.kv_bytes_per_token("bf16"),
    }


def inputs_document(scenario: Any, model: Any, workload: Any, cost_cache: dict | None = None) -> dict[str, Any]:
    """The ``inputs`` block for ``summary.json`` of a run of ``scenario`` (a :class:`twinfer.sim.scenario.Scenario`).

    ``model`` is the loaded ModelSpec and ``workload`` the Workload the run
    used; ``cost_cache`` the simulator's step-cost cache (LPU pools are
    compiled once either way, by the same call the simulator makes).
    """
    from twinfer.hardware import get_hardware, get_link
    from twinfer.sim.run import make_pool_cost

    hardware: dict[str, Any] = {}
    links: dict[str, Any] = {}
    fleets: dict[str, Any] = {}
    extra = scenario.extra_hardware()
    for fleet in scenario.fleets:
        pools: dict[str, Any] = {}
        for role, pool in fleet.pools.items():
            spec = get_hardware(pool.hardware, extra)
            hardware.setdefault(spec.name, _plain(spec))
            # a pool that does not speculate shows no speculative key (outputs of such scenarios stay as they were)
            entry = {k: _plain(v) for k, v in asdict(pool).items() if not (k == "speculative" and v is None)}
            entry.update(hardware=spec.name, kind=spec.kind)
            if pool.afd is not None:  # an AFD pool: its FFN group's chips and the link between the groups too
                ffn = get_hardware(pool.afd.ffn.hardware, extra)
                hardware.setdefault(ffn.name, _plain(ffn))
                afd_cost = make_pool_cost(model, pool, cost_cache, extra)
                afd_link = get_link(getattr(afd_cost, "link_name", None) or pool.afd.link or "lpx-gpu", extra)
                links.setdefault(afd_link.name, _plain(afd_link))
            if spec.kind == "lpu":
                plan = getattr(make_pool_cost(model, pool, cost_cache, extra), "plan", None)
                if plan is not None:
                    entry["lpu_partition"] = partition_dict(plan)
            pools[str(role)] = entry
        link = None
        if fleet.kv_link is not None:
            link = _plain(fleet.kv_link)
            spec_link = get_link(fleet.kv_link.name, extra)
            links.setdefault(spec_link.name, _plain(spec_link))
        fleets[fleet.name] = {"router": fleet.router, "kv_link": link, "pools": pools}
        if fleet.prefix_cache:  # only fleets that cache prefixes list it (others keep their inputs as they were)
            fleets[fleet.name]["prefix_cache"] = {role: _plain(c) for role, c in fleet.prefix_cache.items()}
    summary = workload.summary() if hasattr(workload, "summary") else {}
    return {
        "model": model_dict(model),
        "workload": {**_plain(summary), "notes": list(getattr(workload, "notes", ()))},
        "slo": _plain(scenario.slo),
        "hardware": hardware,
        "links": links,
        "fleets": fleets,
    }
