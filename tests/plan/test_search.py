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
    # 8 groups (prefill counts), each <= log2(8) + 1 probes per rate, rates one after the other
    assert len(stair) <= 8 * 2 * 4 and rounds <= 2 * 4
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


def test_a_rate_that_fails_everywhere_ends_the_group_and_found_counts_carry_up() -> None:
    rates = [1.0, 2.0, 4.0]
    survivors = [(_disagg(1, d), r) for d in range(1, 9) for r in rates]
    calls: list = []
    # feasible needs decode >= 3 at rate 1, >= 6 at rate 2, never at rate 4
    search(survivors, _oracle({1.0: 1, 2.0: 1, 4.0: 1}, {1.0: 3, 2.0: 6, 4.0: 99}, calls), "staircase")
    by_rate = {r: sorted(c.pools[1].count for c, rr in calls if rr == r) for r in rates}
    assert 3 in by_rate[1.0] and 6 in by_rate[2.0]  # the smallest feasible count at each rate was simulated
    assert min(by_rate[2.0]) >= 3  # the count found at rate 1 is the lower end at rate 2
    assert min(by_rate[4.0]) >= 6 and len(by_rate[4.0]) <= 2  # only counts 6..8 remain to try at rate 4
    calls.clear()
    search(survivors, _oracle({1.0: 1, 2.0: 1, 4.0: 1}, {1.0: 99, 2.0: 99, 4.0: 99}, calls), "staircase")
    assert {r for _, r in calls} == {1.0}  # nothing feasible at the lowest rate: higher rates are not tried
