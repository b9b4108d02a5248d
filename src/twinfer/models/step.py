"""StepShape: what one forward pass of a batch computes, aggregated over its sequences.

A step mixes sequences still in prefill (each computing a chunk of new
tokens on top of tokens already cached) and sequences in decode (one new
token each, or ``k + 1`` when verifying ``k`` speculative tokens: the extra
query tokens are ``decode_extra_tokens``). Every cost that a backend needs is a sum over sequences, so
the shape keeps those sums and nothing per sequence: a simulator can build
one in O(1) per sequence and a backend can cost it in O(1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


def causal_pairs(new_tokens: int, cached_tokens: int) -> int:
    """Query-key pairs of causal attention for ``new_tokens`` appended to ``cached_tokens``.

    Query i (0-based) sits at position cached+i and sees cached+i+1 keys, so the
    sum is new*cached + new*(new+1)/2.
    """
    return new_tokens * cached_tokens + new_tokens * (new_tokens + 1) // 2


class StepShape(NamedTuple):
    """One forward step of a batch, as sums over its sequences (immutable).

    A named tuple rather than a frozen dataclass: the simulator builds one per
    priced step (millions per run), and a tuple is built ~2.5x faster.
    """

    prefill_tokens: int = 0  # new tokens of sequences in prefill (a chunk counts its chunk)
    prefill_seqs: int = 0  # sequences in prefill this step
    prefill_attn_pairs: int = 0  # causal query-key pairs of those sequences this step
    prefill_kv_tokens: int = 0  # sum over prefill seqs of cached + new tokens (K/V read)
    decode_seqs: int = 0  # sequences in decode this step
    decode_context_tokens: int = 0  # sum of their context lengths, new tokens included
    decode_extra_tokens: int = 0  # query tokens of decode sequences beyond one each (k per seq verifying k drafts)

    @property
    def total_tokens(self) -> int:
        """Tokens that pass through every projection and FFN this step."""
        return self.prefill_tokens + self.decode_seqs + self.decode_extra_tokens

    @property
    def logit_rows(self) -> int:
        """Positions whose logits the step computes: the last of each sequence, and every decode query token."""
        return self.prefill_seqs + self.decode_seqs + self.decode_extra_tokens

    @property
    def num_seqs(self) -> int:
        """Sequences in the batch."""
        return self.prefill_seqs + self.decode_seqs

    @classmethod
    def prefill(cls, prompt_lens: Iterable[int], cached_lens: Iterable[int] | None = None) -> StepShape:
        """Prefill of whole prompts (or chunks of ``prompt_lens`` on top of ``cached_lens``)."""
        news = list(prompt_lens)
        cached = list(cached_lens) if cached_lens is not None else [0] * len(news)
        return cls(
            prefill_tokens=sum(news),
            prefill_seqs=len(news),
            prefill_attn_pairs=sum(causal_pairs(n, c) for n, c in zip(news, cached, strict=True)),
            prefill_kv_tokens=sum(n + c for n, c in zip(news, cached, strict=True)),
        )

    @classmethod
    def decode(cls, context_lens: Iterable[int], tokens_per_seq: int = 1) -> StepShape:
        """One decode step computing ``tokens_per_seq`` tokens for each sequence whose context is ``context_lens``.

        ``context_lens`` count every token the step attends to, its new tokens included.
        """
        ctx = list(context_lens)
        return cls(decode_seqs=len(ctx), decode_context_tokens=sum(ctx),
                   decode_extra_tokens=(tokens_per_seq - 1) * len(ctx))

    def __add__(self, other: StepShape) -> StepShape:  # type: ignore[override]  # field-wise, not concatenation
        return StepShape(
            self.prefill_tokens + other.prefill_tokens,
            self.prefill_seqs + other.prefill_seqs,
            self.prefill_attn_pairs + other.prefill_attn_pairs,
            self.prefill_kv_tokens + other.prefill_kv_tokens,
            self.decode_seqs + other.decode_seqs,
            self.decode_context_tokens + other.decode_context_tokens,
            self.decode_extra_tokens + other.decode_extra_tokens,
        )
