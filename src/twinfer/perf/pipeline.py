"""One micro-batch lane of a pipelined instance.

An instance split into S pipeline stages (an LPU system's chip groups, or
GPU pipeline parallelism) can hold S micro-batches in flight: while stage 2
works on one batch, stage 1 starts the next. Each batch still needs the full
pipeline latency per step, so the instance behaves like S lanes that each
run one batch at a time with the instance's step time, and that share its
KV memory, price and power equally. With equal stages this is exact in
throughput and latency; it is conservative where a step's time includes
link flight time that does not occupy a stage.
"""

from __future__ import annotations

from dataclasses import replace

from twinfer.perf.base import InstanceResources, StepCostModel


class PipelineLane:
    """A StepCostModel for one of the ``pipeline_lanes`` lanes of a pipelined instance."""

    def __init__(self, instance: StepCostModel) -> None:
        self.instance = instance
        res = instance.resources()
        self.lanes = max(1, res.pipeline_lanes)
        self.step_time_s = instance.step_time_s  # bound once: the simulator calls it millions of times
        self._resources = replace(
            res,
            num_devices=max(1, res.num_devices // self.lanes),
            kv_capacity_tokens=res.kv_capacity_tokens // self.lanes,
            price_per_hour_usd=res.price_per_hour_usd / self.lanes,
            power_idle_w=res.power_idle_w / self.lanes,
            power_max_w=res.power_max_w / self.lanes,
            pipeline_lanes=1,
        )

    def resources(self) -> InstanceResources:
        """The lane's share of the instance: KV, price and power divided by the lane count."""
        return self._resources

    def __getattr__(self, name: str):  # explanations, plans etc. of the wrapped backend
        return getattr(self.instance, name)


def as_lanes(cost: StepCostModel) -> tuple[StepCostModel, int]:
    """``(lane cost model, lanes)`` for a pipelined instance, or ``(cost, 1)`` when it is not pipelined."""
    lanes = cost.resources().pipeline_lanes
    if lanes <= 1:
        return cost, 1
    return PipelineLane(cost), lanes


__all__ = ["PipelineLane", "as_lanes"]
