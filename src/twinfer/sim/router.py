"""Routing policies: which instance of a pool gets a request.

``ROUTERS`` maps a policy name to a factory returning ``pick(instances, request)``;
adding a policy is adding one function to the dict. Ties go to the lowest
instance index, so runs are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import methodcaller
from typing import Any

from twinfer.errors import UnknownNameError
from twinfer.sim.instance import least_outstanding_of

Pick = Callable[[Sequence[Any], Any], Any]


def round_robin() -> Pick:
    """Cycle through the instances in order, ignoring load."""
    state = [0]

    def pick(instances: Sequence[Any], request: Any) -> Any:
        i = state[0] % len(instances)
        state[0] = i + 1
        return instances[i]

    pick.stateless = True  # type: ignore[attr-defined]  # reads no instance state: lazy runs may skip catch-up
    return pick


def least_outstanding() -> Pick:
    """The instance with the fewest tokens of work left (prompt tokens to prefill + outputs to generate)."""

    def pick(instances: Sequence[Any], request: Any) -> Any:
        return least_outstanding_of(instances)

    return pick


def least_kv() -> Pick:
    """The instance with the most free KV blocks (fraction), ties by outstanding work."""

    def pick(instances: Sequence[Any], request: Any) -> Any:
        return min(instances, key=_kv_then_work)

    return pick


_outstanding = methodcaller("outstanding_now")  # the instance's tokens of work left now (a C-level call)


def _kv_then_work(inst: Any) -> tuple[float, int]:
    return (inst.sched.kv_used_frac(), inst.outstanding_now())


ROUTERS: dict[str, Callable[[], Pick]] = {
    "round_robin": round_robin,
    "least_outstanding": least_outstanding,
    "least_kv": least_kv,
}


def make_router(name: str, where: str = "router") -> Pick:
    """A fresh router for policy ``name`` (state is per router, never global)."""
    try:
        return ROUTERS[name]()
    except KeyError:
        raise UnknownNameError(f"{where}: unknown routing policy {name!r}; choose one of {', '.join(ROUTERS)}") from None
