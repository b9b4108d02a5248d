"""Per-instance batching scheduler: ``schedule() -> SchedulerOutput`` and ``update(output)``.

One class serves every pool, as in vLLM v1: a request has prompt tokens
computed and output tokens generated; a *mixed* instance prefills then decodes,
a *prefill* instance hands a request off after its first token, a *decode*
instance receives requests whose KV arrived over a link (and still prefills
when it must recompute a preempted request). What a role does is its
:data:`twinfer.sim.kinds.INSTANCE_KINDS` entry; how a step is filled is the
pool's batching policy (:data:`twinfer.sim.batching.BATCHING_POLICIES`:
continuous, chunked, static).

KV cache is counted in blocks (vLLM's paged attention; 16 tokens by default).
``kv_policy="reserve"`` reserves prompt + output blocks at admission, so a
request waits until it fits and is never preempted; ``"preempt"`` allocates
blocks as the context grows (vLLM) and, when a step cannot get a block,
preempts the most recently joined request, freeing its KV for recompute.

Decode progress is lazy (:mod:`twinfer.sim.decode_batch`): a decode step costs
O(1) plus O(1) per request that joins, leaves or crosses a block boundary.
"""

from __future__ import annotations

import heapq
from collections import deque

from twinfer.errors import ConfigError
from twinfer.models.step import StepShape, causal_pairs
from twinfer.sim.batching import (  # noqa: F401  (re-exported: twinfer.sim.scheduler.BatchingConfig is public)
    BATCHING_POLICIES,
    BLOCKED_BATCH,
    BLOCKED_KV,
    BLOCKED_NONE,
    KV_POLICIES,
    TBT_BIN_BASE,
    TBT_BIN_LOG_STEP,
    TBT_NUM_BINS,
    BatchingConfig,
    SchedulerOutput,
    StepResult,
)
from twinfer.sim.decode_batch import DecodeBatch
from twinfer.sim.kinds import INSTANCE_KINDS
from twinfer.sim.request import Request, RequestState

WAITING, PREFILLING, DECODING = RequestState.WAITING, RequestState.PREFILLING, RequestState.DECODING
TRANSFERRING, DONE, CANCELLED = RequestState.TRANSFERRING, RequestState.DONE, RequestState.CANCELLED


