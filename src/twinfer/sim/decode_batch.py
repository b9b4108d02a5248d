"""The lazy decode batch of one instance: members, token counts, token gaps and finishes.

A decode step costs O(1) plus O(1) per member that joins, leaves or crosses a
KV block boundary. Every member computes the same tokens in a decode step (1,
or k + 1 when verifying k speculative tokens: the batching policy's
``decode_tokens_per_step``), so one counter ``dtok`` of tokens per member
stands for all: a member's token count is ``gen_at_join + dtok - join_tok``,
and heaps keyed by that counter say who finishes (and, for the preempt policy,
who needs a block) when. Token gaps go to a log-binned
TBT histogram and, for each member's max TBT, to a stack of suffix-maximum
gaps by step index. :class:`~twinfer.sim.scheduler.Scheduler` builds on it;
instances apply whole runs of plain decode steps through
:meth:`DecodeBatch.advance_decode_run` and :meth:`DecodeBatch.finish_due`.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left

from twinfer.sim.batching import TBT_BIN_INNER, StepResult, tbt_bin
from twinfer.sim.request import Request, RequestState

DECODING, DONE = RequestState.DECODING, RequestState.DONE
TBT_NUM_INNER = len(TBT_BIN_INNER)  # bins with a safe interior (twinfer.sim.batching.tbt_bin_interior)


class DecodeBatch:
    """Decode members and their bookkeeping; the scheduler that extends it owns KV blocks and work counts."""

    # Provided by the scheduler: block size, KV policy, free blocks and tokens of work left.
    bt: int
    reserve: bool
    free_blocks: int
    outstanding: int

    def __init__(self, tokens_per_step: int = 1) -> None:
        self.decoding: dict[int, Request] = {}  # insertion-ordered
        self.tps = tokens_per_step  # tokens each member computes and accepts in a decode step
        self.dtok = 0  # tokens a member in every decode step so far has emitted (steps x tps)
        self.ctx_sum = 0  # sum over members of prompt + generated
        self.last_decode_end = 0.0
        self._finish_heap: list[tuple[int, int, Request, int]] = []
        self._block_heap: list[tuple[int, int, Request, int]] = []
        self._seq = 0
        self._fresh: list[Request] = []  # joined, first decode step not yet run
        self._gap_k: list[int] = []  # token counter (dtok) at the steps of suffix-maximum gaps (for max TBT)
        self._gap_v: list[float] = []
        self.tbt_hist: dict[int, int] = {}  # bin -> token gaps
        self._bin, self._bin_lo, self._bin_hi = 0, 0.0, 0.0  # the last gap's bin and its safe interior

    def _join(self, r: Request) -> None:
        r.state = DECODING
        r.join_tok = self.dtok
        r.gen_at_join = r.generated
        self.decoding[r.rid] = r
        self.ctx_sum += r.prompt_tokens + r.generated
        self._seq += 1
        heapq.heappush(self._finish_heap, (self.dtok + r.output_tokens - r.generated, self._seq, r, r.epoch))
        if not self.reserve:
            heapq.heappush(self._block_heap, (max(self.dtok, self._next_block_tok(r)), self._seq, r, r.epoch))
        self._fresh.append(r)

    def _next_block_tok(self, r: Request) -> int:
        """Token counter (``dtok``) at whose decode step ``r``'s KV first needs one more block than it holds.

        A step starting at ``dtok`` writes the KV of the last token sampled and
        of the ``tps - 1`` drafts: ``prompt + generated + tps - 1`` tokens in all.
        """
        return r.join_tok + r.blocks * self.bt + 2 - self.tps - r.prompt_tokens - r.gen_at_join

    def _generated_now(self, r: Request) -> int:
        """Tokens ``r`` has emitted, counting a last step's tokens beyond its output (dropped when it leaves)."""
        return r.gen_at_join + self.dtok - r.join_tok

    def _max_gap_since(self, k: int) -> float:
        """Largest continuing gap among decode steps starting at token counter >= k."""
        i = bisect_left(self._gap_k, k)
        return self._gap_v[i] if i < len(self._gap_v) else 0.0

    def _leave(self, r: Request) -> None:
        del self.decoding[r.rid]
        r.epoch += 1
        r.generated = self._generated_now(r)
        gap = self._max_gap_since(r.join_tok + 1)  # the steps after its first here
        if gap > r.max_tbt_s:
            r.max_tbt_s = gap
        self.free_blocks += r.blocks
        r.blocks = 0

    def take_joiners(self) -> list[Request]:
        """Members whose first decode step is the next step (handed to a decode run)."""
        fresh, self._fresh = self._fresh, []
        return fresh

    def steps_to_event(self) -> int:
        """Decode steps up to and including the next that finishes a member (preempt: and before the next block)."""
        fh = self._finish_heap
        while fh and fh[0][3] != fh[0][2].epoch:
            heapq.heappop(fh)
        k = fh[0][0] - self.dtok
        if not self.reserve:
            bh = self._block_heap
            while bh and bh[0][3] != bh[0][2].epoch:
                heapq.heappop(bh)
            if bh:
                k = min(k, bh[0][0] - self.dtok)
        if self.tps != 1:
            k = -(-k // self.tps)  # steps until the counter reaches the key
        return max(0, k)

    def advance_decode(self, t_end: float, n: int) -> None:
        """Apply one plain decode step of ``n`` members ending at ``t_end`` (see steady_decode_steps)."""
        gap = t_end - self.last_decode_end
        self.record_gaps(gap, n, self.tps)
        self.advance_decode_run(n, 1, t_end, gap)

    def advance_decode_run(self, n: int, steps: int, t_end: float, max_gap: float | None) -> None:
        """Apply ``steps`` plain decode steps of ``n`` members, the last ending at ``t_end``.

        ``max_gap`` is the largest token gap among them; the caller has put their
        gaps in :attr:`tbt_hist`. Max-TBT queries always start at a run's first
        step (joins happen only at a run's first step, which then is a run of its
        own; finishes only at a run's last), so one gap-stack entry stands for the
        whole run. ``max_gap`` None: no member continued into these steps (all joined).
        """
        if max_gap is not None:
            gk, gv = self._gap_k, self._gap_v
            while gv and gv[-1] <= max_gap:
                gv.pop()
                gk.pop()
            gk.append(self.dtok)
            gv.append(max_gap)
        tokens = steps * self.tps
        self.dtok += tokens
        self.ctx_sum += n * tokens
        self.outstanding -= n * tokens
        self.last_decode_end = t_end

    def record_gaps(self, gap: float, members: int, tokens_each: int = 1) -> None:
        """Token gaps of ``members`` requests that each emitted ``tokens_each`` tokens ``gap`` s after their previous one.

        The one place a decode step's gaps enter the TBT histogram (the plain
        loop and the step-by-step fast path call it per step; a closed-form
        :class:`~twinfer.sim.decode_run.DecodeRun` adds the same gaps in bulk).

        The first token of each comes ``gap`` after its previous one; the other
        ``tokens_each - 1`` (a multi-token decode step) come at the same instant
        (gap 0), as a client of a speculative-decoding server sees them.
        """
        if self._bin_lo < gap < self._bin_hi:  # strictly inside the last gap's bin: tbt_bin would say the same
            b = self._bin
        else:
            b = self._bin = tbt_bin(gap)
            self._bin_lo, self._bin_hi = TBT_BIN_INNER[b] if b < TBT_NUM_INNER else (0.0, 0.0)
        h = self.tbt_hist
        h[b] = h.get(b, 0) + members
        if tokens_each != 1:
            h[0] = h.get(0, 0) + members * (tokens_each - 1)

    def finish_due(self, t_end: float) -> StepResult | None:
        """Members whose last token came with the decode step that ended at ``t_end`` leave; None if none."""
        fh = self._finish_heap
        if not fh or fh[0][0] > self.dtok:
            return None
        res = None
        while fh and fh[0][0] <= self.dtok:
            due, _, r, ep = heapq.heappop(fh)
            if ep != r.epoch:
                continue
            over = self.dtok - due  # tokens of its last step beyond its output (multi-token steps), not emitted
            self.ctx_sum -= r.prompt_tokens + r.output_tokens + over
            self._leave(r)
            if over:
                self.outstanding += over
                self.tbt_hist[0] -= over  # their zero gaps were counted with the step (record_gaps)
                r.generated = r.output_tokens
            r.last_token_s = t_end
            r.finish_s = t_end
            r.state = DONE
            if res is None:
                res = StepResult()
            res.finished.append(r)
        if not self.decoding:
            self._gap_k.clear()
            self._gap_v.clear()
        return res

    def tokens_of(self, r: Request) -> int:
        """Output tokens ``r`` has emitted so far (resolves the lazy decode count)."""
        return min(self._generated_now(r), r.output_tokens) if r.state is DECODING else r.generated
