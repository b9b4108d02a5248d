"""Batching vocabulary shared by the scheduler, instances and the emulation server, and the batching policies.

``BatchingConfig`` is a pool's batching settings; ``SchedulerOutput`` is one
scheduled step and ``StepResult`` what its end changed (vLLM v1's
``SchedulerOutput`` / ``update_from_output`` contract, as plain classes).
``BATCHING_POLICIES`` maps a policy name to how it fills a step from the
scheduler's queues: adding a policy is one entry here (and its test).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from twinfer.errors import ConfigError
from twinfer.models.step import StepShape
from twinfer.sim.request import Request

KV_POLICIES = ("reserve", "preempt")

#: Blocked reasons reported in SchedulerOutput.blocked.
BLOCKED_NONE, BLOCKED_KV, BLOCKED_BATCH = 0, 1, 2

#: TBT histogram: log bins of 1 % width from 1 microsecond to ~1e4 s.
TBT_BIN_BASE = 1e-6
TBT_BIN_LOG_STEP = math.log(1.01)
TBT_NUM_BINS = int(math.log(1e10) / TBT_BIN_LOG_STEP) + 2


#: Safe interiors of the bins: a gap strictly between TBT_BIN_INNER[b] is in bin b by
#: :func:`tbt_bin`'s formula (margins of 1e-9 dwarf its float error, ~1e-15), so a
#: hot loop may test membership without a logarithm. Bin 0's interior is empty.
TBT_BIN_INNER: list[tuple[float, float]] = [(0.0, 0.0)] + [
    (TBT_BIN_BASE * math.exp((b - 1) * TBT_BIN_LOG_STEP) * (1 + 1e-9),
     TBT_BIN_BASE * math.exp(b * TBT_BIN_LOG_STEP) * (1 - 1e-9)) for b in range(1, TBT_NUM_BINS + 1)]


def tbt_bin_interior(b: int) -> tuple[float, float]:
    """Bin ``b``'s safe interior (see :data:`TBT_BIN_INNER`); empty beyond the table."""
    return TBT_BIN_INNER[b] if b < len(TBT_BIN_INNER) else (0.0, 0.0)


def tbt_bin(gap_s: float) -> int:
    """The TBT histogram bin of a token gap: 0 up to 1 us, then bin b covers [base*1.01**(b-1), base*1.01**b)."""
    return int(math.log(gap_s / TBT_BIN_BASE) / TBT_BIN_LOG_STEP) + 1 if gap_s > TBT_BIN_BASE else 0


@dataclass(frozen=True)
class BatchingConfig:
    """How one instance batches: policy, caps, and what to do when KV is full."""

    policy: str = "chunked"  # continuous | chunked | static
    max_batch_seqs: int | None = None  # cap on sequences per step; None: the backend's limit
    token_budget: int = 2048  # tokens per step (chunked) / prompt tokens per step (continuous, static)
    kv_policy: str = "reserve"  # reserve | preempt
    block_tokens: int = 16  # KV block size (vLLM default: 16 tokens)

    def check(self, where: str) -> None:
        """Raise ConfigError naming ``where`` when a field is out of range."""
        if self.policy not in BATCHING_POLICIES:
            raise ConfigError(f"{where}: unknown batching policy {self.policy!r}; "
                              f"choose one of {', '.join(BATCHING_POLICIES)}")
        if self.kv_policy not in KV_POLICIES:
            raise ConfigError(f"{where}: unknown kv_policy {self.kv_policy!r}; choose one of {', '.join(KV_POLICIES)}")
        if self.token_budget < 1 or self.block_tokens < 1:
            raise ConfigError(f"{where}: token_budget and block_tokens must be >= 1")
        if self.max_batch_seqs is not None and self.max_batch_seqs < 1:
            raise ConfigError(f"{where}: max_batch_seqs must be >= 1")


class SchedulerOutput:
    """One scheduled step: the prefill chunks, the decode batch, and its StepShape."""

    __slots__ = ("chunks", "n_decode", "decode_tokens", "shape", "joined", "admitted", "preempted", "blocked",
                 "members", "delay_s")

    def __init__(self) -> None:
        self.chunks: list[tuple[Request, int]] = []  # (request, new prompt tokens this step)
        self.n_decode = 0  # decode members in this step
        self.decode_tokens = 1  # tokens each decode member computes and emits this step
        self.shape: StepShape | None = None
        self.joined: list[Request] = []  # decode members in their first decode step
        self.admitted = 0  # requests taken from the waiting queue this step
        self.preempted = 0  # requests sent back to the waiting queue this step
        self.blocked = BLOCKED_NONE  # why the head of the waiting queue was held back
        self.members: list[Request] | None = None  # decode members (only when tracking tokens)
        self.delay_s = 0.0  # time the step waits before computing (KV reloaded from an offload tier)

    @property
    def num_tokens(self) -> int:
        """Tokens processed by the step (prompt chunk tokens + each decode member's tokens)."""
        return sum(n for _, n in self.chunks) + self.n_decode * self.decode_tokens

    def scheduled_tokens(self, decode_members: Iterable[Request]) -> dict[int, int]:
        """Tokens scheduled per request id, as vLLM's ``num_scheduled_tokens``: prompt chunks and decode tokens.

        ``decode_members`` is the step's decode batch (``members`` when the
        scheduler tracks tokens, else its ``decoding`` right after ``schedule``);
        built on demand, never in the simulator's hot path.
        """
        out = {r.rid: n for r, n in self.chunks}
        for r in decode_members:
            out[r.rid] = self.decode_tokens
        return out


