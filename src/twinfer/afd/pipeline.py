"""The ping-pong pipeline of an AFD decode step, and the bytes its M-to-N dispatch moves.

An AFD decode instance splits every layer between two device groups
(MegaScale-Infer, arXiv 2504.02263): the attention group (GPUs holding the
KV cache) runs attention and the other non-FFN ops, the FFN group (LPU chips
or GPUs) runs the FFN or the routed experts. The batch is cut into ``m``
micro-batches; in each of the ``L`` layers that cross, a micro-batch visits
four resources in order, each taking a fixed time per micro-batch:

    attention (a) -> link to the FFN group (d) -> FFN (f) -> link back (c)

A resource serves one micro-batch at a time, and a micro-batch's next layer
starts only when its previous one came back. With ``R = a + d + f + c`` (one
micro-batch's round trip through one layer) and ``T = max(a, d, f, c)`` (the
busiest resource), the step takes

    step = R + (m - 1) * T + (L - 1) * max(R, m * T)

Derivation (a flow shop of ``m * L`` jobs, job ``(layer l, micro-batch i)``
taken in the order ``l * m + i``, with the cyclic constraint that job
``k + m`` starts only after job ``k`` ends):

* Enough micro-batches (``m * T >= R``): start job ``k`` on resource ``s``
  at ``k * T + (time of the resources before s)``. Each resource then runs a
  job every ``T`` >= its own time, and job ``k + m`` starts at
  ``(k + m) * T >= k * T + R``, after job ``k`` ended. The last job ends at
  ``(m * L - 1) * T + R``. No schedule is faster: the busiest resource must
  serve ``m * L`` jobs of ``T`` each, after the resources before it served
  the first job and before those after it served the last. So
  ``step = R + (m * L - 1) * T`` (MegaScale-Infer's iteration latency), the
  busiest resource never idles and the link time hides behind compute when
  ``T`` is a compute time.
* Too few micro-batches (``m * T < R``): the cycle binds. Job ``(l, i)``
  starts at ``l * R + i * T``; the last ends at ``L * R + (m - 1) * T``, and
  no schedule is faster, since the last micro-batch through the busiest
  resource in the first layer still needs ``L`` round trips.

Both cases are the one formula above. ``m = 1`` gives ``L * R``: no overlap.
"""

from __future__ import annotations

from twinfer.errors import ConfigError


def ping_pong_step_s(layers: int, micro_batches: int, attention_s: float, dispatch_s: float, ffn_s: float,
                     combine_s: float) -> float:
    """Time of ``layers`` crossing layers for ``micro_batches`` ping-ponging micro-batches (see the module doc).

    Each time is one micro-batch through one layer on that resource.
    """
    if layers < 0 or micro_batches < 1:
        raise ConfigError(f"a ping-pong pipeline needs layers >= 0 and micro_batches >= 1, got {layers}, {micro_batches}")
    if layers == 0:
        return 0.0
    one_round = attention_s + dispatch_s + ffn_s + combine_s
    busiest = max(attention_s, dispatch_s, ffn_s, combine_s)
    return one_round + (micro_batches - 1) * busiest + (layers - 1) * max(one_round, micro_batches * busiest)


def dispatch_bytes(tokens: int, top_k: int, hidden: int, bytes_per_element: float) -> float:
    """Bytes the M-to-N dispatch moves for ``tokens`` tokens: one hidden vector per (token, expert) pair.

    Every picked expert lives on the FFN group, never beside the attention that
    sends, so all ``tokens x top_k`` copies cross the link (a dense FFN is
    ``top_k = 1``). The combine moves as many back, in its own element size.
    """
    if tokens < 0 or top_k < 1 or hidden < 1 or bytes_per_element <= 0:
        raise ConfigError(f"dispatch needs tokens >= 0, top_k >= 1, hidden >= 1 and bytes > 0; got "
                          f"{tokens}, {top_k}, {hidden}, {bytes_per_element}")
    return float(tokens) * top_k * hidden * bytes_per_element
