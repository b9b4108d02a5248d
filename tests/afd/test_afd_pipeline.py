"""Golden tests of the ping-pong closed form and the M-to-N dispatch volume (hand-computed numbers)."""

from __future__ import annotations

import heapq
import itertools

import pytest

from twinfer.afd.pipeline import dispatch_bytes, ping_pong_step_s
from twinfer.errors import ConfigError


def test_saturated_pipeline_by_hand():
    # L=3 layers, m=3 micro-batches, a=2, d=1, f=2, c=1: R = 6, T = 2, m*T = 6 >= R,
    # so step = R + (m*L - 1) * T = 6 + 8 * 2 = 22 (MegaScale-Infer's iteration latency).
    assert ping_pong_step_s(3, 3, 2.0, 1.0, 2.0, 1.0) == pytest.approx(22.0)


def test_cycle_bound_pipeline_by_hand():
    # L=2, m=2, a=3, d=1, f=2, c=1: R = 7, T = 3, m*T = 6 < R. Schedule by hand:
    # mb0 L0: A[0,3] D[3,4] F[4,6] C[6,7];  mb1 L0: A[3,6] D[6,7] F[7,9] C[9,10]
    # mb0 L1: A[7,10] D[10,11] F[11,13] C[13,14];  mb1 L1: A[10,13] D[13,14] F[14,16] C[16,17] -> 17.
    assert ping_pong_step_s(2, 2, 3.0, 1.0, 2.0, 1.0) == pytest.approx(17.0)


def test_one_micro_batch_has_no_overlap():
    # m = 1: every layer is a full round trip, L * R = 4 * (5 + 1 + 7 + 1) = 56.
    assert ping_pong_step_s(4, 1, 5.0, 1.0, 7.0, 1.0) == pytest.approx(56.0)


def _simulate(layers: int, m: int, times: tuple[float, ...]) -> float:
    """Event-driven reference: each resource serves the earliest-ready micro-batch (FIFO), one at a time."""
    free = [0.0] * len(times)
    ready = [(0.0, i, 0, 0) for i in range(m)]  # (ready time, micro-batch, layer, resource)
    heapq.heapify(ready)
    end = 0.0
    while ready:
        t, i, layer, s = heapq.heappop(ready)
        start = max(t, free[s])
        free[s] = start + times[s]
        s2, l2 = (s + 1, layer) if s + 1 < len(times) else (0, layer + 1)
        if l2 < layers:
            heapq.heappush(ready, (free[s], i, l2, s2))
        end = max(end, free[s])
    return end


@pytest.mark.parametrize("layers,m", [(1, 1), (1, 3), (2, 2), (5, 2), (4, 3), (3, 4)])
def test_closed_form_matches_an_event_simulation(layers, m):
    for times in itertools.product((1.0, 2.0, 5.0), (0.5, 3.0), (1.0, 4.0), (0.5, 2.5)):
        assert ping_pong_step_s(layers, m, *times) == pytest.approx(_simulate(layers, m, times)), times


def test_dispatch_volume_by_hand():
    # DeepSeek-V3-like: 4 tokens x top-8 x hidden 7168 x 1 byte (fp8) = 229,376 bytes.
    assert dispatch_bytes(4, 8, 7168, 1.0) == 229_376
    # Mixtral-like combine: 16 tokens x top-2 x 4096 x 2 bytes (bf16) = 262,144 bytes.
    assert dispatch_bytes(16, 2, 4096, 2.0) == 262_144


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="micro_batches"):
        ping_pong_step_s(2, 0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="top_k"):
        dispatch_bytes(4, 0, 8, 1.0)