class StepResult:
    """What a finished step changed: first tokens, finished requests, hand-offs."""

    __slots__ = ("first", "finished", "handoff", "resumed")

    def __init__(self) -> None:
        self.first: list[Request] = []  # emitted their first token at this step's end
        self.finished: list[Request] = []  # emitted their last token
        self.handoff: list[Request] = []  # prefill role: ready for KV transfer
        self.resumed: list[Request] = []  # recomputed after preemption: emitted a token


class PolicyQueues(Protocol):
    """What a batching policy sees of a scheduler (:class:`twinfer.sim.scheduler.Scheduler`)."""

    waiting: deque[Request]  # need (re)prefill, FCFS
    prefilling: list[Request]  # admitted, prompt partly computed
    decoding: dict[int, Request]  # the decode batch
    budget: int  # BatchingConfig.token_budget
    max_seqs: int  # sequences one step may hold
    reserved_remote: int  # slots held for requests whose KV is on its way

    def decode_all(self, out: SchedulerOutput) -> None:
        """Put every decode member in the step (allocating KV blocks, preempting if it must)."""

    def head_prefill(self) -> int:
        """Prompt tokens the queue's head still needs prefilled here (a prefix cache may cover some)."""
        ...

    def admit_head(self, out: SchedulerOutput, n: int) -> bool:
        """Admit the queue's head with a first chunk of ``n`` tokens; False (KV-blocked) if its KV does not fit."""
        ...

    def admit_whole(self, out: SchedulerOutput, seats: int) -> None:
        """Admit whole prompts from the queue's head, within the token budget and ``seats`` free slots."""


@dataclass(frozen=True)
class BatchingPolicy:
    """A batching policy: how it fills one step from the scheduler's queues, and the tokens a decode member computes.

    ``fill(queues, out)`` puts prompt chunks and the decode batch in ``out``.
    ``decode_tokens_per_step`` is what each decode member computes and emits in
    a step: 1, or k + 1 when verifying k speculative tokens (all accepted; at
    most ``block_tokens``). It is fixed per policy, so the simulator still
    applies long runs of decode steps at once.
    """

    fill: Callable[[PolicyQueues, SchedulerOutput], None]
    summary: str  # one line for error messages and docs
    decode_tokens_per_step: int = 1


def _fill_chunked(q: PolicyQueues, out: SchedulerOutput) -> None:
    q.decode_all(out)
    budget = q.budget - out.n_decode
    for r in q.prefilling:
        if budget <= 0:
            break
        n = min(r.prefill_target - r.computed, budget)
        out.chunks.append((r, n))
        budget -= n
    seats = q.max_seqs - len(q.decoding) - len(q.prefilling) - q.reserved_remote
    while q.waiting and budget > 0:
        if seats <= 0:
            out.blocked = BLOCKED_BATCH
            break
        n = min(q.head_prefill(), budget)
        if not q.admit_head(out, n):
            break
        budget -= n
        seats -= 1


def _fill_continuous(q: PolicyQueues, out: SchedulerOutput) -> None:
    q.admit_whole(out, q.max_seqs - len(q.decoding) - q.reserved_remote)
    if not out.chunks:
        q.decode_all(out)


def _fill_static(q: PolicyQueues, out: SchedulerOutput) -> None:
    if not q.decoding and not q.prefilling:
        q.admit_whole(out, q.max_seqs - q.reserved_remote)
    if not out.chunks:
        q.decode_all(out)


BATCHING_POLICIES: dict[str, BatchingPolicy] = {
    "continuous": BatchingPolicy(_fill_continuous, "vLLM v0 / Orca: whole prompts first; a step with new prompts "
                                 "holds no decodes; up to token_budget prompt tokens per step"),
    "chunked": BatchingPolicy(_fill_chunked, "Sarathi-Serve / vLLM v1: every decode, then prompt chunks up to "
                              "token_budget tokens in all (a decode counts one)"),
    "static": BatchingPolicy(_fill_static, "a batch is admitted only when the previous one has fully finished"),
}
