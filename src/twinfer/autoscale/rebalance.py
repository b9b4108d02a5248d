"""A rebalancing planner in the manner of NVIDIA Dynamo's: SLO signals in, fleet actions out.

Every window the fleet simulator hands :func:`plan_step` the window's signals
(queue depths, TTFT and ITL percentiles) and the current :class:`FleetState`;
it returns the next state and at most one :class:`PlannerAction`:

- a role is *hot* when its latency percentile exceeds ``hot_ratio`` x its SLO
  or its queue holds more than ``queue_per_instance_hot`` requests per serving
  instance (TTFT and the prefill queue for prefill, ITL and the decode queue
  for decode); *cold* when it is not hot, its queue is empty and its
  percentile is under ``cold_ratio`` x its SLO (or nothing was measured);
- after ``patience_windows`` hot windows in a row a role gets an instance:
  moved from the other role when that one is cold and above its minimum,
  otherwise added (up to ``max_instances``); when both roles are hot the one
  further over its SLO gets it;
- after ``patience_windows`` windows with both roles cold, one instance is
  removed from the role with the lower latency/SLO ratio (above its minimum);
- every action takes ``reconfig_delay_s`` (weights loaded, KV drained) and the
  planner waits for it to finish before the next one, as Dynamo's planner
  skips an adjustment while the previous scaling is still in progress; windows
  that end while a change is in flight, or when it lands, measured the old
  fleet and do not count toward the patience.

A moved or removed instance stops taking new work at the decision; a moved or
added one serves its role at ``effective_at_s``. Instances in transition are
paid for (see :func:`paid_instances_timeline`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from twinfer.errors import ConfigError

ROLES = ("prefill", "decode")
ACTION_KINDS = ("move", "add", "remove")


@dataclass(frozen=True)
class WindowSignals:
    """What the fleet measured over one planning window ending at ``end_s``."""

    end_s: float  # window end: the decision time
    prefill_queue_depth: float  # requests waiting for prefill at the window end
    decode_queue_depth: float  # requests waiting for a decode slot at the window end
    ttft_p_s: float | None  # TTFT percentile of requests whose first token came in the window
    itl_p_s: float | None  # inter-token latency percentile over the window


@dataclass(frozen=True)
class PlannerConfig:
    """SLO targets, thresholds and the reconfiguration delay of the rebalancing planner."""

    ttft_slo_s: float
    itl_slo_s: float
    reconfig_delay_s: float  # decision -> new role served (weights loaded, KV drained)
    hot_ratio: float = 1.0  # percentile / SLO above this: the role needs capacity
    cold_ratio: float = 0.5  # percentile / SLO below this (and an empty queue): slack
    queue_per_instance_hot: float = 4.0  # queued requests per serving instance above this: hot
    patience_windows: int = 2  # consecutive windows before acting
    min_prefill: int = 1
    min_decode: int = 1
    max_instances: int = 64  # paid instances, transitions included
    max_prefill: int | None = None  # instances serving or joining prefill (None: only max_instances caps)
    max_decode: int | None = None  # the same for decode

    def __post_init__(self) -> None:
        for name in ("ttft_slo_s", "itl_slo_s", "hot_ratio", "queue_per_instance_hot"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"planner.{name}: must be a positive number, got {value!r}")
        if not (0 <= self.reconfig_delay_s < math.inf):
            raise ConfigError(f"planner.reconfig_delay_s: must be >= 0, got {self.reconfig_delay_s!r}")
        if not 0 <= self.cold_ratio < self.hot_ratio:
            raise ConfigError(
                f"planner.cold_ratio: must be in [0, hot_ratio={self.hot_ratio}), got {self.cold_ratio!r}"
            )
        if self.patience_windows < 1 or self.min_prefill < 1 or self.min_decode < 1:
            raise ConfigError("planner: patience_windows, min_prefill and min_decode must be >= 1")
        for name, floor in (("max_prefill", self.min_prefill), ("max_decode", self.min_decode)):
            cap = getattr(self, name)
            if cap is not None and cap < floor:
                raise ConfigError(f"planner.{name} ({cap}) is below its minimum ({floor})")
        if self.max_instances < self.min_prefill + self.min_decode:
            raise ConfigError(
                f"planner.max_instances ({self.max_instances}) is below min_prefill + min_decode"
            )


@dataclass(frozen=True)
class PlannerAction:
    """One reconfiguration: ``move`` an instance to ``role``, ``add`` one to it, or ``remove`` one from it."""

    kind: str  # move | add | remove
    role: str  # move/add: the role that gains an instance; remove: the role that loses one
    decided_at_s: float
    effective_at_s: float  # decided_at_s + reconfig_delay_s


@dataclass(frozen=True)
class FleetState:
    """Instances serving each role, reconfigurations in flight, and the planner's streak counters."""

    prefill: int  # instances serving prefill now
    decode: int  # instances serving decode now
    pending: tuple[PlannerAction, ...] = ()  # decided, not yet effective
    prefill_hot_windows: int = 0
    decode_hot_windows: int = 0
    cold_windows: int = 0  # windows in a row with both roles cold

    @property
    def paid_instances(self) -> int:
        """Instances paid for: serving ones plus those starting, moving or draining."""
        return self.prefill + self.decode + len(self.pending)


def _ratio(value: float | None, slo: float) -> float:
    return 0.0 if value is None else value / slo