class Scheduler(DecodeBatch):
    """Queues, KV blocks and admission of one instance, around its lazy decode batch."""

    def __init__(self, role: str, config: BatchingConfig, kv_capacity_tokens: int, max_batch_seqs: int,
                 track_tokens: bool = False) -> None:
        if role not in INSTANCE_KINDS:
            raise ConfigError(f"unknown pool role {role!r}; choose one of {', '.join(INSTANCE_KINDS)}")
        if config.policy not in BATCHING_POLICIES:
            raise ConfigError(f"unknown batching policy {config.policy!r}; choose one of {', '.join(BATCHING_POLICIES)}")
        self.role = role
        self.kind = INSTANCE_KINDS[role]
        self.cfg = config
        self.policy = config.policy
        policy = BATCHING_POLICIES[config.policy]
        self._fill = policy.fill
        if policy.decode_tokens_per_step > config.block_tokens:
            raise ConfigError(f"batching policy {config.policy!r} computes {policy.decode_tokens_per_step} tokens per "
                              f"decode step, more than a KV block of {config.block_tokens}; raise block_tokens")
        self.reserve = config.kv_policy == "reserve"
        self.bt = config.block_tokens
        self.total_blocks = max(0, int(kv_capacity_tokens) // self.bt)
        self.max_context_tokens = self.total_blocks * self.bt  # the longest context an empty instance holds
        self.free_blocks = self.total_blocks
        self.max_seqs = max(1, int(max_batch_seqs))
        self.budget = config.token_budget
        self.track_tokens = track_tokens
        self.waiting: deque[Request] = deque()  # need (re)prefill, FCFS
        self.prefilling: list[Request] = []  # admitted, prompt partly computed
        self.ready: list[Request] = []  # KV arrived (decode role) or prefill done: join next step
        self.reserved_remote = 0  # requests holding KV here while their transfer runs
        self.outstanding = 0  # tokens of work left: prompt tokens to prefill + outputs to generate
        self.cancels: list[Request] = []  # cancelled while in a step: they leave at the next step boundary
        super().__init__(policy.decode_tokens_per_step)

    # ---- capacity ---------------------------------------------------------
    def blocks_for(self, tokens: int) -> int:
        """Blocks holding ``tokens`` tokens of KV."""
        return -(-tokens // self.bt)

    def fits_ever(self, tokens: int) -> bool:
        """Whether a context of ``tokens`` tokens fits an empty instance."""
        return tokens <= self.max_context_tokens

    def held(self) -> int:
        """Sequences holding a batch slot (prefilling, ready, decoding, arriving)."""
        return len(self.prefilling) + len(self.ready) + len(self.decoding) + self.reserved_remote

    def kv_used_frac(self) -> float:
        """Fraction of KV blocks in use."""
        return 1.0 - self.free_blocks / self.total_blocks if self.total_blocks else 1.0

    # ---- entry points -----------------------------------------------------
    def enqueue(self, r: Request) -> None:
        """A request that needs prefill here (new, or preempted)."""
        r.state = WAITING
        self.waiting.append(r)
        self.outstanding += r.prefill_target - r.computed + r.output_tokens - r.generated

    def try_reserve_remote(self, r: Request) -> int:
        """Reserve a slot and KV for a request whose KV will arrive by transfer; a BLOCKED_* code."""
        if self.held() >= self.max_seqs or self.waiting:
            return BLOCKED_BATCH if self.held() >= self.max_seqs else BLOCKED_KV
        # reserve: the whole life, with the tps - 1 drafts a multi-token last step writes beyond the output
        need = self.blocks_for(r.prompt_tokens + (r.output_tokens + self.tps - 1 if self.reserve else r.generated))
        if need > self.free_blocks:
            return BLOCKED_KV
        self.free_blocks -= need
        r.blocks_in = need  # r.blocks still counts its KV on the prefill instance
        self.reserved_remote += 1
        self.outstanding += r.output_tokens - r.generated
        return BLOCKED_NONE

    def arrived_remote(self, r: Request) -> None:
        """The reserved request's KV has arrived: it joins the decode batch at the next step."""
        self.reserved_remote -= 1
        r.blocks = r.blocks_in
        r.blocks_in = 0
        r.computed = r.prompt_tokens
        self.ready.append(r)

    def release(self, r: Request) -> None:
        """Free the KV of a request that left this instance (handed off after transfer)."""
        self.free_blocks += r.blocks
        r.blocks = 0

    def cancel(self, r: Request) -> bool:
        """Take ``r`` off this instance, freeing its slot and KV (vLLM's ``abort``).

        A request still queued leaves now (returns True). One that is prefilling,
        ready to join or decoding may be in the step in flight, whose end still
        applies to it: it leaves at the next step boundary (:meth:`drop_cancelled`;
        returns False).
        """
        if r.state is WAITING:
            self.waiting.remove(r)
            self.outstanding -= r.prefill_target - r.computed + r.output_tokens - r.generated
            self.free_blocks += r.blocks
            r.blocks = 0
            r.state = CANCELLED
            return True
        self.cancels.append(r)
        return False

    def drop_cancelled(self) -> list[Request]:
        """At a step boundary: the requests cancelled since the last one leave; those that left.

        A request that finished or was handed off meanwhile is not dropped here.
        """
        dropped = []
        for r in self.cancels:
            if r.state is DECODING:
                self.ctx_sum -= r.prompt_tokens + self._generated_now(r)
                self._leave(r)  # resolves r.generated, frees its blocks
                if r in self._fresh:
                    self._fresh.remove(r)
                self.outstanding -= r.output_tokens - r.generated
            elif r.state is PREFILLING:
                if r in self.prefilling:
                    self.prefilling.remove(r)
                    self.outstanding -= r.prefill_target - r.computed
                else:
                    self.ready.remove(r)
                self.outstanding -= r.output_tokens - r.generated
                self.free_blocks += r.blocks
                r.blocks = 0
            else:
                continue
            r.state = CANCELLED
            dropped.append(r)
        self.cancels.clear()
        if not self.decoding:
            self._gap_k.clear()
            self._gap_v.clear()
        return dropped

    def drop_reserved(self, r: Request) -> None:
        """Free the slot and KV reserved for ``r``, whose transfer ended after it was cancelled."""
        self.reserved_remote -= 1
        self.free_blocks += r.blocks_in
        r.blocks_in = 0
        self.outstanding -= r.output_tokens - r.generated
        r.state = CANCELLED

    def has_work(self) -> bool:
        """Whether a step could be scheduled now (possibly blocked)."""
        return bool(self.decoding or self.prefilling or self.ready or self.waiting)

    def _preempt_one(self, out: SchedulerOutput) -> Request | None:
        if not self.decoding:
            return None
        rid = next(reversed(self.decoding))
        r = self.decoding[rid]
        g = self._generated_now(r)
        if self.dtok > r.join_tok:  # it decoded here: its last token came at the last decode step's end
            r.last_token_s = self.last_decode_end
        self.ctx_sum -= r.prompt_tokens + g
        self._leave(r)
        self.outstanding -= r.output_tokens - r.generated
        r.preemptions += 1
        r.computed = 0
        r.recompute_tokens = r.prompt_tokens + r.generated
        self.waiting.appendleft(r)
        self.outstanding += r.recompute_tokens + r.output_tokens - r.generated
        r.state = WAITING
        out.preempted += 1
        if r in self._fresh:
            self._fresh.remove(r)
        return r

    def _grow_blocks(self, out: SchedulerOutput) -> None:
        """Preempt policy: give a block to every member whose context crosses a block boundary now."""
        heap = self._block_heap
        while heap and heap[0][0] <= self.dtok:
            _, _, r, ep = heapq.heappop(heap)
            if ep != r.epoch:
                continue
            while self.free_blocks < 1 and not self.reclaim(1):
                victim = self._preempt_one(out)
                if victim is None or victim is r:
                    break
            if r.epoch != ep:
                continue  # r itself was preempted
            self.free_blocks -= 1
            r.blocks += 1
            self._seq += 1
            heapq.heappush(heap, (max(self.dtok + 1, self._next_block_tok(r)), self._seq, r, r.epoch))

    # ---- admission ------------------------------------------------------------
    def _admit_cost(self, r: Request) -> int:
        """Blocks to take from the free pool to admit ``r`` for prefill.

        Reserve: prompt + output for the request's whole life. Preempt: the
        whole prefill target at once (so a partly prefilled request never
        stalls for KV); decode growth is allocated block by block.
        """
        if self.reserve:
            # a multi-token last step also writes the KV of its tps - 1 drafts beyond the output
            life = r.prompt_tokens + (r.output_tokens + self.tps - 1 if self.kind.reserves_output_kv else 0)
            return self.blocks_for(life) - r.blocks
        return self.blocks_for(r.prefill_target) - r.blocks

    # ---- the step -------------------------------------------------------------
    def schedule(self, now: float) -> SchedulerOutput | None:
        """Choose the next step's work at time ``now``; None when there is nothing to run."""
        out = SchedulerOutput()
        for r in self.ready:
            self._join(r)
        self.ready.clear()
        self._fill(self, out)
        if not out.chunks and not out.n_decode:
            return None
        pt = ps = pairs = pkv = 0
        for r, n in out.chunks:
            pt += n
            ps += 1
            pairs += causal_pairs(n, r.computed)
            pkv += n + r.computed
        n = out.n_decode
        if n:
            extra = n * (self.tps - 1)  # query tokens beyond one per member (0 unless multi-token steps)
            out.decode_tokens = self.tps
            out.shape = StepShape(pt, ps, pairs, pkv, n, self.ctx_sum + extra, extra)
        else:
            out.shape = StepShape(pt, ps, pairs, pkv, 0, 0)
        if self.track_tokens and out.n_decode:
            out.members = list(self.decoding.values())
        return out

    def decode_all(self, out: SchedulerOutput) -> None:
        """Put every decode member in the step (preempt policy: allocating blocks, preempting if it must)."""
        if not self.reserve and self.decoding:
            self._grow_blocks(out)
        out.n_decode = len(self.decoding)
        if out.n_decode and self._fresh:
            out.joined = self._fresh
            self._fresh = []

    def admit_whole(self, out: SchedulerOutput, seats: int) -> None:
        """Admit whole prompts from the queue's head, within the token budget and ``seats`` free slots."""
        budget = self.budget
        while self.waiting:
            if seats <= 0:
                out.blocked = BLOCKED_BATCH
                return
            n = self.head_prefill()
            if out.chunks and n > budget:
                return
            if not self.admit_head(out, n):
                return
            budget -= n
            seats -= 1

    def head_prefill(self) -> int:
        """Prompt tokens the queue's head needs prefilled (all of its target: no prefix cache here)."""
        return self.waiting[0].prefill_target

    def reclaim(self, blocks: int) -> bool:
        """Free at least ``blocks`` KV blocks held by something other than requests; False if none can go.

        Nothing but requests holds KV here; a prefix-caching scheduler evicts cached blocks.
        """
        return False

    def admit_head(self, out: SchedulerOutput, n: int) -> bool:
        """Admit the head of the queue with a first chunk of ``n`` tokens; False (KV-blocked) if its KV does not fit."""
        r = self.waiting[0]
        cost = self._admit_cost(r)
        if cost > self.free_blocks and not self.reclaim(cost - self.free_blocks):
            out.blocked = BLOCKED_KV
            return False
        self.waiting.popleft()
        self.free_blocks -= cost
        r.blocks += cost
        r.state = PREFILLING
        self.prefilling.append(r)
        out.chunks.append((r, n))
        out.admitted += 1
        return True

    def update(self, out: SchedulerOutput, t_end: float) -> StepResult | None:
        """Apply a finished step at time ``t_end``; None when nothing but decode progress happened."""
        res: StepResult | None = None
        n = out.n_decode
        if n:
            joined = out.joined
            cont = n - len(joined)
            gap = t_end - self.last_decode_end
            if cont > 0:
                self.record_gaps(gap, cont, self.tps)
            for r in joined:
                g = t_end - r.last_token_s
                if g > r.max_tbt_s:
                    r.max_tbt_s = g
                self.record_gaps(g, 1, self.tps)
            self.advance_decode_run(n, 1, t_end, gap if cont > 0 else None)  # joiners' queries start later
            res = self.finish_due(t_end)
        if out.chunks:
            if res is None:
                res = StepResult()
            self._update_chunks(out, t_end, res)
        return res

    def _update_chunks(self, out: SchedulerOutput, t_end: float, res: StepResult) -> None:
        done = False
        for r, n in out.chunks:
            r.computed += n
            self.outstanding -= n
            done = done or r.computed >= r.prefill_target
        if not done:
            return
        keep = []
        for r in self.prefilling:
            if r.computed < r.prefill_target:
                keep.append(r)
                continue
            resumed = r.recompute_tokens > 0
            r.recompute_tokens = 0
            r.generated += 1
            self.outstanding -= 1
            if resumed:
                gap = t_end - r.last_token_s
                if gap > r.max_tbt_s:
                    r.max_tbt_s = gap
                self.record_gaps(gap, 1)  # one token: the recomputed prefill's
                res.resumed.append(r)
            else:
                r.prefill_end_s = t_end
                r.first_token_s = t_end
                res.first.append(r)
            r.last_token_s = t_end
            if r.generated >= r.output_tokens:
                r.finish_s = t_end
                r.state = DONE
                self.free_blocks += r.blocks
                r.blocks = 0
                res.finished.append(r)
            elif self.kind.hands_off and not resumed:
                r.state = TRANSFERRING
                self.outstanding -= r.output_tokens - r.generated
                res.handoff.append(r)
            else:
                self.ready.append(r)
        self.prefilling = keep

    def steady_decode_steps(self) -> int:
        """How many next steps are plain decode steps in which nobody joins or needs a block.

        0 unless the batch is decoding with nothing queued, prefilling or arriving;
        otherwise the steps up to and including the next one that finishes a member
        (and, for the preempt policy, before the next block boundary). The instance
        may run those steps in a tight loop (:meth:`advance_decode`, then
        :meth:`finish_due` after each) with the same result as scheduling each.
        """
        if self.waiting or self.prefilling or self.ready or self._fresh or not self.decoding:
            return 0
        return self.steps_to_event()

    def join_and_run_steps(self) -> int:
        """Like :meth:`steady_decode_steps`, but members ready to join do so now, in the run's first step.

        Returns 0 (nothing joined) unless no prompt waits to be prefilled; the
        joiners are then handed over by :meth:`take_joiners`. With the preempt
        policy a joiner that needs a block at once makes it 0 (after joining):
        :meth:`schedule` then runs that step.
        """
        if self.waiting or self.prefilling or not (self.decoding or self.ready):
            return 0
        if self.ready:
            for r in self.ready:
                self._join(r)
            self.ready.clear()
        return self.steps_to_event()

