"""Instance kinds and fleet layouts: what an instance of each pool role does with a request.

``INSTANCE_KINDS`` maps a pool role to its behaviour, read by the scheduler;
``FLEET_LAYOUTS`` maps the set of roles a fleet has to its mode and the pools
a request enters and leaves by. Both are plain dicts: a new kind is an entry
here (and its test).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceKind:
    """How an instance of one pool role treats its requests."""

    name: str
    hands_off: bool  # after its prefill (first token) a request leaves for a decode instance over a KV link
    reserves_output_kv: bool  # kv_policy reserve: admission reserves prompt + output blocks (False: prompt only)


INSTANCE_KINDS: dict[str, InstanceKind] = {
    "mixed": InstanceKind("mixed", hands_off=False, reserves_output_kv=True),  # prefills then decodes
    "prefill": InstanceKind("prefill", hands_off=True, reserves_output_kv=False),  # DistServe / Splitwise prefill
    "decode": InstanceKind("decode", hands_off=False, reserves_output_kv=True),  # receives KV, decodes
}


@dataclass(frozen=True)
class FleetLayout:
    """A fleet's mode and the pools (by role) a request enters by and gets its last token from."""

    mode: str
    entry: str
    last: str

    @property
    def pools_text(self) -> str:
        """The pools in a request's order, e.g. ``prefill + decode``."""
        return self.entry if self.entry == self.last else f"{self.entry} + {self.last}"


#: sorted pool roles -> layout
FLEET_LAYOUTS: dict[tuple[str, ...], FleetLayout] = {
    ("mixed",): FleetLayout("aggregated", entry="mixed", last="mixed"),
    ("decode", "prefill"): FleetLayout("disaggregated", entry="prefill", last="decode"),
}
