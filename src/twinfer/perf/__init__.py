"""One step-cost interface over GPU and LPU backends."""

from twinfer.perf.base import InstanceResources, StepCostModel
from twinfer.perf.factory import make_step_cost

__all__ = ["InstanceResources", "StepCostModel", "make_step_cost"]
