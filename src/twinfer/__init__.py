"""twinfer: a digital twin of disaggregated LLM inference.

A virtual LPU (compiler, cycle model, numpy executor), GPU step-cost models,
and a discrete-event simulator of heterogeneous serving fleets. Heavy
dependencies (torch, transformers, ray) are imported lazily where needed.
"""

__version__ = "0.1.0"
