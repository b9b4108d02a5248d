"""Which surviving (fleet, rate) pairs to simulate: all of them, or a staircase search over instance counts.

``exhaustive`` simulates every pair the bounds left. ``staircase`` (the
default) groups fleets that differ only in the *last* pool's instance count (the
decode pool of a disaggregated fleet, the only pool of an aggregated one) and,
per group and rate, binary-searches the smallest count that meets the SLOs. It
assumes feasibility does not fall when instances are added, so the fleets it
skips are either infeasible (fewer instances than the smallest feasible) or
feasible but dearer than one it found (more instances). For every objective
the winner is one of the found fleets: the cheapest fleet feasible at rate r
is the smallest feasible count of some group at r, and the best goodput per $
or per W is r / cost of the cheapest feasible fleet at some grid rate r.
It costs about ``log2(counts) + 1`` simulations per group and rate instead of
``counts``, run in rounds of parallel simulations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twinfer.errors import ConfigError
from twinfer.plan.space import Candidate

STRATEGIES = ("staircase", "exhaustive")
Pair = tuple[Candidate, float]
#: Runs a batch of (candidate, rate) pairs; returns {(candidate key, rate): feasible}.
Simulate = Callable[[list[Pair]], dict[tuple[str, float], bool]]


@dataclass
class _Search:
    """Binary search for the first feasible index of ``options`` (counts ascending)."""

    options: list[Candidate]
    rate: float
    lo: int
    hi: int
    found: int | None = None

    def probe(self) -> Candidate | None:
        return self.options[(self.lo + self.hi) // 2] if self.lo <= self.hi else None

    def update(self, feasible: bool) -> None:
        mid = (self.lo + self.hi) // 2
        if feasible:
            self.found, self.hi = mid, mid - 1
        else:
            self.lo = mid + 1


def _group_key(cand: Candidate) -> tuple:
    last = cand.pools[-1]
    return (cand.mode, cand.pools[:-1], last.role, last.hardware, last.tp, last.chips, last.max_batch_seqs,
            last.batching)


def search(survivors: list[Pair], simulate: Simulate, strategy: str = "staircase") -> int:
    """Simulate the pairs ``strategy`` picks from ``survivors``; returns the number of rounds run."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"search.strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "exhaustive":
        if survivors:
            simulate(list(survivors))
        return 1 if survivors else 0
    groups: dict[tuple, list[Candidate]] = {}
    for cand, rate in survivors:
        groups.setdefault((_group_key(cand), rate), []).append(cand)
    searches = []
    for (_, rate), cands in groups.items():
        cands.sort(key=lambda c: c.pools[-1].count)
        searches.append(_Search(options=cands, rate=rate, lo=0, hi=len(cands) - 1))
    rounds = 0
    while True:
        batch = [(s, p) for s in searches if (p := s.probe()) is not None]
        if not batch:
            return rounds
        rounds += 1
        feasible = simulate([(p, s.rate) for s, p in batch])
        for s, p in batch:
            s.update(feasible.get((p.key, s.rate), False))
