"""StepShape sums, counted by hand."""

from __future__ import annotations

from twinfer.models.step import StepShape, causal_pairs


def test_decode_shape_of_multi_token_steps():
    # 3 sequences verifying 2 drafts each: 3 query tokens per sequence, contexts given with them
    s = StepShape.decode([100, 200, 300], tokens_per_seq=3)
    assert (s.decode_seqs, s.decode_context_tokens, s.decode_extra_tokens) == (3, 600, 6)
    assert s.total_tokens == 9 and s.logit_rows == 9 and s.num_seqs == 3
    assert StepShape.decode([100, 200]) == StepShape(decode_seqs=2, decode_context_tokens=300)


def test_shapes_add_field_by_field():
    a = StepShape.prefill([5], [2]) + StepShape.decode([10, 20], tokens_per_seq=2)
    # prefill: 5 new tokens on 2 cached: pairs 5*2 + 5*6/2 = 25, KV read 7
    assert causal_pairs(5, 2) == 25
    assert a == StepShape(prefill_tokens=5, prefill_seqs=1, prefill_attn_pairs=25, prefill_kv_tokens=7,
                          decode_seqs=2, decode_context_tokens=30, decode_extra_tokens=2)
    assert a.total_tokens == 5 + 2 + 2 and a.logit_rows == 1 + 2 + 2
