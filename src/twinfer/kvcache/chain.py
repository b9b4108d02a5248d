"""Chain keys: one integer per distinct prompt prefix, so equal keys mean equal whole prefixes.

A KV block can be reused only when every block before it matches too (the
attention keys and values of a token depend on all tokens before it). Traces
give per-request block ids (Mooncake ``hash_ids``, twinfer ``prefix_block_ids``,
the synthetic session generator); :class:`ChainInterner` turns the id list of
each request into chain keys, where key ``j`` names the prefix ``ids[:j+1]``.
Two requests share key ``j`` only if their first ``j + 1`` ids are equal, so
the cache, the router and the offload tiers can compare single integers and
still respect the prefix rule. Keys are dense (0, 1, 2, ... in first-seen
order) and exact: no hashing, so no collisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: One request's block ids or chain keys, in prompt order.
KeyList = Sequence[int] | np.ndarray


class ChainInterner:
    """Assigns a dense key to each distinct (parent key, block id) pair.

    One interner per fleet (or per workload) so that every instance, the router
    and a shared store agree on keys. Deterministic: keys depend only on the
    order in which prefixes are first seen.
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        """Number of distinct prefixes (blocks) seen so far."""
        return len(self._keys)

    def keys_for(self, block_ids: Iterable[int]) -> np.ndarray:
        """Chain keys (int64) of one request's block ids, in prompt order."""
        table = self._keys
        parent = -1  # the empty prefix
        out: list[int] = []
        for block in block_ids:
            pair = (parent, int(block))
            key = table.get(pair)
            if key is None:
                key = len(table)
                table[pair] = key
            out.append(key)
            parent = key
        return np.asarray(out, dtype=np.int64)


def chain_keys(block_ids_per_request: Sequence[KeyList]) -> tuple[np.ndarray, ...]:
    """Chain keys for every request of a workload, from a fresh :class:`ChainInterner`."""
    interner = ChainInterner()
    return tuple(interner.keys_for(ids) for ids in block_ids_per_request)
