"""Which surviving (fleet, rate) pairs to simulate: all of them, or a staircase search over instance counts.

``exhaustive`` simulates every pair the bounds left. ``staircase`` (the
default) groups fleets that differ only in the *last* pool's instance count (the
decode pool of a disaggregated fleet, the only pool of an aggregated one) and,
per group, binary-searches the smallest count that meets the SLOs at each rate,
rates in ascending order, the count found at one rate being the lower end of
the search at the next; a rate where nothing is feasible ends the group. It
assumes feasibility does not fall when instances are added nor rise when the
rate grows, so the fleets it skips are infeasible (fewer instances than the
smallest feasible, or a higher rate than one that already failed) or feasible
but dearer than one it found. For every objective the winner is among the
found fleets: the cheapest fleet feasible at rate r is the smallest feasible
count of some group at r, and the best goodput per $ or per W is r / cost of
the cheapest feasible fleet at some grid rate r. It costs at most
``log2(counts) + 1`` simulations per group and rate, in rounds of parallel
simulations (one round per probe depth and rate).
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
class _GroupSearch:
    """Binary searches for the smallest feasible count of one group, one rate after another (ascending).

    The smallest feasible count at a rate is a lower bound at every higher rate,
    and a rate where nothing is feasible ends the group.
    """

    rates: list[tuple[float, list[Candidate]]]  # ascending rates, each with its options by count
    i: int = 0
    lo: int = 0
    hi: int = -1
    found: int | None = None
    min_count: int = 0

    def __post_init__(self) -> None:
        self._start()

    def _start(self) -> None:
        options = self.rates[self.i][1]
        self.lo = next((k for k, c in enumerate(options) if c.pools[-1].count >= self.min_count), len(options))
        self.hi, self.found = len(options) - 1, None

    def probe(self) -> Pair | None:
        """The next (candidate, rate) to simulate, or None when the group is settled."""
        while self.i < len(self.rates):
            rate, options = self.rates[self.i]
            if self.lo <= self.hi:
                return options[(self.lo + self.hi) // 2], rate
            if self.found is None:  # nothing feasible at this rate: nor at any higher one
                self.i = len(self.rates)
                return None
            self.min_count = options[self.found].pools[-1].count
            self.i += 1
            if self.i < len(self.rates):
                self._start()
        return None

    def update(self, feasible: bool) -> None:
        """Record the outcome of the last probe."""
        mid = (self.lo + self.hi) // 2
        if feasible:
            self.found, self.hi = mid, mid - 1
        else:
            self.lo = mid + 1


def _group_key(cand: Candidate) -> tuple:
    last = cand.pools[-1]
    return (cand.mode, cand.pools[:-1], last.role, last.hardware, last.tp, last.chips, last.max_batch_seqs,
            last.batching, last.afd)


def search(survivors: list[Pair], simulate: Simulate, strategy: str = "staircase") -> int:
    """Simulate the pairs ``strategy`` picks from ``survivors``; returns the number of rounds run."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"search.strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "exhaustive":
        if survivors:
            simulate(list(survivors))
        return 1 if survivors else 0
    groups: dict[tuple, dict[float, list[Candidate]]] = {}
    for cand, rate in survivors:
        groups.setdefault(_group_key(cand), {}).setdefault(rate, []).append(cand)
    searches = []
    for by_rate in groups.values():
        ordered = [(r, sorted(cs, key=lambda c: c.pools[-1].count)) for r, cs in sorted(by_rate.items())]
        searches.append(_GroupSearch(rates=ordered))
    rounds = 0
    while True:
        batch = [(s, p) for s in searches if (p := s.probe()) is not None]
        if not batch:
            return rounds
        rounds += 1
        feasible = simulate([p for _, p in batch])
        for s, (cand, rate) in batch:
            s.update(feasible.get((cand.key, rate), False))
