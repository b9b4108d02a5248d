"""Model specs from Hugging Face configs, shipped presets, and op-graph lowering."""

from twinfer.models.registry import load_model, preset_names
from twinfer.models.spec import MlaShape, ModelSpec, MoeShape
from twinfer.models.step import StepShape

__all__ = ["MlaShape", "ModelSpec", "MoeShape", "StepShape", "load_model", "preset_names"]
