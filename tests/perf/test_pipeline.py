"""Pipelined instances: a lane's share of a batch, and saturated throughput in closed form."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.perf.pipeline import PipelinedInstance, lane_share, pipelined


@dataclass
class PerSeqCost:
    """A pipelined instance whose step takes ``per_seq_s`` per sequence in one lane's micro-batch."""

    per_seq_s: float
    lanes: int
    batch: int = 4

    def step_time_s(self, shape: StepShape) -> float:
        return self.per_seq_s * shape.num_seqs

    def resources(self) -> InstanceResources:
        return InstanceResources(hardware="fake", num_devices=8 * self.lanes, kv_capacity_tokens=10_000,
                                 max_batch_seqs=self.batch, price_per_hour_usd=10.0, power_idle_w=100.0,
                                 power_max_w=300.0, pipeline_lanes=self.lanes)


def test_lane_share_splits_decodes_and_keeps_prefills_whole() -> None:
    shape = StepShape.decode([100] * 10) + StepShape.prefill([512])
    share = lane_share(shape, 4)
    assert share.decode_seqs == 3  # ceil(10 / 4)
    assert share.decode_context_tokens == 300
    assert (share.prefill_seqs, share.prefill_tokens) == (1, 512)  # one whole prompt
    assert share.prefill_attn_pairs == shape.prefill_attn_pairs
    assert lane_share(shape, 1) is shape


def test_lane_share_of_multi_token_decodes_carries_their_drafts() -> None:
    share = lane_share(StepShape.decode([100] * 10, tokens_per_seq=3), 4)
    assert (share.decode_seqs, share.decode_extra_tokens) == (3, 6)  # 3 of the 10 sequences, 2 drafts each


def test_pipelined_instance_keeps_kv_and_multiplies_the_batch_cap() -> None:
    cost = PipelinedInstance(PerSeqCost(0.001, lanes=72))
    res = cost.resources()
    assert (res.max_batch_seqs, res.kv_capacity_tokens, res.pipeline_lanes) == (4 * 72, 10_000, 1)
    assert res.price_per_hour_usd == 10.0
    # 144 decoding sequences: each lane carries 2, so the step costs two sequences' time.
    assert cost.step_time_s(StepShape.decode([50] * 144)) == pytest.approx(0.002)


def test_unpipelined_instance_is_left_alone() -> None:
    cost = PerSeqCost(0.001, lanes=1)
    assert pipelined(cost) is cost


def test_pipelining_multiplies_saturated_throughput_in_the_simulator() -> None:
    # Closed form: S*B one-token prompts wanting G tokens, all at t=0, on one instance of
    # S lanes x batch B whose lane step takes B*c. Every step carries all S*B sequences
    # (B per lane), the first step prefills and yields token 1, so all finish at G*B*c.
    from twinfer.sim.batching import BatchingConfig
    from twinfer.sim.cluster import FleetSim, PoolSetup

    per_seq, lanes, batch, gen = 0.001, 4, 4, 10
    sim = FleetSim([PoolSetup(role="mixed", cost=pipelined(PerSeqCost(per_seq, lanes, batch)), count=1,
                              batching=BatchingConfig())], kv_bytes_per_token=1.0, num_layers=1)
    n = lanes * batch
    sim.load_workload([0.0] * n, [1] * n, [gen] * n)
    sim.run_until()
    assert sim.completed == n
    makespan = max(r.finish_s for r in sim.requests)
    step = batch * per_seq
    assert makespan == pytest.approx(gen * step, rel=1e-12)
    # Unpipelined with the same per-lane cap, the same work needs S batches back to back.
    sim1 = FleetSim([PoolSetup(role="mixed", cost=PerSeqCost(per_seq, 1, batch), count=1,
                               batching=BatchingConfig())], kv_bytes_per_token=1.0, num_layers=1)
    sim1.load_workload([0.0] * n, [1] * n, [gen] * n)
    sim1.run_until()
    assert max(r.finish_s for r in sim1.requests) >= lanes * gen * step - 1e-12
