"""The decode batch of a speculative pool: every member verifies ``k + 1`` tokens per step and keeps a random prefix.

Each decode step of a speculative pool is one verify step: every member
computes ``k + 1`` query tokens (its last sampled token and ``k`` drafts),
priced by the backend as a decode step with ``decode_extra_tokens = k`` per
member (:class:`~twinfer.perf.speculative_cost.SpeculativeStepCost` adds the
drafter). A member then emits the accepted drafts plus the target's own
token: ``1 .. k + 1`` tokens, capped at the tokens it still wants.

Tokens per step are drawn per request from its own stream,
``default_rng([seed, STREAM_SALT, rid])``, with
:func:`twinfer.perf.speculative.draw_tokens_per_step`: a request's draws do
not depend on what else runs, and a run depends only on (config, seed). A
preempted request resumes its stream where it stopped.

:class:`SpeculativeScheduler` keeps the scheduler's lazy bookkeeping: its
token counter ``dtok`` advances ``k + 1`` per step, and at join each member
gets the table of tokens emitted after ``j`` steps, so its finish step and
KV block boundaries are known in advance (the heaps of
:mod:`twinfer.sim.decode_batch`). What varies per member is summed once per
step (O(members)): the batch's context growth and the zero gaps of tokens
that arrive together. Speculative pools therefore run step by step, never
as closed-form decode runs; other pools are unaffected.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from typing import Any

import numpy as np

from twinfer.errors import ConfigError
from twinfer.perf.speculative import (
    SpeculativeConfig,
    draw_tokens_per_step,
    expected_tokens_per_step,
)
from twinfer.sim.batching import BatchingConfig
from twinfer.sim.request import Request, RequestState
from twinfer.sim.scheduler import Scheduler

#: Second word of every per-request stream's seed: keeps them apart from other streams seeded by ``seed``.
STREAM_SALT = 0x5BEC


class _Stream:
    """One request's draws: its generator, the tokens each verify step yields (uncapped), and the next unused one."""

    __slots__ = ("rng", "yields", "pos")

    def __init__(self, seed: int, rid: int) -> None:
        self.rng = np.random.default_rng([seed, STREAM_SALT, rid])
        self.yields: list[int] = []
        self.pos = 0


