"""A scheduler with a prefix cache: only a prompt's uncached suffix is prefilled.

:class:`PrefixScheduler` extends :class:`~twinfer.sim.scheduler.Scheduler`
with one :class:`~twinfer.kvcache.PrefixCache` per instance (vLLM's automatic
prefix caching, SGLang's radix cache, at the trace's block size). When the
queue's head is looked at for admission it acquires its cached prefix: those
tokens count as computed (at least one token is still prefilled, as vLLM
does when the whole prompt hits), so the step prices the shorter prefill with
attention over the full context. When its prefill ends, its full prompt blocks
are inserted; when it leaves the instance its references are dropped and the
blocks stay cached until evicted, least recently used first.

KV accounting stays in the scheduler's blocks. A request's ``blocks`` is its
whole footprint, as without a cache; a cached block of ``block_tokens`` tokens
takes ``block_tokens / bt`` scheduler blocks, counted once however many
running requests share it. So ``free_blocks`` = total - footprints of the
admitted requests - unreferenced cached blocks + blocks shared beyond the first
holder. Cached blocks no running request holds are evicted when an admission
(or, with the preempt policy, a decode step) needs their room, before anything
is preempted. Evicted blocks go to the instance's offload tiers when it has
them (:class:`~twinfer.kvcache.OffloadTiers`); a later request that finds
them there reloads them at the tier's read bandwidth when that takes less
time than prefilling them again (the backend's batch-1 prefill time of those
tokens), and the reload time is added to the step that starts its prefill.
A shared last tier (Mooncake Store) is one store for the whole fleet: blocks
one instance evicts there can be reloaded by any other.

Only the first lookup of a request counts in the hit statistics (a request
preempted and recomputed looks up again, and may hit, but is not counted
twice). Saved prefill time is, per request, the backend's time to prefill the
whole prompt alone minus the time to prefill its uncached suffix alone (with
the cached context): what the cache saved that request at batch 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twinfer.errors import ConfigError
from twinfer.kvcache.kv_route import InstanceSnapshot
from twinfer.kvcache.offload import BlockStore, OffloadTiers
from twinfer.kvcache.prefix_cache import PrefixCache
from twinfer.kvcache.tiers import TierSpec
from twinfer.models.step import StepShape, causal_pairs
from twinfer.perf.base import StepCostModel
from twinfer.sim.request import Request
from twinfer.sim.scheduler import BatchingConfig, Scheduler, SchedulerOutput, StepResult


@dataclass(frozen=True)
class PrefixSetup:
    """A pool's prefix cache, ready to build: cache block size and capacity, offload tiers.

    A ``shared`` last tier (Mooncake Store) comes with ``shared_store``: the
    one :class:`~twinfer.kvcache.offload.BlockStore` every instance of the
    fleet using that tier reads and writes (:func:`twinfer.sim.run.shared_stores`).
    """

    block_tokens: int  # tokens per cached block (the workload's prefix_block_tokens: 512 for Mooncake)
    capacity_blocks: int | None = None  # per instance; None: as many as the instance's KV holds
    tiers: tuple[TierSpec, ...] = ()  # offload tiers below the device, per instance (already scaled)
    kv_bytes_per_token: float = 0.0  # to size tier capacity and reload time (needed with tiers)
    shared_store: BlockStore | None = field(default=None, compare=False)  # the fleet's shared tier


@dataclass
class PrefixCounters:
    """One instance's prefix-cache counters (add them over a pool or a fleet)."""

    requests: int = 0  # first lookups
    prompt_tokens: int = 0  # their prompt tokens
    hit_tokens: int = 0  # of which found cached (on the device or, reloaded, in a tier)
    tier_hit_tokens: int = 0  # of which reloaded from an offload tier
    skipped_tokens: int = 0  # prompt tokens not prefilled thanks to the cache (all lookups)
    saved_prefill_s: float = 0.0  # batch-1 prefill time saved (module docstring)
    reload_s: float = 0.0  # transfer time of reloads from offload tiers, added to prefills
    evicted_blocks: int = 0  # blocks evicted from the device cache
    offloaded_blocks: int = 0  # of which moved to a tier

    def __iadd__(self, other: PrefixCounters) -> PrefixCounters:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


