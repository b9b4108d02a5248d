"""The staircase search finds, with fewer simulations, the same smallest feasible fleets as exhaustive."""

from __future__ import annotations

import itertools

from twinfer.plan.search import search
from twinfer.plan.space import Candidate, PoolChoice


def _disagg(n_p: int, n_d: int, hw: str = "h100") -> Candidate:
    return Candidate("disaggregated", (PoolChoice(role="prefill", hardware=hw, count=n_p, tp=4),
                                       PoolChoice(role="decode", hardware=hw, count=n_d, tp=4)))


def _oracle(need_p: dict[float, int], need_d: dict[float, int], calls: list):
    """A monotone feasibility rule: enough prefill and decode instances for the rate."""

    def simulate(pairs):
        calls.extend(pairs)
        return {(c.key, r): c.pools[0].count >= need_p[r] and c.pools[1].count >= need_d[r] for c, r in pairs}

    return simulate


def test_staircase_finds_the_smallest_feasible_count_per_group() -> None:
    rates = [1.0, 4.0]
    need_p, need_d = {1.0: 1, 4.0: 2}, {1.0: 2, 4.0: 7}
    survivors = [(_disagg(p, d), r) for p, d in itertools.product(range(1, 9), range(1, 9)) for r in rates]
    stair: list = []
    rounds = search(survivors, _oracle(need_p, need_d, stair), "staircase")
    full: list = []
    search(survivors, _oracle(need_p, need_d, full), "exhaustive")
    assert len(full) == 8 * 8 * 2
    assert len(stair) <= 16 * 4 and rounds <= 4  # 16 groups (prefill count x rate), <= log2(8) + 1 probes each
    feasible = {(c.key, r) for c, r in stair if c.pools[0].count >= need_p[r] and c.pools[1].count >= need_d[r]}
    # for every prefill count that can work, the smallest feasible decode count was simulated
    for r in rates:
        for p in range(need_p[r], 9):
            assert (_disagg(p, need_d[r]).key, r) in feasible
    # and the cheapest feasible fleet per rate (cost = instances here) is among the simulated ones
    for r in rates:
        cheapest = min((c for c, rr in survivors if rr == r and c.pools[0].count >= need_p[r]
                        and c.pools[1].count >= need_d[r]), key=lambda c: c.pools[0].count + c.pools[1].count)
        assert (cheapest.key, r) in feasible


def test_staircase_with_nothing_feasible_probes_each_group_logarithmically() -> None:
    survivors = [(_disagg(1, d), 2.0) for d in range(1, 17)]
    calls: list = []
    search(survivors, _oracle({2.0: 9}, {2.0: 99}, calls), "staircase")
    assert len(calls) == 5  # binary search over 16 options that all fail: 8, 12, 14, 15, 16 -> 5 probes
