"""A request as the simulator sees it: tokens computed, tokens wanted, phase timestamps.

Follows vLLM v1: there is no prefill or decode *state*; a request has prompt
tokens whose KV is computed on its current instance (``computed``) and output
tokens emitted so far (``generated``). Prefill and decode pools treat requests
differently only by scheduling policy.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

NAN = float("nan")


class RequestState(IntEnum):
    """Where a request is in its life (an int, so result columns store it as one byte)."""

    NEW = 0  # created, not yet arrived at the fleet
    WAITING = 1  # queued at an instance for (re)prefill
    PREFILLING = 2  # admitted: prompt partly computed, or computed and about to join the decode batch
    DECODING = 3  # a member of an instance's decode batch
    TRANSFERRING = 4  # prefill done, KV waiting for room on, or moving to, a decode instance
    DONE = 5  # emitted its last token
    REJECTED = 6  # never fits one instance's KV cache
    CANCELLED = 7  # cancelled by its client (FleetSim.cancel) before its last token


_NEW = RequestState.NEW  # (reading an enum member off its class costs ~170 ns; a request is made per arrival)


class Request:
    """One inference request moving through a simulated fleet (mutable, slotted for speed)."""

    __slots__ = (
        "rid", "arrival_s", "prompt_tokens", "output_tokens",
        "computed", "generated", "recompute_tokens",
        "prefill_start_s", "prefill_end_s", "first_token_s", "kv_start_s", "kv_end_s",
        "decode_start_s", "finish_s", "last_token_s", "max_tbt_s",
        "preemptions", "prefill_instance", "decode_instance", "instance",
        "blocks", "blocks_in", "join_tok", "gen_at_join", "epoch", "state", "cancelled", "user", "keys",
    )

    def __init__(self, rid: int, arrival_s: float, prompt_tokens: int, output_tokens: int) -> None:
        self.rid = rid  # index in the workload
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens  # tokens wanted (>= 1)
        self.computed = 0  # prefill tokens whose KV exists on the current instance
        self.generated = 0  # output tokens emitted (lazy while in a decode batch)
        self.recompute_tokens = 0  # tokens to prefill after a preemption (prompt + generated)
        self.prefill_start_s = NAN
        self.prefill_end_s = NAN
        self.first_token_s = NAN
        self.kv_start_s = NAN
        self.kv_end_s = NAN
        self.decode_start_s = NAN
        self.finish_s = NAN
        self.last_token_s = NAN
        self.max_tbt_s = 0.0
        self.preemptions = 0
        self.prefill_instance = -1
        self.decode_instance = -1
        self.instance = -1  # the instance whose scheduler holds it now (-1: none yet)
        self.blocks = 0  # KV blocks held on the current instance
        self.blocks_in = 0  # KV blocks reserved on the decode instance while the transfer runs
        self.join_tok = 0  # decode-token counter of the instance when it joined (see twinfer.sim.decode_batch)
        self.gen_at_join = 0  # tokens generated when it joined
        self.epoch = 0  # bumps on every leave, to invalidate stale heap entries
        self.state = _NEW
        self.cancelled = False  # FleetSim.cancel asked it to leave at its instance's next step boundary
        self.user: object = None  # free slot for the emulation server (e.g. a client handle)
        self.keys: Any = None  # chain keys of its prompt's full prefix blocks (twinfer.kvcache.chain), or None

    @property
    def tokens_wanted(self) -> int:
        """Tokens the request needs computed in all: its prompt and its output (vLLM's prompt + max_tokens)."""
        return self.prompt_tokens + self.output_tokens

    @property
    def tokens_done(self) -> int:
        """Tokens done so far: prompt tokens whose KV is on its instance plus output tokens emitted.

        While it decodes, ``generated`` is resolved lazily by its instance's
        scheduler (``Scheduler.tokens_of``); this reads the last resolved value.
        """
        return self.computed + self.generated

    @property
    def prefill_target(self) -> int:
        """Tokens the current instance must prefill (the prompt, or prompt + output so far after a preemption)."""
        return self.recompute_tokens or self.prompt_tokens

    def __repr__(self) -> str:
        return (
            f"Request(rid={self.rid}, arrival_s={self.arrival_s:.4f}, prompt={self.prompt_tokens}, "
            f"output={self.output_tokens}, computed={self.computed}, generated={self.generated})"
        )
