"""AFD decode pools in the planner: templates listed in a plan, their step-cost models and scenario sections.

A plan lists attention/FFN-disaggregated decode pools under ``search.afd_decode``,
each an AFD pool of the scenario schema without ``count`` (the planner
searches the count as for any decode pool, up to ``search.max_instances_per_pool``;
a template with ``count`` is refused)::

    search:
      afd_decode:
        - {attention: {hardware: vr200, count: 8}, ffn: {hardware: groq3-lp30}, link: lpx-gpu, micro_batches: 2}

Every prefill pool type of the search is paired with every template, in
disaggregated fleets (so templates need ``disaggregated`` in ``search.modes``).
"""

from __future__ import annotations

from typing import Any

from twinfer.afd.config import AfdConfig
from twinfer.errors import ConfigError

#: Keys an AFD template may hold (the scenario's AFD pool keys but the count, searched by the planner).
TEMPLATE_KEYS = ("attention", "ffn", "link", "micro_batches")


def parse_afd_templates(value: Any, where: str, extra_hardware: Any = None) -> tuple[AfdConfig, ...]:
    """``search.afd_decode``: a list of AFD pool mappings -> their checked configurations (``extra_hardware``: the
    plan's user chips and links)."""
    from twinfer.sim.scenario import PoolConfig

    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{where}: give a list of AFD decode pools, each {{attention: {{...}}, ffn: {{...}}, link, "
                          "micro_batches}")
    out = []
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        if isinstance(item, dict) and "count" in item:
            raise ConfigError(f"{w}.count: the planner searches how many of these AFD decode instances a fleet has "
                              "(1 to search.max_instances_per_pool), so a template takes no count; remove it "
                              "(attention.count sets the attention GPUs of one instance)")
        if not isinstance(item, dict) or set(item) - set(TEMPLATE_KEYS):
            extra = sorted(set(item) - set(TEMPLATE_KEYS)) if isinstance(item, dict) else item
            raise ConfigError(f"{w}: an AFD decode pool takes {', '.join(TEMPLATE_KEYS)} (the planner searches its "
                              f"count); got {extra!r}")
        afd = PoolConfig.from_dict(item, w, extra_hardware).afd
        if afd is None:
            raise ConfigError(f"{w}: give attention: and ffn: groups")
        out.append(afd)
    return tuple(out)


def afd_pool_section(afd: AfdConfig, count: int) -> dict[str, Any]:
    """The scenario ``pools.decode`` mapping of ``count`` AFD instances."""
    a, f = afd.attention, afd.ffn
    ffn: dict[str, Any] = {"hardware": f.hardware}
    if f.chips is not None:
        ffn["chips"] = f.chips
    if f.ep != 1:
        ffn["ep"] = f.ep
    if f.tp != 1:
        ffn["tp"] = f.tp
    pool: dict[str, Any] = {"count": count, "attention": {"hardware": a.hardware, "count": a.replicas, "tp": a.tp},
                            "ffn": ffn, "micro_batches": afd.micro_batches}
    if afd.link is not None:
        pool["link"] = afd.link
    return pool


def afd_devices_by_kind(afd: AfdConfig, total_devices: int, kinds: dict[str, str]) -> dict[str, int]:
    """Devices of one AFD instance by kind (gpu / lpu), for the racks limit (``kinds``: hardware name -> kind)."""
    ffn_kind = kinds[afd.ffn.hardware]
    attention = afd.attention.devices
    out = {"gpu": attention}
    out[ffn_kind] = out.get(ffn_kind, 0) + total_devices - attention
    return out
