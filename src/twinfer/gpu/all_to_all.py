"""The all-to-all of MoE expert parallelism: bytes each rank moves, and how long that takes.

With wide expert parallelism (DeepSeek-V3's serving layout, SGLang/DeepEP)
each MoE layer sends every token's hidden state to the ranks that hold its
top-k experts (*dispatch*) and the expert outputs back (*combine*). Under
uniform routing a picked expert lives on another rank with probability
(ep - 1) / ep, so one rank sends

    tokens x top_k x hidden x bytes x (ep - 1) / ep

per dispatch and receives as much per combine. This counts one copy per
(token, expert) pair, as a plain all-to-all does; DeepEP sends a token once
per destination *rank*, which saves little when top_k is small beside ep
(an upper bound, stated rather than hidden). The time is alpha-beta on the
link the ranks share (NVLink inside one NVLink domain): each rank's port
carries its own bytes and the switch gives full bisection, so the busiest
rank sets the time.
"""

from __future__ import annotations

from twinfer.errors import ConfigError


def dispatch_bytes_per_rank(tokens_per_rank: float, top_k: int, hidden: int, bytes_per_element: float, ep: int) -> float:
    """Bytes one rank sends in one dispatch (and receives in one combine) under uniform routing."""
    if ep < 1 or top_k < 1:
        raise ConfigError(f"all-to-all needs ep >= 1 and top_k >= 1, got ep={ep}, top_k={top_k}")
    return tokens_per_rank * top_k * hidden * bytes_per_element * (ep - 1) / ep


def all_to_all_time_s(bytes_per_rank: float, bw_bytes_per_s: float, latency_s: float) -> float:
    """Alpha-beta time of an all-to-all whose busiest rank moves ``bytes_per_rank`` each way.

    ``bw_bytes_per_s`` is the achieved per-direction bandwidth of one rank's
    port; nothing to move costs nothing (a single rank has no all-to-all).
    """
    if bytes_per_rank <= 0:
        return 0.0
    return latency_s + bytes_per_rank / bw_bytes_per_s
