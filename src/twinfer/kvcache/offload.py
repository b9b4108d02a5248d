"""Offload tiers at work: evicted blocks move down a tier before they are lost; reloading costs time.

An instance's :class:`OffloadTiers` holds the levels below its device cache in
order (for example host DRAM, then local SSD), optionally followed by a pool
shared by the whole fleet (Mooncake Store). Each level is an LRU set of chain
keys with a capacity in blocks. A block evicted from the device goes to the
first level; a block pushed out of a full level goes to the next one; off the
last level it is lost. Local levels are exclusive (a reloaded block leaves them
and lives on the device again); the shared pool keeps its copy, since other
instances may want it.

Reloading ``n`` blocks from a level costs ``latency_s + n * block_bytes /
read_bw`` (levels are read one after the other); offloads are written in the
background and only counted. :func:`reload_beats_recompute` and
:func:`breakeven_tokens` say when fetching a prefix beats prefilling it again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from twinfer.errors import ConfigError
from twinfer.kvcache.chain import KeyList
from twinfer.kvcache.tiers import TierSpec


class BlockStore:
    """An LRU set of chain keys holding at most ``capacity_blocks`` of them."""

    def __init__(self, capacity_blocks: int) -> None:
        if capacity_blocks < 0:
            raise ConfigError(f"block store capacity must be >= 0, got {capacity_blocks}")
        self.capacity_blocks = int(capacity_blocks)
        self._keys: OrderedDict[int, None] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def put(self, key: int) -> list[int]:
        """Store ``key`` as most recent; return the keys pushed out to stay within capacity."""
        self._keys[key] = None
        self._keys.move_to_end(key)
        out = []
        while len(self._keys) > self.capacity_blocks:
            out.append(self._keys.popitem(last=False)[0])
        return out

    def touch(self, key: int) -> None:
        """Mark ``key`` most recently used."""
        self._keys.move_to_end(key)

    def remove(self, key: int) -> None:
        """Drop ``key``."""
        del self._keys[key]


@dataclass(frozen=True)
class ReloadPlan:
    """Blocks found below the device, right after the device-cached prefix, and their fetch time."""

    keys: tuple[int, ...]  # the contiguous run of chain keys found in the tiers
    level_of_key: tuple[int, ...]  # index of the level holding each key
    blocks_per_level: tuple[int, ...]  # how many come from each level
    transfer_s: float  # time to bring them to the device

    @property
    def blocks(self) -> int:
        """Blocks the plan brings back."""
        return len(self.keys)


@dataclass(frozen=True)
class OffloadStats:
    """Block traffic per level since the tiers were made."""

    demoted_blocks: tuple[int, ...]  # blocks written into each level
    reloaded_blocks: tuple[int, ...]  # blocks read back from each level
    lost_blocks: int  # blocks pushed off the last level


class OffloadTiers:
    """The levels below one instance's device cache (see the module doc).

    ``levels`` are this instance's tier specs (already scaled with
    :meth:`TierSpec.for_gpus`), top first. A ``shared`` spec, if any, must be
    last and comes with ``shared_store``, the one :class:`BlockStore` of the
    fleet (sized for the whole pool); the spec gives this instance's link to it.
    """

    def __init__(
        self,
        levels: Sequence[TierSpec],
        block_bytes: float,
        shared_store: BlockStore | None = None,
    ) -> None:
        if not block_bytes > 0:
            raise ConfigError(f"offload tiers: block_bytes must be > 0, got {block_bytes!r}")
        shared_at = [i for i, spec in enumerate(levels) if spec.shared]
        if shared_at and (shared_at != [len(levels) - 1] or shared_store is None):
            raise ConfigError(
                "offload tiers: a shared tier must be the last level and come with the fleet's shared_store"
            )
        if shared_store is not None and not shared_at:
            raise ConfigError("offload tiers: shared_store given but no level is marked shared")
        self.levels = tuple(levels)
        self.block_bytes = float(block_bytes)
        self._stores = [
            shared_store if spec.shared and shared_store is not None
            else BlockStore(int(spec.capacity_bytes // self.block_bytes))
            for spec in self.levels
        ]
        self._demoted = [0] * len(self.levels)
        self._reloaded = [0] * len(self.levels)
        self._lost = 0

    def demote(self, keys: KeyList) -> tuple[int, ...]:
        """Take blocks evicted from the device (in eviction order); return the keys lost on the way."""
        lost: list[int] = []
        for raw in keys:
            key = int(raw)
            for spec, store in zip(self.levels[1:], self._stores[1:], strict=True):
                if key in store and not spec.shared:
                    store.remove(key)  # recomputed since it went down: keep local levels exclusive
            self._put(0, key, lost)
        return tuple(lost)

    def _put(self, level: int, key: int, lost: list[int]) -> None:
        pending = [key]
        while pending and level < len(self._stores):
            self._demoted[level] += len(pending)
            pushed: list[int] = []
            for k in pending:
                pushed.extend(self._stores[level].put(k))
            pending, level = pushed, level + 1
        self._lost += len(pending)
        lost.extend(pending)

    def level_of(self, key: int) -> int | None:
        """Index of the level holding ``key`` (None when no level has it)."""
        for i, store in enumerate(self._stores):
            if key in store:
                return i
        return None

    def lookup(self, keys: KeyList) -> ReloadPlan:
        """The leading run of ``keys`` held in some level, and its transfer time (read-only).

        Pass the request's keys after the device-cached prefix: a reload is only
        useful while the chain is unbroken.
        """
        found: list[int] = []
        where: list[int] = []
        for raw in keys:
            level = self.level_of(int(raw))
            if level is None:
                break
            found.append(int(raw))
            where.append(level)
        per_level = tuple(where.count(i) for i in range(len(self.levels)))
        return ReloadPlan(tuple(found), tuple(where), per_level, self.transfer_s(per_level))

    def transfer_s(self, blocks_per_level: Sequence[int]) -> float:
        """Time to read ``blocks_per_level[i]`` blocks from each level i, one level after another."""
        total = 0.0
        for spec, n in zip(self.levels, blocks_per_level, strict=True):
            if n:
                total += spec.latency_s + n * self.block_bytes / spec.read_bw_bytes_per_s
        return total

    def take(self, plan: ReloadPlan) -> None:
        """Carry out a reload: local levels give the blocks up, the shared pool keeps (and touches) them."""
        for key, level in zip(plan.keys, plan.level_of_key, strict=True):
            store = self._stores[level]
            if self.levels[level].shared:
                store.touch(key)
            else:
                store.remove(key)
            self._reloaded[level] += 1

    @property
    def stats(self) -> OffloadStats:
        """Block traffic per level since the tiers were made."""
        return OffloadStats(tuple(self._demoted), tuple(self._reloaded), self._lost)


def reload_time_s(tokens: int, kv_bytes_per_token: float, tier: TierSpec) -> float:
    """Time to bring ``tokens`` tokens of KV from ``tier`` to the device: latency + bytes / read bandwidth."""
    return tier.latency_s + tokens * kv_bytes_per_token / tier.read_bw_bytes_per_s


def breakeven_tokens(kv_bytes_per_token: float, tier: TierSpec, prefill_s_per_token: float) -> float:
    """Prefix length (tokens) above which reloading from ``tier`` beats prefilling it again.

    Reloading n tokens costs ``latency + n * kv_bytes / bw``; recomputing costs
    ``n * prefill_s_per_token`` (the backend's prefill time per token at that
    context). Reload wins for ``n > latency / (prefill_s_per_token - kv_bytes /
    bw)``; ``inf`` when the link moves a token's KV slower than the GPU
    computes it, so reloading never pays.
    """
    if not (prefill_s_per_token > 0 and math.isfinite(prefill_s_per_token)):
        raise ConfigError(f"prefill_s_per_token must be > 0, got {prefill_s_per_token!r}")
    margin = prefill_s_per_token - kv_bytes_per_token / tier.read_bw_bytes_per_s
    return tier.latency_s / margin if margin > 0 else math.inf


def reload_beats_recompute(
    tokens: int, kv_bytes_per_token: float, tier: TierSpec, prefill_s_per_token: float
) -> bool:
    """True when fetching ``tokens`` tokens of KV from ``tier`` is faster than prefilling them."""
    return tokens > breakeven_tokens(kv_bytes_per_token, tier, prefill_s_per_token)
