"""Single-pool planner (aggregated fleets): hot when either phase is, cold when both are, worked window by window."""

from __future__ import annotations

from twinfer.autoscale.rebalance import PlannerAction, PlannerConfig, WindowSignals
from twinfer.autoscale.single_pool import PoolState, plan_step_pool

CFG = PlannerConfig(ttft_slo_s=1.0, itl_slo_s=0.05, reconfig_delay_s=30.0, patience_windows=2)


def _sig(t: float, ttft: float | None, itl: float | None, q: float = 0) -> WindowSignals:
    return WindowSignals(end_s=t, prefill_queue_depth=q, decode_queue_depth=0, ttft_p_s=ttft, itl_p_s=itl)


def _run(state: PoolState, signals: list[WindowSignals], lo: int = 1, hi: int = 4) -> list[tuple[PoolState, tuple]]:
    trace = []
    for sig in signals:
        state, actions = plan_step_pool(CFG, state, sig, lo, hi)
        trace.append((state, actions))
    return trace


def test_itl_alone_makes_the_pool_hot_and_it_grows_after_patience_plus_delay() -> None:
    # TTFT fine (0.3 of its SLO), ITL 1.6x: hot. Two windows -> add at 20, serving at 50.
    trace = _run(PoolState(2), [_sig(t, 0.3, 0.08) for t in (10, 20, 30, 40, 50, 60)])
    assert trace[0][1] == ()
    assert trace[1][1] == (PlannerAction("add", "mixed", 20.0, 50.0),)
    assert [s.paid_instances for s, _ in trace] == [2, 3, 3, 3, 3, 3]
    assert [s.serving for s, _ in trace] == [2, 2, 2, 2, 3, 3]
    # windows ending at 30, 40 (in flight) and 50 (landed) do not count: the next add can come at 70 at the earliest
    assert all(a == () for _, a in trace[2:])


def test_queue_per_instance_makes_it_hot_and_the_ceiling_stops_growth() -> None:
    # 9 queued on 2 instances (> 4 each); at the ceiling of 2 nothing is added
    trace = _run(PoolState(2), [_sig(10, 0.2, 0.01, q=9), _sig(20, 0.2, 0.01, q=9)], hi=2)
    assert all(a == () for _, a in trace)
    trace = _run(PoolState(2), [_sig(10, 0.2, 0.01, q=9), _sig(20, 0.2, 0.01, q=9)], hi=3)
    assert trace[1][1] == (PlannerAction("add", "mixed", 20.0, 50.0),)


def test_cold_needs_both_phases_cold_and_stops_at_the_floor() -> None:
    # ITL at 0.6 of its SLO is not cold (>= 0.5): no removal however long
    assert all(a == () for _, a in _run(PoolState(3), [_sig(t, 0.1, 0.03) for t in (10, 20, 30, 40)]))
    trace = _run(PoolState(2), [_sig(t, 0.1, 0.01) for t in (10, 20, 30, 40, 50, 60, 70, 80, 90)], lo=1)
    acts = [a for _, actions in trace for a in actions]
    assert acts == [PlannerAction("remove", "mixed", 20.0, 50.0)]
    assert trace[-1][0].serving == 1 and trace[-1][0].pending == ()
