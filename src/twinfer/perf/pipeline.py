"""Pipelined instances: one micro-batch per pipeline stage in flight.

An instance split into S pipeline stages (an LPU system's chip groups, or
GPU pipeline parallelism) holds S micro-batches at once: while stage 2 works
on one, stage 1 starts the next. Each micro-batch still needs the full
pipeline latency per step. So a step of N sequences on the instance is S
lanes each carrying about N/S of them, all finishing after the latency of
one lane's share:

    step_time(batch) = step_time_one_lane(batch / S)

Decode sequences split evenly over the lanes; a prefill sequence is never
split (a lane carries whole prompts), so a lane's share holds at least one
whole prefill chunk when any is present. The instance keeps one KV cache
(every stage's SRAM or HBM holds its layers' KV for all micro-batches), and
its batch cap is S x the per-lane cap.

Exact for decode-only steps with equal stages. Two approximations, both
conservative: a step that mixes a prefill with decodes makes every
decode wait for the lane carrying the prefill (in reality only that lane's
decodes wait), and link flight time inside the step latency is counted as
if it occupied the stages.
"""

from __future__ import annotations

from dataclasses import replace

from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources, StepCostModel


def lane_share(shape: StepShape, lanes: int) -> StepShape:
    """The share of ``shape`` that the busiest of ``lanes`` lanes carries."""
    if lanes <= 1:
        return shape
    dec = -(-shape.decode_seqs // lanes)  # ceil
    pre = -(-shape.prefill_seqs // lanes)
    f_dec = dec / shape.decode_seqs if shape.decode_seqs else 0.0
    f_pre = pre / shape.prefill_seqs if shape.prefill_seqs else 0.0
    return StepShape(
        prefill_tokens=round(shape.prefill_tokens * f_pre),
        prefill_seqs=pre,
        prefill_attn_pairs=round(shape.prefill_attn_pairs * f_pre),
        prefill_kv_tokens=round(shape.prefill_kv_tokens * f_pre),
        decode_seqs=dec,
        decode_context_tokens=round(shape.decode_context_tokens * f_dec),
        decode_extra_tokens=round(shape.decode_extra_tokens * f_dec),
    )


class PipelinedInstance:
    """A StepCostModel of a pipelined instance that keeps all its stages busy (see module doc)."""

    #: Not forwarded to the lane: a lane's share of a decode step is not the whole step,
    #: and its rounding is not affine, so the simulator prices these steps one by one.
    decode_run_affine = None

    def __init__(self, lane: StepCostModel) -> None:
        self.lane = lane
        res = lane.resources()
        self.lanes = max(1, res.pipeline_lanes)
        self._lane_time = lane.step_time_s
        self._resources = replace(res, max_batch_seqs=res.max_batch_seqs * self.lanes, pipeline_lanes=1)

    def step_time_s(self, shape: StepShape) -> float:
        """Latency of a step whose sequences spread over the lanes."""
        return self._lane_time(lane_share(shape, self.lanes))

    def resources(self) -> InstanceResources:
        """The instance's resources, with the batch cap of all lanes together."""
        return self._resources

    def __getattr__(self, name: str):  # plans, explanations etc. of the wrapped backend
        return getattr(self.lane, name)


def pipelined(cost: StepCostModel) -> StepCostModel:
    """``cost`` with its pipeline stages kept busy, or ``cost`` itself when it is not pipelined."""
    return PipelinedInstance(cost) if cost.resources().pipeline_lanes > 1 else cost