class SpeculativeScheduler(Scheduler):
    """A :class:`Scheduler` whose decode steps verify ``k`` drafts per member (module docstring)."""

    def __init__(self, role: str, config: BatchingConfig, kv_capacity_tokens: int, max_batch_seqs: int,
                 track_tokens: bool, spec: SpeculativeConfig, seed: int) -> None:
        super().__init__(role, config, kv_capacity_tokens, max_batch_seqs, track_tokens)
        if spec.k + 1 > config.block_tokens:
            raise ConfigError(f"speculative k={spec.k} verifies {spec.k + 1} tokens per step, more than a KV block "
                              f"of {config.block_tokens}; raise batching.block_tokens or lower k")
        self.spec = spec
        self.seed = seed
        self.tps = spec.k + 1  # query tokens per member per step (the KV it writes); the counter's stride
        self._mean = expected_tokens_per_step(spec)
        self._streams: dict[int, _Stream] = {}
        self._cum: dict[int, list[int]] = {}  # rid -> tokens emitted after j steps since it joined (capped)
        self.member_steps = 0  # verify steps summed over members
        self.emitted_tokens = 0  # tokens those steps emitted (capped at each request's output)
        self.drawn_steps = 0  # steps whose draws were used (counted when members leave) ...
        self.drawn_tokens = 0  # ... and the tokens those draws yielded, uncapped

    # ---- per-request draws -------------------------------------------------------
    def _schedule_tokens(self, r: Request) -> list[int]:
        """The cumulative tokens ``r`` emits over its next verify steps here, until it has all it wants."""
        st = self._streams.get(r.rid)
        if st is None:
            st = self._streams[r.rid] = _Stream(self.seed, r.rid)
        want = r.output_tokens - r.generated
        cum, total, i = [0], 0, st.pos
        ys = st.yields
        while total < want:
            if i >= len(ys):  # enough draws for the expected steps left, and a margin
                size = int((want - total) / self._mean * 1.25) + 8
                ys.extend(draw_tokens_per_step(self.spec, st.rng, size).tolist())
            y = ys[i]
            total += y if y < want - total else want - total
            cum.append(total)
            i += 1
        return cum

    # ---- the decode batch, with per-member tokens per step ---------------------------
    def _join(self, r: Request) -> None:
        cum = self._cum[r.rid] = self._schedule_tokens(r)
        r.state = RequestState.DECODING
        r.join_tok = self.dtok
        r.gen_at_join = r.generated
        self.decoding[r.rid] = r
        self.ctx_sum += r.prompt_tokens + r.generated
        self._seq += 1
        heapq.heappush(self._finish_heap, (self.dtok + (len(cum) - 1) * self.tps, self._seq, r, r.epoch))
        if not self.reserve:
            heapq.heappush(self._block_heap, (max(self.dtok, self._next_block_tok(r)), self._seq, r, r.epoch))
        self._fresh.append(r)

    def _next_block_tok(self, r: Request) -> int:
        """Counter value of the first step whose KV (context + k drafts) outgrows ``r``'s blocks; past its end if none."""
        cum = self._cum[r.rid]
        room = r.blocks * self.bt - r.prompt_tokens - r.gen_at_join - (self.tps - 1)
        j = bisect_right(cum, room)  # first step j whose start context exceeds the room (j = len: never)
        return r.join_tok + j * self.tps

    def _generated_now(self, r: Request) -> int:
        cum = self._cum[r.rid]
        j = (self.dtok - r.join_tok) // self.tps
        return r.gen_at_join + cum[j if j < len(cum) else -1]

    def _leave(self, r: Request) -> None:
        steps = min((self.dtok - r.join_tok) // self.tps, len(self._cum[r.rid]) - 1)
        super()._leave(r)
        st = self._streams[r.rid]
        self.drawn_steps += steps
        self.drawn_tokens += sum(st.yields[st.pos:st.pos + steps])
        st.pos += steps
        del self._cum[r.rid]
        if r.generated >= r.output_tokens:  # done: its stream is not needed again (a preempted one resumes it)
            del self._streams[r.rid]

    def drop_cancelled(self) -> list[Request]:
        """As the scheduler's, and the streams of the requests that left are dropped (they will not decode again)."""
        dropped = super().drop_cancelled()
        for r in dropped:
            self._streams.pop(r.rid, None)
        return dropped

    def advance_decode_run(self, n: int, steps: int, t_end: float, max_gap: float | None) -> None:
        """Apply ``steps`` verify steps: the base counters, then each member's true tokens instead of ``k + 1``."""
        for _ in range(steps):
            emitted = 0
            dtok, tps = self.dtok, self.tps
            cums = self._cum
            for r in self.decoding.values():
                cum = cums[r.rid]
                j = (dtok - r.join_tok) // tps
                emitted += cum[j + 1] - cum[j]
            super().advance_decode_run(n, 1, t_end, max_gap)
            over = n * tps - emitted  # the base counted k + 1 tokens per member
            self.ctx_sum -= over
            self.outstanding += over
            self.member_steps += n
            self.emitted_tokens += emitted
            if emitted > n:  # the tokens after each member's first arrive with it: zero gaps
                h = self.tbt_hist
                h[0] = h.get(0, 0) + emitted - n

    def record_gaps(self, gap: float, members: int, tokens_each: int = 1) -> None:
        """The first token's gap of each member; the zero gaps of the rest are added per step (advance_decode_run)."""
        super().record_gaps(gap, members)

    def steps_to_event(self) -> int:
        """0: every verify step is scheduled on its own (tokens per step differ by member)."""
        return 0

    def steady_decode_steps(self) -> int:
        """0: see :meth:`steps_to_event`."""
        return 0

    def join_and_run_steps(self) -> int:
        """0: see :meth:`steps_to_event`."""
        return 0

    def stats(self) -> dict[str, Any]:
        """Counters for the summary: member verify steps, tokens emitted, draws used."""
        return {"member_steps": self.member_steps, "emitted_tokens": self.emitted_tokens,
                "drawn_steps": self.drawn_steps, "drawn_tokens": self.drawn_tokens}


def speculative_summary(key: str, spec: SpeculativeConfig | None, scheds: list[Any]) -> dict[str, Any]:
    """Summary entries of a pool (``key`` = ``pool.<role>``): its speculative settings and what the run measured.

    ``tokens_per_step`` is the mean tokens a member emitted per verify step
    (capped at each request's output, as clients see them);
    ``drawn_tokens_per_step`` the mean of the draws used, uncapped (what
    ``expected_tokens_per_step``, the closed form, predicts). Empty for a
    pool that does not speculate.
    """
    if spec is None:
        return {}
    member_steps = sum(s.member_steps for s in scheds)
    drawn_steps = sum(s.drawn_steps for s in scheds)
    k = f"{key}.speculative"
    own = {f"{k}.draft_hardware": spec.draft_devices.hardware} if spec.draft_devices is not None else {}
    return own | {
        f"{k}.method": spec.method, f"{k}.k": spec.k, f"{k}.acceptance": list(spec.acceptance),
        f"{k}.draft_model": spec.draft_model, f"{k}.verify_steps": member_steps,
        f"{k}.expected_tokens_per_step": expected_tokens_per_step(spec),
        f"{k}.tokens_per_step": sum(s.emitted_tokens for s in scheds) / member_steps if member_steps else math.nan,
        f"{k}.drawn_tokens_per_step": sum(s.drawn_tokens for s in scheds) / drawn_steps if drawn_steps else math.nan,
    }
