"""Routing policies: which instance of a pool gets a request.

``ROUTERS`` maps a policy name to a factory returning ``pick(load, request) ->
index``; adding a policy is adding one function to the dict (and its test).
A router reads only the pool's :class:`PoolLoad`, a read-only view of every
instance's load at the fleet's current time (committed decode runs resolved),
never an instance's internals. Ties go to the lowest instance index, so runs
are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from twinfer.errors import UnknownNameError
from twinfer.kvcache.kv_route import InstanceSnapshot, choose_instance


class PoolLoad(Protocol):
    """What a router may read: each instance's load now (index ``i`` is the pool's ``i``-th instance)."""

    def __len__(self) -> int:
        """Instances in the pool."""
        ...

    def outstanding_tokens(self, i: int) -> int:
        """Tokens of work left on instance ``i``: prompt tokens to prefill + output tokens to generate."""
        ...

    def kv_used_frac(self, i: int) -> float:
        """Fraction of instance ``i``'s KV blocks in use."""
        ...

    def least_outstanding(self) -> int:
        """The index of the instance with the fewest tokens of work left (ties to the lowest index)."""
        ...

    def prefix_snapshot(self, i: int) -> InstanceSnapshot:
        """Instance ``i``'s load and read-only prefix-cache lookup (pools with a prefix cache only)."""
        ...

    def prefix_block_tokens(self) -> int:
        """Tokens per cached prefix block (pools with a prefix cache only)."""
        ...

    def kv_link_backlog_tokens(self, i: int) -> float:
        """KV tokens still queued on instance ``i``'s outbound KV link (0 unless it prefills for a decode pool)."""
        ...


Pick = Callable[[PoolLoad, Any], int]


def round_robin() -> Pick:
    """Cycle through the instances in order, ignoring load."""
    state = [0]

    def pick(load: PoolLoad, request: Any) -> int:
        i = state[0] % len(load)
        state[0] = i + 1
        return i

    pick.stateless = True  # type: ignore[attr-defined]  # reads no load: lazy runs may skip catch-up
    return pick


def least_outstanding() -> Pick:
    """The instance with the fewest tokens of work left (prompt tokens to prefill + outputs to generate)."""

    def pick(load: PoolLoad, request: Any) -> int:
        return load.least_outstanding()

    return pick


def least_kv() -> Pick:
    """The instance with the most free KV blocks (fraction), ties by outstanding work."""

    def pick(load: PoolLoad, request: Any) -> int:
        return min(range(len(load)), key=lambda i: (load.kv_used_frac(i), load.outstanding_tokens(i)))

    return pick


def kv_aware() -> Pick:
    """NVIDIA Dynamo's KV router: the lowest ``prefill blocks + decode blocks`` cost, cache hits counted.

    Each candidate's cost (:func:`twinfer.kvcache.choose_instance`, overlap
    weight 1) is the prompt work it would still have to do (its queued and
    running prefill plus the request's uncached tokens, in blocks) plus its
    active KV blocks: a long cached prefix wins unless its holder is busy.
    In a disaggregated fleet the pairing looks at the KV link too: a prefill
    instance's KV blocks still queued on its outbound link count as load (a
    request sent there waits behind them before its own KV reaches decode).
    Needs a prefix cache in the pool; a request without prefix keys goes to
    the least loaded instance.
    """

    def pick(load: PoolLoad, request: Any) -> int:
        keys = getattr(request, "keys", None)
        if keys is None:
            return load.least_outstanding()
        bt = load.prefix_block_tokens()
        snaps = []
        for i in range(len(load)):
            snap = load.prefix_snapshot(i)
            queued = load.kv_link_backlog_tokens(i)
            if queued > 0:
                snap = replace(snap, active_kv_blocks=snap.active_kv_blocks + math.ceil(queued / bt))
            snaps.append(snap)
        return choose_instance(keys, request.prompt_tokens, snaps, block_tokens=bt).instance_id

    return pick


ROUTERS: dict[str, Callable[[], Pick]] = {
    "round_robin": round_robin,
    "least_outstanding": least_outstanding,
    "least_kv": least_kv,
    "kv_aware": kv_aware,
}


def make_router(name: str, where: str = "router") -> Pick:
    """A fresh router for policy ``name`` (state is per router, never global)."""
    try:
        return ROUTERS[name]()
    except KeyError:
        raise UnknownNameError(f"{where}: unknown routing policy {name!r}; choose one of {', '.join(ROUTERS)}") from None
