"""The rebalancing planner for an aggregated fleet: one ``mixed`` pool that grows and shrinks.

An aggregated instance both prefills and decodes, so there is nothing to move
between roles: the pool is *hot* when either phase is hot and *cold* when both
are cold, by the same tests as :mod:`twinfer.autoscale.rebalance` (TTFT and the
queue for prefill, ITL for decode), with the same patience and the same rule
that a window measured while a change was in flight (or landed) does not count.
The pool's floor and ceiling (paid instances, transitions included) are
arguments; the rest of :class:`PlannerConfig` applies as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from twinfer.autoscale.rebalance import (
    FleetState,
    PlannerAction,
    PlannerConfig,
    WindowSignals,
    _pressure,
)

ROLE = "mixed"


@dataclass(frozen=True)
class PoolState:
    """Instances serving the pool, changes in flight, and the planner's streak counters."""

    serving: int
    pending: tuple[PlannerAction, ...] = ()  # decided, not yet effective
    hot_windows: int = 0
    cold_windows: int = 0

    @property
    def paid_instances(self) -> int:
        """Serving instances plus those starting or draining."""
        return self.serving + len(self.pending)


def plan_step_pool(cfg: PlannerConfig, state: PoolState, signals: WindowSignals, min_instances: int,
                   max_instances: int) -> tuple[PoolState, tuple[PlannerAction, ...]]:
    """Advance the single-pool planner by one window: land due changes, then maybe add or remove one instance."""
    now = signals.end_s
    serving, waiting = state.serving, []
    for action in state.pending:
        if action.effective_at_s > now:
            waiting.append(action)
        elif action.kind == "add":
            serving += 1
    if state.pending:  # measured while the pool was changing
        return PoolState(serving, tuple(waiting)), ()
    p_hot, d_hot, p_cold, d_cold = _pressure(cfg, FleetState(serving, serving), signals)
    hot, cold = p_hot or d_hot, p_cold and d_cold
    state = replace(state, serving=serving, hot_windows=state.hot_windows + 1 if hot else 0,
                    cold_windows=state.cold_windows + 1 if cold else 0)
    if state.hot_windows >= cfg.patience_windows and state.paid_instances < max_instances:
        action = PlannerAction("add", ROLE, now, now + cfg.reconfig_delay_s)
        return PoolState(serving, (action,)), (action,)
    if state.cold_windows >= cfg.patience_windows and serving > min_instances:
        action = PlannerAction("remove", ROLE, now, now + cfg.reconfig_delay_s)
        return PoolState(serving - 1, (action,)), (action,)
    return state, ()
