"""Workloads: who asks for what, and when.

``Workload`` holds per-request arrival times and token counts as numpy arrays;
``WorkloadConfig`` is the scenario's ``workload:`` section; ``build_workload``
turns a config and a ``numpy.random.Generator`` into a workload; ``read_trace``
reads Azure (2023/2024), Mooncake, ShareGPT and twinfer trace files. The
package ships a sample of the Azure 2023 conversation trace as
``builtin:azure-conv-sample`` (CC-BY-4.0, see ``workload/data/README.txt``).
"""

from twinfer.workload.build import build_workload, builtin_trace_names, resolve_trace
from twinfer.workload.columns import ReadReport
from twinfer.workload.config import ArrivalConfig, LengthConfig, WorkloadConfig
from twinfer.workload.readers import FORMATS, detect_format, read_trace
from twinfer.workload.types import Workload

__all__ = [
    "FORMATS",
    "ArrivalConfig",
    "LengthConfig",
    "ReadReport",
    "Workload",
    "WorkloadConfig",
    "build_workload",
    "builtin_trace_names",
    "detect_format",
    "read_trace",
    "resolve_trace",
]
