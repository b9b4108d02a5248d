"""Pipelined instances as micro-batch lanes: shares of resources, and throughput in closed form."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources
from twinfer.perf.pipeline import PipelineLane, as_lanes


@dataclass
class FixedPipelined:
    """A pipelined instance whose every step takes ``step_s`` regardless of the batch."""

    step_s: float
    lanes: int

    def step_time_s(self, shape: StepShape) -> float:
        return self.step_s

    def resources(self) -> InstanceResources:
        return InstanceResources(hardware="fake", num_devices=8 * self.lanes, kv_capacity_tokens=1000 * self.lanes,
                                 max_batch_seqs=4, price_per_hour_usd=10.0 * self.lanes, power_idle_w=100.0 * self.lanes,
                                 power_max_w=300.0 * self.lanes, pipeline_lanes=self.lanes)


def test_lane_gets_an_equal_share_and_the_same_step_time() -> None:
    lane = PipelineLane(FixedPipelined(0.002, lanes=72))
    res = lane.resources()
    assert (res.num_devices, res.kv_capacity_tokens, res.pipeline_lanes) == (8, 1000, 1)
    assert res.price_per_hour_usd == pytest.approx(10.0)
    assert (res.power_idle_w, res.power_max_w) == (pytest.approx(100.0), pytest.approx(300.0))
    assert lane.step_time_s(StepShape.decode([10])) == 0.002


def test_unpipelined_instance_is_left_alone() -> None:
    cost = FixedPipelined(0.002, lanes=1)
    same, lanes = as_lanes(cost)
    assert same is cost and lanes == 1


def _makespan(lanes: int, n: int, gen: int, step_s: float) -> float:
    from twinfer.sim.batching import BatchingConfig
    from twinfer.sim.cluster import FleetSim, PoolSetup

    lane_cost, count = as_lanes(FixedPipelined(step_s, lanes))
    sim = FleetSim([PoolSetup(role="mixed", cost=lane_cost, count=count, batching=BatchingConfig())],
                   kv_bytes_per_token=1.0, num_layers=1)
    sim.load_workload([0.0] * n, [1] * n, [gen] * n)
    sim.run_until()
    assert sim.completed == n
    return max(r.finish_s for r in sim.requests)


def test_lanes_hold_one_batch_each_in_flight() -> None:
    # Closed form: S*B one-token prompts wanting G tokens each, all at t=0, on S lanes of
    # batch cap B with a fixed step time T: every lane runs one full batch, whose first
    # step (the prefill) yields token 1 and G-1 decode steps the rest, so all finish at G*T.
    # The simulator may start a lane's first step on the first of several simultaneous
    # arrivals, so the rest join one step later: allow that one step.
    step_s, lanes, batch, gen = 0.002, 4, 4, 10
    assert gen * step_s - 1e-12 <= _makespan(lanes, lanes * batch, gen, step_s) <= (gen + 1) * step_s + 1e-12


def test_without_lanes_the_same_work_queues() -> None:
    # One lane of cap B serves the S*B requests B at a time: at least S batches back to back.
    step_s, batch, gen, stages = 0.002, 4, 10, 4
    assert _makespan(1, stages * batch, gen, step_s) >= stages * gen * step_s - 1e-12
