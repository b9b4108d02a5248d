"""Frozen hardware specs: GPUs, LPU chips, links and racks, with units in field names.

Each preset value carries its source (datasheet, paper, measurement) in
``sources``; values that are guesses or weakly sourced are listed in
``uncertain``, and where a plausible span is known, ``ranges`` holds its
(low, high) beside the point value. Prices are assumptions the user is
expected to override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from twinfer.errors import ConfigError


@dataclass(frozen=True)
class LinkSpec:
    """A point-to-point or switched link (NVLink, InfiniBand, PCIe, Groq C2C)."""

    name: str
    bw_bytes_per_s: float  # per direction, per device (or per link for C2C)
    latency_s: float  # one-way start-up latency of a transfer
    links_per_node: int = 1  # how many of these a node has (IB NDR: 8 NICs in a DGX-H100)
    sources: Mapping[str, str] = field(default_factory=dict)
    uncertain: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # field -> (low, high) of an uncertain value

    def transfer_time_s(self, num_bytes: float) -> float:
        """Alpha-beta time to move ``num_bytes`` over an idle link."""
        return self.latency_s + num_bytes / self.bw_bytes_per_s


@dataclass(frozen=True)
class GpuSpec:
    """One GPU (per-GPU numbers for multi-GPU boards such as GB200)."""

    name: str
    memory_bytes: float
    mem_bw_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float]  # dense, by compute dtype: bf16, fp8, fp4, int8
    scale_up_link: str  # LinkSpec name of the intra-node fabric (nvlink4, nvlink5)
    power_idle_w: float
    power_max_w: float
    price_per_hour_usd: float  # an assumption: override it with your own
    num_sms: int = 132  # streaming multiprocessors (wave quantisation of GEMM tiles)
    scale_up_gpus: int = 8  # GPUs sharing one NVLink/NVSwitch domain (NVL72: 72)
    l2_bytes: float = 50e6  # L2 cache (bandwidth-bound kernels whose data stays in L2 run faster)
    sources: Mapping[str, str] = field(default_factory=dict)
    uncertain: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # field -> (low, high) of an uncertain value
    kind: str = "gpu"

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s at ``dtype`` (bf16 and fp16 share tensor-core rates)."""
        key = "bf16" if dtype == "fp16" else dtype
        if key not in self.peak_flops_per_s:
            have = ", ".join(sorted(self.peak_flops_per_s))
            raise ConfigError(f"{self.name} has no {dtype} tensor-core rate; it supports: {have}")
        return self.peak_flops_per_s[key]


@dataclass(frozen=True)
class LpuSpec:
    """One LPU / tensor-streaming-processor chip, at datasheet level (micro-architecture lives in twinfer.lpu)."""

    name: str
    clock_hz: float
    sram_bytes: float
    sram_bw_bytes_per_s: float
    peak_ops_per_s: Mapping[str, float]  # int8, fp8, fp16 ...
    lanes: int  # vector lanes (TSP v1: 320)
    mem_slices: int  # MEM slices (TSP v1: 88)
    mxm_planes: int  # weight-stationary matrix planes (TSP v1: 4)
    mxm_dim: int  # plane edge (TSP v1: 320)
    c2c_links: int  # chip-to-chip links per chip
    c2c_link: str  # LinkSpec name of one C2C link
    chips_per_node: int
    chips_per_rack: int
    power_idle_w: float
    power_max_w: float
    price_per_hour_usd: float  # an assumption: override it with your own
    # Micro-architecture (twinfer.lpu.chip.ChipParams fields) of a user-defined LPU; presets keep theirs in
    # twinfer/lpu/data/microarch.toml. ``microarch_based_on`` names the preset whose set it starts from.
    microarch: Mapping[str, float] = field(default_factory=dict)
    microarch_based_on: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)
    uncertain: tuple[str, ...] = ()
    kind: str = "lpu"


@dataclass(frozen=True)
class RackSpec:
    """A rack of one kind of device, as a system fact: how many devices, their fabric, the rack's power.

    Vera Rubin NVL72 (72 GPUs on NVLink 6) and Groq 3 LPX (256 LP30 chips on
    C2C) are racks. ``attach_link`` names the link that joins this rack's
    devices to the GPUs they serve (the LPX's link to Rubin); GPU racks leave
    it empty. ``power_max_w`` is the whole rack (devices, CPUs, switches);
    None when no figure is public (then count the devices' own power).
    """

    name: str
    device: str  # chip preset of the rack's devices
    devices: int  # devices per rack
    trays: int  # compute trays the devices sit in
    scale_up_link: str  # LinkSpec name of the device-to-device fabric inside the rack
    scale_up_bw_bytes_per_s: float  # the rack's aggregate scale-up bandwidth, as quoted by the vendor
    host_cpus: int = 0  # host CPUs in the rack (NVL72: 36 Vera CPUs)
    attach_link: str = ""  # LinkSpec name joining these devices to the GPUs they serve ("" for GPU racks)
    power_max_w: float | None = None  # whole rack; None: not public
    sources: Mapping[str, str] = field(default_factory=dict)
    uncertain: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # field -> (low, high) of an uncertain value
    kind: str = "rack"


HardwareSpec = GpuSpec | LpuSpec

#: The link between an LPU system and the GPUs it serves when a scenario names none (an LPX rack's attach link, [U]).
LPU_GPU_LINK = "lpx-gpu"


def default_link_between(a: HardwareSpec, b: HardwareSpec) -> str:
    """The link preset joining devices ``a`` and ``b`` when none is named.

    Two GPUs: ``a``'s scale-up link (a node's NVLink); two LPUs: ``a``'s C2C
    link; an LPU and a GPU: :data:`LPU_GPU_LINK`.
    """
    if isinstance(a, GpuSpec) and isinstance(b, GpuSpec):
        return a.scale_up_link
    if isinstance(a, LpuSpec) and isinstance(b, LpuSpec):
        return a.c2c_link
    return LPU_GPU_LINK
