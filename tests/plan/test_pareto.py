"""Pareto frontier on hand-made points."""

from __future__ import annotations

from twinfer.plan.pareto import dominates, pareto_front


def test_dominates_needs_no_worse_everywhere_and_better_somewhere() -> None:
    assert dominates((1, 1), (1, 2))
    assert not dominates((1, 2), (1, 2))
    assert not dominates((0, 3), (1, 2))


def test_front_of_cost_latency_points() -> None:
    # (cost $/h, latency s): A cheap+slow, B mid, C dear+fast, D worse than B on both, E equal to B
    pts = [(10, 5.0), (20, 2.0), (40, 1.0), (25, 2.5), (20, 2.0)]
    assert pareto_front(pts) == [0, 1, 2, 4]


def test_front_in_three_objectives() -> None:
    # the third objective (power) rescues a point that is dominated on the first two
    pts = [(10, 1.0, 500), (10, 1.0, 600), (12, 1.5, 100), (12, 1.6, 100)]
    assert pareto_front(pts) == [0, 2]
    assert pareto_front([]) == []
    assert pareto_front([(1, 1)]) == [0]