def _pressure(cfg: PlannerConfig, state: FleetState, sig: WindowSignals) -> tuple[bool, bool, bool, bool]:
    """(prefill hot, decode hot, prefill cold, decode cold) for this window."""
    p_ratio, d_ratio = _ratio(sig.ttft_p_s, cfg.ttft_slo_s), _ratio(sig.itl_p_s, cfg.itl_slo_s)
    p_hot = p_ratio > cfg.hot_ratio or sig.prefill_queue_depth > cfg.queue_per_instance_hot * max(state.prefill, 1)
    d_hot = d_ratio > cfg.hot_ratio or sig.decode_queue_depth > cfg.queue_per_instance_hot * max(state.decode, 1)
    p_cold = not p_hot and sig.prefill_queue_depth == 0 and p_ratio < cfg.cold_ratio
    d_cold = not d_hot and sig.decode_queue_depth == 0 and d_ratio < cfg.cold_ratio
    return p_hot, d_hot, p_cold, d_cold


def _apply_due(state: FleetState, now_s: float) -> FleetState:
    prefill, decode = state.prefill, state.decode
    waiting = []
    for action in state.pending:
        if action.effective_at_s > now_s:
            waiting.append(action)
        elif action.kind != "remove":
            prefill += action.role == "prefill"
            decode += action.role == "decode"
    return replace(state, prefill=prefill, decode=decode, pending=tuple(waiting))


def _act(cfg: PlannerConfig, state: FleetState, kind: str, role: str, now_s: float) -> tuple[FleetState, tuple[PlannerAction, ...]]:
    action = PlannerAction(kind, role, now_s, now_s + cfg.reconfig_delay_s)
    prefill, decode = state.prefill, state.decode
    if kind == "move":  # the source role gives an instance up now
        prefill -= role == "decode"
        decode -= role == "prefill"
    elif kind == "remove":
        prefill -= role == "prefill"
        decode -= role == "decode"
    new = FleetState(prefill, decode, (*state.pending, action))
    return new, (action,)


def _grow(cfg: PlannerConfig, state: FleetState, role: str, other_cold: bool, now_s: float) -> tuple[FleetState, tuple[PlannerAction, ...]]:
    cap = cfg.max_prefill if role == "prefill" else cfg.max_decode
    joining = sum(a.kind != "remove" and a.role == role for a in state.pending)
    if cap is not None and (state.prefill if role == "prefill" else state.decode) + joining >= cap:
        return state, ()
    other_count = state.decode if role == "prefill" else state.prefill
    other_min = cfg.min_decode if role == "prefill" else cfg.min_prefill
    if other_cold and other_count > other_min:
        return _act(cfg, state, "move", role, now_s)
    if state.paid_instances < cfg.max_instances:
        return _act(cfg, state, "add", role, now_s)
    return state, ()


def plan_step(cfg: PlannerConfig, state: FleetState, signals: WindowSignals) -> tuple[FleetState, tuple[PlannerAction, ...]]:
    """Advance the planner by one window: finish due reconfigurations, then maybe act (see module doc)."""
    now = signals.end_s
    before = len(state.pending)
    state = _apply_due(state, now)
    if before:  # measured while the fleet was changing: it says nothing about the new fleet
        return replace(state, prefill_hot_windows=0, decode_hot_windows=0, cold_windows=0), ()
    p_hot, d_hot, p_cold, d_cold = _pressure(cfg, state, signals)
    state = replace(
        state,
        prefill_hot_windows=state.prefill_hot_windows + 1 if p_hot else 0,
        decode_hot_windows=state.decode_hot_windows + 1 if d_hot else 0,
        cold_windows=state.cold_windows + 1 if p_cold and d_cold else 0,
    )
    ready = cfg.patience_windows
    p_ready, d_ready = state.prefill_hot_windows >= ready, state.decode_hot_windows >= ready
    if p_ready and d_ready:
        p_ratio = _ratio(signals.ttft_p_s, cfg.ttft_slo_s)
        role = "prefill" if p_ratio >= _ratio(signals.itl_p_s, cfg.itl_slo_s) else "decode"
        return _grow(cfg, state, role, False, now)
    if p_ready:
        return _grow(cfg, state, "prefill", d_cold, now)
    if d_ready:
        return _grow(cfg, state, "decode", p_cold, now)
    if state.cold_windows >= ready:
        p_ratio, d_ratio = _ratio(signals.ttft_p_s, cfg.ttft_slo_s), _ratio(signals.itl_p_s, cfg.itl_slo_s)
        order = ("prefill", "decode") if p_ratio < d_ratio else ("decode", "prefill")
        for role in order:
            count, floor = (state.prefill, cfg.min_prefill) if role == "prefill" else (state.decode, cfg.min_decode)
            if count > floor:
                return _act(cfg, state, "remove", role, now)
    return state, ()


def paid_instances_timeline(
    initial_instances: int, actions: Sequence[PlannerAction]
) -> tuple[tuple[float, int], ...]:
    """Paid-instance count after each change: +1 when an add is decided, -1 when a remove has drained.

    Moves change nothing (the instance is paid throughout). Starts at time 0
    with ``initial_instances``; feed the result to :func:`fleet_cost`.
    """
    changes: list[tuple[float, int]] = []
    for action in actions:
        if action.kind == "add":
            changes.append((action.decided_at_s, +1))
        elif action.kind == "remove":
            changes.append((action.effective_at_s, -1))
    changes.sort(key=lambda c: c[0])
    count = initial_instances
    out = [(0.0, count)]
    for time_s, delta in changes:
        count += delta
        if out[-1][0] == time_s:
            out[-1] = (time_s, count)
        else:
            out.append((time_s, count))
    return tuple(out)
