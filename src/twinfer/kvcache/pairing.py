"""Prefill-to-decode pairing that looks at the KV link: pick the decode instance whose KV lands first.

In a disaggregated fleet the prefill instance must hand the request's KV to a
decode instance. A decode instance with room is not enough: if the link to it
is busy with earlier transfers, the request waits there. The pairing cost of
a candidate is when the KV would be ready on it,

    ready_s = max(now_s, link_free_at_s) + link_latency_s + kv_bytes / link_bw_bytes_per_s

plus ``load_weight_s`` seconds per request already decoding there (0 by
default: the link alone decides). Candidates without room for the request's
KV are skipped; with none left the caller keeps the request waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twinfer.errors import ConfigError


@dataclass(frozen=True)
class DecodeCandidate:
    """A decode instance as the pairing sees it, with the link from the prefill instance to it."""

    instance_id: int
    free_kv_tokens: int  # KV room left on the decode instance
    active_requests: int  # requests decoding there now
    link_free_at_s: float  # when the link finishes the transfers already queued on it
    link_bw_bytes_per_s: float
    link_latency_s: float = 0.0


@dataclass(frozen=True)
class Pairing:
    """The chosen decode instance and when the request's KV will be ready on it."""

    instance_id: int
    kv_ready_s: float
    cost_s: float  # kv_ready_s + load_weight_s * active_requests


def choose_decode(
    now_s: float,
    kv_bytes: float,
    kv_tokens: int,
    candidates: Sequence[DecodeCandidate],
    *,
    load_weight_s: float = 0.0,
) -> Pairing | None:
    """The candidate with the lowest cost (module doc); ties to fewer active requests, then order."""
    if kv_bytes < 0 or load_weight_s < 0:
        raise ConfigError("decode pairing: kv_bytes and load_weight_s must be >= 0")
    best: tuple[float, int, int] | None = None
    choice: Pairing | None = None
    for order, cand in enumerate(candidates):
        if cand.free_kv_tokens < kv_tokens:
            continue
        if not cand.link_bw_bytes_per_s > 0:
            raise ConfigError(f"decode pairing: instance {cand.instance_id} has link bandwidth <= 0")
        ready = max(now_s, cand.link_free_at_s) + cand.link_latency_s + kv_bytes / cand.link_bw_bytes_per_s
        cost = ready + load_weight_s * cand.active_requests
        key = (cost, cand.active_requests, order)
        if best is None or key < best:
            best, choice = key, Pairing(cand.instance_id, ready, cost)
    return choice
