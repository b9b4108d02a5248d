"""Synthetic chat sessions: shared system prompts and multi-turn conversations, with prefix block ids.

Each session picks one of ``system_prompts`` shared system prompts of
``system_prompt_tokens`` tokens, then runs a number of turns. Turn k's prompt
is the system prompt plus every earlier user message and reply plus the new
user message, so each turn extends the last one's context. Arrivals: the
first turn at the session's start, each next one a think gap later
(exponential, mean ``think_time_s``, counted from the previous turn's arrival:
the workload is open-loop, so pick a think time that includes the reply time).

Prompts are cut into blocks of ``block_tokens``. Every block completely filled
with content gets an id when it fills up, and keeps it in every later prompt
of the session; a prompt's last, partly filled block gets a fresh id each time
(its content changes as the context grows). The full blocks of a system prompt
share ids across sessions. So equal leading ids mean equal prefixes, as in the
Mooncake trace, and ``len(ids) == ceil(prompt_tokens / block_tokens)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twinfer.errors import ConfigError
from twinfer.workload.types import Workload

#: Draws ``n`` integer lengths (>= 1) from a configured distribution.
LengthSampler = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class SessionShape:
    """The fixed knobs of a session workload (the distributions come as samplers)."""

    system_prompts: int = 1  # distinct shared system prompts
    system_prompt_tokens: int = 0  # tokens of each system prompt
    think_time_s: float = 30.0  # mean gap between a session's turns
    block_tokens: int = 16  # KV block size of the ids (vLLM's default block)

    def __post_init__(self) -> None:
        if self.system_prompts < 1 or self.system_prompt_tokens < 0 or self.block_tokens < 1:
            raise ConfigError(
                "sessions: system_prompts and block_tokens must be >= 1 and system_prompt_tokens >= 0"
            )
        if not (self.think_time_s >= 0 and math.isfinite(self.think_time_s)):
            raise ConfigError(f"sessions.think_time_s must be >= 0, got {self.think_time_s!r}")


class _IdSource:
    """Fresh block ids, counting up from ``start`` (one per workload, so ids never collide)."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self, n: int) -> list[int]:
        out = list(range(self.next, self.next + n))
        self.next += n
        return out


def session_workload(
    starts_s: np.ndarray,
    shape: SessionShape,
    rng: np.random.Generator,
    turns: LengthSampler,
    user_tokens: LengthSampler,
    reply_tokens: LengthSampler,
    name: str = "sessions",
    source: str = "synthetic sessions",
) -> Workload:
    """A workload of sessions starting at ``starts_s`` (see the module doc).

    Draw order (fixes the random stream): system prompt per session, turns per
    session, then for all turns user lengths, reply lengths and think gaps.
    """
    n = len(starts_s)
    block = shape.block_tokens
    system_choice = rng.integers(0, shape.system_prompts, size=n)
    turn_counts = np.asarray(turns(n), dtype=np.int64)
    if n and turn_counts.min() < 1:
        raise ConfigError("sessions.turns: every session needs at least one turn")
    total = int(turn_counts.sum())
    users = np.asarray(user_tokens(total), dtype=np.int64)
    replies = np.asarray(reply_tokens(total), dtype=np.int64)
    gaps = rng.exponential(shape.think_time_s, size=total) if shape.think_time_s > 0 else np.zeros(total)

    sys_full = shape.system_prompt_tokens // block
    ids = _IdSource(shape.system_prompts * sys_full)
    arrival = np.empty(total)
    prompt = np.empty(total, dtype=np.int64)
    block_ids: list[np.ndarray] = []
    turn = 0
    for s in range(n):
        first = int(system_choice[s]) * sys_full
        full = list(range(first, first + sys_full))  # ids of completely filled blocks so far
        tail = shape.system_prompt_tokens % block  # tokens in the partly filled block
        context = shape.system_prompt_tokens
        t = float(starts_s[s])
        for k in range(int(turn_counts[s])):
            if k:
                t += float(gaps[turn])
            user = int(users[turn])
            full += ids.take((tail + user) // block)
            tail = (tail + user) % block
            context += user
            arrival[turn] = t
            prompt[turn] = context
            block_ids.append(np.asarray(full + (ids.take(1) if tail else []), dtype=np.int64))
            reply = int(replies[turn])
            full += ids.take((tail + reply) // block)
            tail = (tail + reply) % block
            context += reply
            turn += 1
    order = np.argsort(arrival, kind="stable")
    return Workload(
        arrival_s=arrival[order],
        prompt_tokens=prompt[order],
        output_tokens=replies[order],
        name=name,
        source=source,
        prefix_block_ids=tuple(block_ids[int(i)] for i in order),
        prefix_block_tokens=block,
    )