class PrefixScheduler(Scheduler):
    """A :class:`Scheduler` whose instance keeps a prefix cache (see the module docstring)."""

    def __init__(self, role: str, config: BatchingConfig, kv_capacity_tokens: int, max_batch_seqs: int,
                 track_tokens: bool, setup: PrefixSetup, cost: StepCostModel) -> None:
        super().__init__(role, config, kv_capacity_tokens, max_batch_seqs, track_tokens)
        cbt = setup.block_tokens
        if cbt % self.bt:
            raise ConfigError(f"prefix cache: the workload's prefix blocks of {cbt} tokens must be a whole number "
                              f"of KV blocks of {self.bt} tokens; set batching.block_tokens to a divisor of {cbt}")
        self.rpb = cbt // self.bt  # scheduler blocks per cached block
        most = self.total_blocks // self.rpb
        cap = most if setup.capacity_blocks is None else setup.capacity_blocks
        if cap > most:
            raise ConfigError(f"prefix_cache.blocks: {cap} blocks of {cbt} tokens is more than one instance's KV "
                              f"cache holds ({most} blocks, {self.total_blocks * self.bt:,} tokens); use at most "
                              f"{most} or auto")
        self.cache = PrefixCache(cap, cbt)
        self.cbt = cbt
        self._step = cost.step_time_s
        self._leased: dict[int, int] = {}  # rid -> cached blocks matched at lookup (waiting, not yet admitted)
        self._held: dict[int, int] = {}  # rid -> cache blocks an admitted request references
        self._reload: dict[int, float] = {}  # rid -> tier reload time to add to its first prefill chunk
        self.stats = PrefixCounters()
        self.tiers: OffloadTiers | None = None
        if setup.tiers:
            if not setup.kv_bytes_per_token > 0:
                raise ConfigError("prefix cache: offload tiers need the model's KV bytes per token")
            self.tiers = OffloadTiers(list(setup.tiers), setup.kv_bytes_per_token * cbt, setup.shared_store)

    # ---- lookup and admission --------------------------------------------------
    def head_prefill(self) -> int:
        """Prompt tokens the queue's head still needs prefilled; looks its prefix up the first time."""
        r = self.waiting[0]
        if r.rid not in self._leased and r.keys is not None:
            self._lookup(r)
        return r.prefill_target - r.computed

    def _prefill_s(self, tokens: int, cached: int) -> float:
        """Batch-1 time to prefill ``tokens`` new tokens after ``cached`` ones."""
        return self._step(StepShape(tokens, 1, causal_pairs(tokens, cached), tokens + cached, 0, 0))

    def _lookup(self, r: Request) -> None:
        cache = self.cache
        matched = cache.match(r.keys)
        plan = None
        if self.tiers is not None and matched < len(r.keys):
            plan = self.tiers.lookup(r.keys[matched:])
            tokens = min(plan.blocks * self.cbt, r.prefill_target - 1 - matched * self.cbt)
            # reload when fetching the blocks beats prefilling them again (their batch-1 prefill time)
            if tokens > 0 and plan.transfer_s < self._prefill_s(tokens, matched * self.cbt):
                self.tiers.take(plan)  # back on the device once this request's prefill inserts them
            else:
                plan = None
        hit = cache.acquire(r.rid, r.keys, r.prompt_tokens)
        tier_tokens = plan.blocks * self.cbt if plan is not None else 0
        target = r.prefill_target
        skip = min(hit + tier_tokens, target - 1)
        self._leased[r.rid] = hit // self.cbt
        st = self.stats
        if not r.recompute_tokens:
            st.requests += 1
            st.prompt_tokens += r.prompt_tokens
            st.hit_tokens += hit + tier_tokens
            st.tier_hit_tokens += tier_tokens
        if plan is not None and skip > 0:
            self._reload[r.rid] = plan.transfer_s
            st.reload_s += plan.transfer_s
        if skip > 0:
            r.computed = skip
            self.outstanding -= skip
            st.skipped_tokens += skip
            st.saved_prefill_s += self._prefill_s(target, 0) - self._prefill_s(target - skip, skip)

    def admit_head(self, out: SchedulerOutput, n: int) -> bool:
        """Admit the head; the cached blocks it shares are already in the KV count, so they cost nothing."""
        r = self.waiting[0]
        credit = self._leased.get(r.rid, 0) * self.rpb
        self.free_blocks += credit
        if not super().admit_head(out, n):
            self.free_blocks -= credit
            return False
        self._held[r.rid] = self._leased.pop(r.rid, 0)
        return True

    def reclaim(self, blocks: int) -> bool:
        """Evict unreferenced cached blocks, LRU first, until ``blocks`` scheduler blocks are free."""
        while self.free_blocks < blocks:
            evicted = self.cache.evict(-(-(blocks - self.free_blocks) // self.rpb))
            if not evicted:
                return False
            self._evicted(evicted)
        return True

    def _evicted(self, keys: tuple[int, ...]) -> None:
        self.free_blocks += len(keys) * self.rpb
        self.stats.evicted_blocks += len(keys)
        if self.tiers is not None:
            self.tiers.demote(keys)
            self.stats.offloaded_blocks += len(keys)

    def pending_reload_s(self, r: Request) -> float:
        """Tier reload time still to add to ``r``'s prefill (taken once, by the step that starts it)."""
        return self._reload.pop(r.rid, 0.0) if self._reload else 0.0

    def schedule(self, now: float) -> SchedulerOutput | None:
        """As :meth:`Scheduler.schedule`; a step starting a prefill whose prefix is reloaded waits for it."""
        out = super().schedule(now)
        if out is not None and self._reload:
            extra = sum(self.pending_reload_s(r) for r, _ in out.chunks)
            if extra:
                out.delay_s = extra
        return out

    # ---- prefill done, leaving ---------------------------------------------------
    def _update_chunks(self, out: SchedulerOutput, t_end: float, res: StepResult) -> None:
        for r, n in out.chunks:
            if r.computed + n >= r.prefill_target and r.rid in self._held:
                self._insert(r)
        super()._update_chunks(out, t_end, res)
        for r in res.finished:
            self._drop_lease(r)

    def _insert(self, r: Request) -> None:
        before = self._held[r.rid]
        result = self.cache.insert(r.rid)
        after = len(r.keys) - result.not_inserted_blocks
        self._held[r.rid] = after
        # blocks found already cached (another request inserted them) are shared: this request's own
        # copy is freed; blocks evicted to stay within the cache's capacity free their room
        self.free_blocks += (after - before - result.inserted_blocks) * self.rpb
        if result.evicted_keys:
            self._evicted(result.evicted_keys)

    def _drop_lease(self, r: Request) -> None:
        held = self._held.pop(r.rid, None)
        if held is not None:
            self.free_blocks -= held * self.rpb  # its blocks stay cached: their room is the cache's now
            self.cache.release(r.rid)
        elif self._leased.pop(r.rid, None) is not None:
            self.cache.release(r.rid)
        self._reload.pop(r.rid, None)

    def _leave(self, r: Request) -> None:
        super()._leave(r)
        self._drop_lease(r)

    def release(self, r: Request) -> None:
        """Free the KV of a request handed off after its transfer; its prompt blocks stay cached."""
        super().release(r)
        self._drop_lease(r)

    def cancel(self, r: Request) -> bool:
        """As :meth:`Scheduler.cancel`, dropping the request's cache references when it leaves now."""
        gone = super().cancel(r)
        if gone:
            self._drop_lease(r)
        return gone

    def drop_cancelled(self) -> list[Request]:
        """As :meth:`Scheduler.drop_cancelled`, dropping the leavers' cache references."""
        dropped = super().drop_cancelled()
        for r in dropped:
            self._drop_lease(r)
        return dropped

    # ---- what the router reads -----------------------------------------------------
    def snapshot(self, instance_id: int) -> InstanceSnapshot:
        """This instance as the KV-aware router sees it (:mod:`twinfer.kvcache.kv_route`)."""
        prefill = sum(r.prefill_target - r.computed for r in self.waiting)
        prefill += sum(r.prefill_target - r.computed for r in self.prefilling)
        cache = self.cache
        unreferenced = cache.used_blocks - cache.referenced_blocks
        active = (self.total_blocks - self.free_blocks) // self.rpb - unreferenced
        return InstanceSnapshot(instance_id, prefill, max(active, 0), len(self.waiting), cache.match)
