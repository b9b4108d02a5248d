"""Hardware specs and presets: GPUs, LPU chips, links and racks, each value with its source.

``get_hardware("h100")`` returns the H100-SXM preset; users add their own
chips and links with :func:`load_hardware_file` and pass the result as ``extra``.
"""

from twinfer.hardware.loader import HardwareSet, spec_table
from twinfer.hardware.registry import (
    get_hardware,
    get_link,
    get_rack,
    hardware_names,
    link_names,
    load_hardware_file,
    rack_names,
    replaced_presets,
    replacement_notes,
)
from twinfer.hardware.specs import GpuSpec, HardwareSpec, LinkSpec, LpuSpec, RackSpec

__all__ = [
    "GpuSpec",
    "HardwareSet",
    "spec_table",
    "HardwareSpec",
    "LinkSpec",
    "LpuSpec",
    "RackSpec",
    "get_hardware",
    "get_link",
    "get_rack",
    "hardware_names",
    "link_names",
    "load_hardware_file",
    "rack_names",
    "replaced_presets",
    "replacement_notes",
]
