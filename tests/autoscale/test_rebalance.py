"""Rebalancing planner: decisions on hand-made signal sequences, worked out window by window."""

from __future__ import annotations

import pytest

from twinfer.autoscale.rebalance import (
    FleetState,
    PlannerAction,
    PlannerConfig,
    WindowSignals,
    paid_instances_timeline,
    plan_step,
)
from twinfer.errors import ConfigError

CFG = PlannerConfig(ttft_slo_s=1.0, itl_slo_s=0.05, reconfig_delay_s=30.0, patience_windows=2)


def _sig(t: float, ttft: float | None, itl: float | None, pq: float = 0, dq: float = 0) -> WindowSignals:
    return WindowSignals(end_s=t, prefill_queue_depth=pq, decode_queue_depth=dq, ttft_p_s=ttft, itl_p_s=itl)


def _run(state: FleetState, signals: list[WindowSignals]) -> tuple[FleetState, list[tuple[FleetState, tuple[PlannerAction, ...]]]]:
    trace = []
    for sig in signals:
        state, actions = plan_step(CFG, state, sig)
        trace.append((state, actions))
    return state, trace


def test_prefill_pressure_moves_then_adds_then_cools_down() -> None:
    hot = [_sig(t, ttft=2.0, itl=0.01) for t in (10, 20, 30, 40, 50, 60, 70)]
    cold = [_sig(t, ttft=0.2, itl=0.005) for t in (80, 90, 100, 110, 120, 130)]
    _, trace = _run(FleetState(prefill=2, decode=2), hot + cold)
    acts = [(i, a) for i, (_, actions) in enumerate(trace) for a in actions]
    fleet = [(s.prefill, s.decode, s.paid_instances) for s, _ in trace]
    # t=10: first hot window (patience 2): nothing. t=20: second; decode is cold and above
    # its minimum of 1: move an instance decode -> prefill, serving prefill at 50.
    assert acts[0] == (1, PlannerAction("move", "prefill", 20.0, 50.0))
    assert fleet[1] == (2, 1, 4)
    # t=30, 40: in flight. t=50: it lands (3 prefill); that window measured the old fleet.
    assert fleet[4] == (3, 1, 4)
    # t=60, 70: hot twice more; decode is at its minimum: add a prefill instance at 70.
    assert acts[1] == (6, PlannerAction("add", "prefill", 70.0, 100.0))
    assert fleet[6] == (3, 1, 5)
    # t=100: the add lands. t=110, 120: both roles cold; decode (ITL 0.1 of its SLO) is
    # below prefill (0.2) but at its minimum, so a prefill instance goes, drained by 150.
    assert fleet[9] == (4, 1, 5)
    assert acts[2] == (11, PlannerAction("remove", "prefill", 120.0, 150.0))
    assert fleet[11] == (3, 1, 5)
    assert len(acts) == 3


def test_a_single_hot_window_is_not_enough() -> None:
    seq = [_sig(10, 2.0, 0.01), _sig(20, 0.6, 0.01), _sig(30, 2.0, 0.01), _sig(40, 0.6, 0.01)]
    _, trace = _run(FleetState(2, 2), seq)
    assert all(actions == () for _, actions in trace)


def test_decode_pressure_from_the_queue_adds_decode_when_prefill_is_busy() -> None:
    # ITL fine, but 9 requests queue for 2 decode instances (> 4 per instance). Prefill
    # TTFT at 0.7 of its SLO is neither hot nor cold, so nothing can move: add a decode.
    seq = [_sig(10, 0.7, 0.02, dq=9), _sig(20, 0.7, 0.02, dq=9)]
    state, trace = _run(FleetState(2, 2), seq)
    assert trace[1][1] == (PlannerAction("add", "decode", 20.0, 50.0),)
    state, actions = plan_step(CFG, state, _sig(50, 0.7, 0.02))
    assert (state.prefill, state.decode, state.pending) == (2, 3, ())


def test_both_hot_grows_the_role_further_over_its_slo() -> None:
    seq = [_sig(10, 1.5, 0.1), _sig(20, 1.5, 0.1)]  # TTFT 1.5x its SLO, ITL 2x
    _, trace = _run(FleetState(2, 2), seq)
    assert trace[1][1] == (PlannerAction("add", "decode", 20.0, 50.0),)


def test_max_instances_caps_growth() -> None:
    cfg = PlannerConfig(ttft_slo_s=1.0, itl_slo_s=0.05, reconfig_delay_s=0.0, max_instances=4)
    state = FleetState(2, 2)
    for t in (10, 20, 30):
        state, actions = plan_step(cfg, state, _sig(t, 3.0, 0.1))
        assert actions == ()


def test_paid_timeline_counts_starting_and_draining_instances() -> None:
    actions = [
        PlannerAction("move", "prefill", 20.0, 50.0),
        PlannerAction("add", "prefill", 50.0, 80.0),
        PlannerAction("remove", "prefill", 100.0, 130.0),
    ]
    assert paid_instances_timeline(4, actions) == ((0.0, 4), (50.0, 5), (130.0, 4))


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="cold_ratio"):
        PlannerConfig(ttft_slo_s=1, itl_slo_s=1, reconfig_delay_s=0, cold_ratio=1.5)
    with pytest.raises(ConfigError, match="ttft_slo_s"):
        PlannerConfig(ttft_slo_s=0, itl_slo_s=1, reconfig_delay_s=0)
    with pytest.raises(ConfigError, match="max_instances"):
        PlannerConfig(ttft_slo_s=1, itl_slo_s=1, reconfig_delay_s=0, max_instances=1)


def test_a_per_role_ceiling_counts_instances_joining_the_role() -> None:
    cfg = PlannerConfig(ttft_slo_s=1.0, itl_slo_s=0.05, reconfig_delay_s=30.0, patience_windows=1, max_prefill=3)
    state = FleetState(prefill=2, decode=2)
    state, actions = plan_step(cfg, state, _sig(10, ttft=2.0, itl=0.03))  # decode not cold: add prefill
    assert actions == (PlannerAction("add", "prefill", 10.0, 40.0),)
    state, _ = plan_step(cfg, state, _sig(40, ttft=2.0, itl=0.03))  # lands: 3 prefill
    state, actions = plan_step(cfg, state, _sig(50, ttft=2.0, itl=0.03))
    assert (state.prefill, actions) == (3, ())
    with pytest.raises(ConfigError, match="max_decode"):
        PlannerConfig(ttft_slo_s=1.0, itl_slo_s=0.05, reconfig_delay_s=1.0, min_decode=2, max_decode=1)
