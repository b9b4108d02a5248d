"""The lazy decode batch: token counts, max token gaps and finishes, counted by hand."""

from __future__ import annotations

from twinfer.sim.decode_batch import DecodeBatch
from twinfer.sim.request import Request


class _Batch(DecodeBatch):
    def __init__(self) -> None:
        self.bt, self.reserve, self.free_blocks, self.outstanding = 16, True, 100, 0
        super().__init__()


def _step(b: _Batch, t_end: float) -> list[int]:
    n = len(b.decoding)
    gap = t_end - b.last_decode_end
    joined = b.take_joiners()
    b.advance_decode_run(n, 1, t_end, gap if n > len(joined) else None)
    res = b.finish_due(t_end)
    return [r.rid for r in res.finished] if res else []


def test_members_leave_on_their_last_token_with_the_largest_gap_since_they_joined():
    b = _Batch()
    a, c = Request(0, 0.0, 10, 4), Request(1, 0.0, 10, 4)
    a.generated = c.generated = 1  # first token from prefill
    b._join(a)
    assert _step(b, 1.0) == []  # a: token 2 (its first decode step: its own gap, not the stack's)
    b._join(c)
    assert _step(b, 4.0) == []  # a: token 3 after a 3 s gap; c: token 2
    assert b.tokens_of(a) == 3 and b.tokens_of(c) == 2
    assert _step(b, 5.0) == [0]  # a: token 4 of 4 after 1 s; c: token 3
    assert a.max_tbt_s == 3.0 and a.finish_s == 5.0 and a.generated == 4
    assert _step(b, 5.5) == [1]  # c alone: token 4 of 4 after 0.5 s
    # c's own first gap (3 s) is the caller's to record; from its second step on: max(1, 0.5)
    assert c.generated == 4 and c.finish_s == 5.5 and c.max_tbt_s == 1.0
    assert b.ctx_sum == 0 and not b.decoding and b.free_blocks == 100
