"""KV-aware routing score in the manner of NVIDIA Dynamo's KV router, as a pure function.

Dynamo's router (docs.nvidia.com/dynamo, "Router Design" and "Routing
Concepts") costs each worker as

    cost = overlap_score_weight * prefill_blocks + decode_blocks

where ``prefill_blocks`` is the prompt work the worker would have to compute
(its active prompt load plus the new request's *uncached* tokens, in blocks)
and ``decode_blocks`` its active KV blocks plus the new request's; the lowest
cost wins (temperature 0: deterministic). A worker that already holds a long
prefix of the request saves prefill blocks; a busy one pays for its load. The
weight trades the two: 0 ignores the cache, large values chase it.

The function reads only an :class:`InstanceSnapshot` per candidate, so the
router registry can wrap it without reaching into instances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twinfer.errors import ConfigError
from twinfer.kvcache.chain import KeyList


@dataclass(frozen=True)
class InstanceSnapshot:
    """What the router may read of one candidate instance at decision time."""

    instance_id: int
    outstanding_prefill_tokens: int  # prompt tokens admitted or queued but not yet prefilled
    active_kv_blocks: int  # KV blocks held by its running requests (decode load)
    queued_requests: int  # requests waiting for admission (tie-break only)
    cached_blocks: Callable[[KeyList], int]  # leading blocks of a key list it holds (read-only)


@dataclass(frozen=True)
class RouteCost:
    """One candidate's cost terms (blocks) for one request."""

    instance_id: int
    cached_blocks: int  # leading blocks of the request already on this instance
    prefill_blocks: float  # (outstanding prefill + uncached prompt tokens) / block_tokens
    decode_blocks: float  # active KV blocks + the request's own blocks
    cost: float  # overlap_weight * prefill_blocks + decode_blocks


@dataclass(frozen=True)
class RouteDecision:
    """The chosen instance, its cached tokens, and the most any candidate had cached."""

    instance_id: int
    cached_tokens: int  # prompt tokens the chosen instance holds
    best_cached_tokens: int  # the most any candidate holds (router-vs-cache report)
    costs: tuple[RouteCost, ...]  # every candidate, in the order given


def route_costs(
    keys: KeyList,
    prompt_tokens: int,
    candidates: Sequence[InstanceSnapshot],
    *,
    block_tokens: int,
    overlap_weight: float = 1.0,
) -> tuple[RouteCost, ...]:
    """Dynamo-style cost of sending a request (chain ``keys``, ``prompt_tokens``) to each candidate."""
    if block_tokens < 1:
        raise ConfigError(f"kv_aware routing: block_tokens must be >= 1, got {block_tokens}")
    if not (overlap_weight >= 0 and math.isfinite(overlap_weight)):
        raise ConfigError(f"kv_aware routing: overlap_weight must be >= 0, got {overlap_weight!r}")
    request_blocks = len(keys)
    out = []
    for snap in candidates:
        cached = min(snap.cached_blocks(keys), request_blocks)
        uncached_tokens = max(prompt_tokens - cached * block_tokens, 0)
        prefill = (snap.outstanding_prefill_tokens + uncached_tokens) / block_tokens
        decode = float(snap.active_kv_blocks + request_blocks)
        out.append(RouteCost(snap.instance_id, cached, prefill, decode, overlap_weight * prefill + decode))
    return tuple(out)


def choose_instance(
    keys: KeyList,
    prompt_tokens: int,
    candidates: Sequence[InstanceSnapshot],
    *,
    block_tokens: int,
    overlap_weight: float = 1.0,
) -> RouteDecision:
    """The lowest-cost candidate; ties go to fewer queued requests, then to the earlier candidate."""
    if not candidates:
        raise ConfigError("kv_aware routing: no candidate instances")
    costs = route_costs(
        keys, prompt_tokens, candidates, block_tokens=block_tokens, overlap_weight=overlap_weight
    )
    best = min(
        range(len(costs)), key=lambda i: (costs[i].cost, candidates[i].queued_requests, i)
    )

    def tokens(c: RouteCost) -> int:
        return min(c.cached_blocks * block_tokens, prompt_tokens)

    return RouteDecision(
        instance_id=costs[best].instance_id,
        cached_tokens=tokens(costs[best]),
        best_cached_tokens=max(tokens(c) for c in costs),
        costs=costs,
    )
