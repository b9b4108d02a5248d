"""PrefixCache: reference-counted KV blocks of one instance, keyed by chain key, evicted LRU.

The model is vLLM's automatic prefix caching and SGLang's radix cache at block
granularity: every resident block is identified by its chain key (see
:mod:`twinfer.kvcache.chain`), so a lookup walks a request's keys from the
start and stops at the first one not resident. Blocks held by running requests
have a reference count > 0 and are never evicted. An unreferenced block is
evictable only when no resident block extends it (it is a leaf of the prefix
tree, as in SGLang): evicting a middle block would strand its descendants,
which could then never be matched. Among evictable leaves the least recently
used goes first; "use" is a logical clock advanced by every acquire, insert and
release, so results depend only on the order of calls.

Capacity counts every resident block, referenced or not, so it stands for the
instance's KV pool in blocks; ``None`` means unbounded.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from twinfer.errors import CapacityError, ConfigError
from twinfer.kvcache.chain import KeyList


@dataclass(frozen=True)
class PrefixCacheStats:
    """Counters since the cache was made: lookups, prompt and hit tokens, block traffic."""

    lookups: int  # acquire() calls
    prompt_tokens: int  # prompt tokens of those requests
    hit_tokens: int  # prompt tokens found cached at acquire()
    inserted_blocks: int  # blocks made resident by insert()
    evicted_blocks: int  # blocks dropped to make room (or by evict())
    failed_inserts: int  # blocks insert() could not place (every resident block referenced)

    @property
    def hit_rate(self) -> float:
        """Cached prompt tokens / prompt tokens (0.0 before any lookup)."""
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def __add__(self, other: PrefixCacheStats) -> PrefixCacheStats:
        """Counters of two caches together (a pool's or a fleet's: sum the instances')."""
        return PrefixCacheStats(
            lookups=self.lookups + other.lookups,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            hit_tokens=self.hit_tokens + other.hit_tokens,
            inserted_blocks=self.inserted_blocks + other.inserted_blocks,
            evicted_blocks=self.evicted_blocks + other.evicted_blocks,
            failed_inserts=self.failed_inserts + other.failed_inserts,
        )


#: Counters of a cache that saw nothing (the start of a sum over instances).
NO_STATS = PrefixCacheStats(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True)
class InsertResult:
    """What insert() did: blocks placed, blocks evicted to make room (chain keys, LRU first)."""

    inserted_blocks: int
    evicted_keys: tuple[int, ...]
    not_inserted_blocks: int  # blocks left out because nothing was evictable


class _Block:
    __slots__ = ("parent", "refs", "children", "last_use")

    def __init__(self, parent: int, last_use: int) -> None:
        self.parent = parent  # chain key of the previous block, -1 for a first block
        self.refs = 0
        self.children = 0  # resident blocks whose parent is this one
        self.last_use = last_use


class _Lease:
    __slots__ = ("keys", "held", "prompt_tokens")

    def __init__(self, keys: tuple[int, ...], held: int, prompt_tokens: int) -> None:
        self.keys = keys  # the request's chain keys
        self.held = held  # keys[:held] are resident and referenced by this request
        self.prompt_tokens = prompt_tokens


class PrefixCache:
    """One instance's prefix cache: match, acquire, insert, release and LRU eviction.

    ``capacity_blocks`` is the number of resident blocks allowed (None =
    unbounded); ``block_tokens`` converts blocks to tokens. The scheduler calls
    :meth:`acquire` when it admits a request (the matched prefix is then not
    prefilled), :meth:`insert` when its prefill is done, and :meth:`release`
    when it finishes; the router may call :meth:`match`, which changes nothing.
    """

    def __init__(self, capacity_blocks: int | None, block_tokens: int) -> None:
        if capacity_blocks is not None and (isinstance(capacity_blocks, bool) or capacity_blocks < 0):
            raise ConfigError(f"prefix cache capacity_blocks must be >= 0 or None, got {capacity_blocks!r}")
        if isinstance(block_tokens, bool) or block_tokens < 1:
            raise ConfigError(f"prefix cache block_tokens must be >= 1, got {block_tokens!r}")
        self.capacity_blocks = capacity_blocks
        self.block_tokens = int(block_tokens)
        self._blocks: dict[int, _Block] = {}
        self._leases: dict[int, _Lease] = {}
        self._evictable: list[tuple[int, int]] = []  # heap of (last_use, key); stale entries skipped
        self._clock = 0
        self._referenced = 0  # blocks with refs > 0
        self._lookups = 0
        self._prompt_tokens = 0
        self._hit_tokens = 0
        self._inserted = 0
        self._evicted = 0
        self._failed = 0

    # ------------------------------------------------------------------ queries
    @property
    def used_blocks(self) -> int:
        """Resident blocks, referenced or not."""
        return len(self._blocks)

    @property
    def free_blocks(self) -> int | None:
        """Blocks that can be placed without eviction (None when unbounded)."""
        return None if self.capacity_blocks is None else self.capacity_blocks - len(self._blocks)

    @property
    def referenced_blocks(self) -> int:
        """Resident blocks held by at least one running request."""
        return self._referenced

    @property
    def available_blocks(self) -> int | None:
        """Blocks a new request could get, evicting every unreferenced one (None when unbounded).

        Every unreferenced block can go (evicting a leaf frees its parent to go
        next), so this is capacity minus referenced blocks: what admission
        control checks before acquiring.
        """
        return None if self.capacity_blocks is None else self.capacity_blocks - self._referenced

    def refs(self, key: int) -> int:
        """Reference count of block ``key`` (0 when unreferenced or not resident)."""
        block = self._blocks.get(int(key))
        return block.refs if block is not None else 0

    def __contains__(self, key: object) -> bool:
        """Whether block ``key`` (a chain key, Python or numpy int) is resident."""
        return isinstance(key, int | np.integer) and int(key) in self._blocks

    def match(self, keys: KeyList) -> int:
        """Leading blocks of ``keys`` that are resident (read-only: no counters, no LRU touch)."""
        blocks = self._blocks
        n = 0
        for key in keys:
            if int(key) not in blocks:
                break
            n += 1
        return n

    def cached_tokens(self, matched_blocks: int, prompt_tokens: int) -> int:
        """Prompt tokens covered by ``matched_blocks`` leading blocks (the last block may be partial)."""
        return min(matched_blocks * self.block_tokens, prompt_tokens)

    @property
    def stats(self) -> PrefixCacheStats:
        """Counters since the cache was made."""
        return PrefixCacheStats(
            lookups=self._lookups,
            prompt_tokens=self._prompt_tokens,
            hit_tokens=self._hit_tokens,
            inserted_blocks=self._inserted,
            evicted_blocks=self._evicted,
            failed_inserts=self._failed,
        )

    # ------------------------------------------------------------------ request life cycle
    def acquire(self, request_id: int, keys: KeyList, prompt_tokens: int) -> int:
        """Reference the resident prefix of ``keys`` for ``request_id``; return its cached tokens.

        Counts one lookup and its hit tokens. The referenced blocks stay resident
        until :meth:`release`. Only ``prompt_tokens - cached`` need prefilling.
        """
        if request_id in self._leases:
            raise ConfigError(f"prefix cache: request {request_id} already holds blocks")
        chain = tuple(int(k) for k in keys)
        matched = self.match(chain)
        for key in chain[:matched]:
            self._ref(key)
        self._leases[request_id] = _Lease(chain, matched, int(prompt_tokens))
        hit = self.cached_tokens(matched, int(prompt_tokens))
        self._lookups += 1
        self._prompt_tokens += int(prompt_tokens)
        self._hit_tokens += hit
        return hit

    def insert(self, request_id: int) -> InsertResult:
        """Make the rest of ``request_id``'s blocks resident (after its prefill) and reference them.

        Blocks another request inserted meanwhile are shared, not duplicated.
        When the cache is full, unreferenced leaves are evicted LRU first; when
        nothing is evictable the remaining blocks are left out (counted in
        ``failed_inserts``) and the request keeps what it holds.
        """
        lease = self._lease(request_id)
        evicted: list[int] = []
        placed = 0
        keys = lease.keys
        while lease.held < len(keys):
            key = keys[lease.held]
            if key not in self._blocks:
                if not self._make_room(evicted):
                    break
                parent = keys[lease.held - 1] if lease.held else -1
                self._place(key, parent)
                placed += 1
            self._ref(key)
            lease.held += 1
        left = len(keys) - lease.held
        self._failed += left
        return InsertResult(placed, tuple(evicted), left)

    def release(self, request_id: int) -> None:
        """Drop ``request_id``'s references; its blocks stay cached until evicted."""
        lease = self._leases.pop(request_id, None)
        if lease is None:
            raise ConfigError(f"prefix cache: request {request_id} holds no blocks (released twice?)")
        for key in lease.keys[: lease.held]:
            block = self._blocks[key]
            block.refs -= 1
            self._referenced -= block.refs == 0
            block.last_use = self._tick()
            self._maybe_evictable(key, block)

    def evict(self, num_blocks: int) -> tuple[int, ...]:
        """Evict up to ``num_blocks`` unreferenced leaves, LRU first; return their chain keys."""
        out: list[int] = []
        while len(out) < num_blocks and self._pop_lru(out):
            pass
        return tuple(out)

    # ------------------------------------------------------------------ internals
    def _lease(self, request_id: int) -> _Lease:
        lease = self._leases.get(request_id)
        if lease is None:
            raise ConfigError(f"prefix cache: request {request_id} was never acquired")
        return lease

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _ref(self, key: int) -> None:
        block = self._blocks[key]
        block.refs += 1
        self._referenced += block.refs == 1
        block.last_use = self._tick()

    def _place(self, key: int, parent: int) -> None:
        if parent >= 0:
            owner = self._blocks.get(parent)
            if owner is None:
                raise CapacityError(f"prefix cache: parent block {parent} of {key} is not resident")
            owner.children += 1
        self._blocks[key] = _Block(parent, self._tick())
        self._inserted += 1

    def _maybe_evictable(self, key: int, block: _Block) -> None:
        if block.refs == 0 and block.children == 0:
            heapq.heappush(self._evictable, (block.last_use, key))
            if len(self._evictable) > 2 * len(self._blocks) + 1024:
                self._compact()

    def _compact(self) -> None:
        """Rebuild the eviction heap from the live evictable blocks (drops stale entries)."""
        self._evictable = [
            (b.last_use, k) for k, b in self._blocks.items() if b.refs == 0 and b.children == 0
        ]
        heapq.heapify(self._evictable)

    def _make_room(self, evicted: list[int]) -> bool:
        if self.capacity_blocks is None or len(self._blocks) < self.capacity_blocks:
            return True
        return self._pop_lru(evicted) and len(self._blocks) < self.capacity_blocks

    def _pop_lru(self, evicted: list[int]) -> bool:
        heap = self._evictable
        while heap:
            last_use, key = heapq.heappop(heap)
            block = self._blocks.get(key)
            if block is None or block.refs or block.children or block.last_use != last_use:
                continue  # stale entry: since re-used, re-referenced, extended or evicted
            del self._blocks[key]
            self._evicted += 1
            evicted.append(key)
            if block.parent >= 0:
                parent = self._blocks[block.parent]
                parent.children -= 1
                self._maybe_evictable(block.parent, parent)
            return True
        return False

