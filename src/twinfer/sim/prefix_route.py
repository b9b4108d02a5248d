"""How routing and the prefix cache interact: the router's choice against the best possible hit.

:class:`RouteAudit` wraps a pool's router when the pool caches prefixes. For
every routed request with prefix keys it reads, without changing anything,
how many leading blocks the chosen instance holds and the most any instance
of the pool holds at that moment. Over a run this says how much of the
reachable reuse the router found (Dynamo's and llm-d's point: a cache-blind
router scatters a conversation over instances, and each one recomputes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RouteAudit:
    """Counts, per routed request, cached blocks on the chosen instance and the best instance."""

    __slots__ = ("_inner", "routed", "with_hit", "chose_best", "chosen_blocks", "best_blocks")

    def __init__(self, inner: Callable[[Any, Any], int]) -> None:
        self._inner = inner
        self.routed = 0  # requests with prefix keys routed
        self.with_hit = 0  # of which some instance held a leading block
        self.chose_best = 0  # of those, sent to an instance holding the most
        self.chosen_blocks = 0  # leading blocks held by the chosen instances, summed
        self.best_blocks = 0  # the most any instance held, summed

    def pick(self, load: Any, request: Any) -> int:
        """The wrapped router's choice, recorded."""
        i = self._inner(load, request)
        keys = request.keys
        if keys is not None and len(keys):
            matches = [load.prefix_match(j, keys) for j in range(len(load))]
            best = max(matches)
            self.routed += 1
            self.chosen_blocks += matches[i]
            self.best_blocks += best
            if best:
                self.with_hit += 1
                self.chose_best += matches[i] == best
        return i
