"""A parametrised tensor-streaming-processor chip and the closed-form cycle cost of each op on it.

:class:`LpuSpec` (``twinfer.hardware``) carries the datasheet numbers;
:class:`ChipParams` carries the micro-architecture that is not public
(functional-unit delays, weight-install time, ...), each field documented
with its source or marked as a guess in ``PARAM_SOURCES``. :class:`Chip`
combines both and answers "how many cycles does this op take on one chip".

Timing follows Abts et al., ISCA 2020 (P1): an instruction finishes at
``N + d_func + delta`` after issue, where N = 20 cycles is the skew of the
issue sweeping the 20 superlanes, d_func the unit's pipeline delay and delta
the east-west stream distance between producer and consumer. Matmuls are
weight-stationary: a 320x320 tile of weights is installed into an MXM plane
(``LW``/``IW``), then activation vectors stream through it one per cycle;
the next tile is loaded into the weight buffer while the current one
computes, so a plane's round costs ``max(install, streaming)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from twinfer.errors import ConfigError
from twinfer.hardware.specs import LinkSpec, LpuSpec
from twinfer.lpu.microarch import microarch_for
from twinfer.units import dtype_bytes

if TYPE_CHECKING:
    from twinfer.hardware.loader import HardwareSet

#: Where each ChipParams default comes from. "guess" marks a number that is not public.
PARAM_SOURCES: dict[str, str] = {
    "superlane_skew_cycles": "P1: N = 20, one superlane per cycle as an instruction sweeps the chip",
    "mxm_install_cycles": "P1: 409,600 weights installed into the 4 MXM planes in < 40 cycles (upper bound used)",
    "d_mxm_cycles": "guess: MXM pipeline delay not public (320-deep dot-product tree + accumulators)",
    "d_vxm_cycles": "guess: VXM ALU pipeline delay not public",
    "d_sxm_cycles": "guess: SXM delay not public",
    "d_mem_cycles": "guess: MEM read delay not public",
    "stream_transit_cycles": "derived from P1 floorplan: one slice per cycle across a 44-slice hemisphere plus SXM/MXM (~46)",
    "vxm_alus_per_lane": "P1: 16 ALUs per lane (4x4 mesh) = 5,120 ALUs",
    "vxm_ops_rmsnorm": "guess: square, reduce, rsqrt, 2 multiplies ~ 4 ops/element",
    "vxm_ops_rope": "guess: 2 multiplies + 1 add per element (rotate on SXM) ~ 3, +1 for the permute hand-off",
    "vxm_ops_silu_mul": "guess: exp, add, reciprocal, 2 multiplies ~ 5 ops/element",
    "vxm_ops_softmax": "guess: max, subtract, exp, sum, scale ~ 5 ops/element",
    "moe_imbalance_factor": "guess [U], range 1.0-1.5: busiest expert chip's active experts and routed rows over their uniform-routing expectations, n*(1-(1-k/E)^B) and B*k*n/E (1.0 = uniform routing; see twinfer.lpu.experts)",
    "c2c_deskew_cycles": "guess: Deskew/Receive alignment per transfer (P2 keeps chips in lockstep via counters)",
    "activation_rows_resident": "guess (bounded by a capacity fact): token rows of activations held in MEM at once, longer prompts stream through in chunks; at 128 rows Llama-2-70B at 8-bit would not fit the 576 chips Groq ran it on (lpu.md), so it must be small",
    "host_overhead_s": "groq/groqflow groqmodel.py estimator: 2 x 10 us PCIe transfer overhead per inference",
    "host_bw_bytes_per_s": "groq/groqflow groqmodel.py estimator: 24 GB/s host link",
    "reserved_sram_bytes": "guess: SRAM kept for instruction buffers, stream staging and alignment per chip",
    "mxm_wide_install_factor": "[U] install time of a tile in a 2-byte MXM mode (fp16: int8 weights meeting fp16 "
                               "activations run as fp16, P1: both MXM operands share a type) relative to int8; "
                               "2 = twice the bytes through the same streams, 4 = also paired planes, as the "
                               "188/737 fp16/int8 peak ratio suggests",
    "mxm_ktile_acc_cycles": "[U] cycles per plane round to add a k-tile's partial sums into the fp32 accumulators "
                            "(P1 ACC); overlaps the next install, so it only shows when larger than it",
    "sampling_ops_per_logit": "[U] VXM ops per vocabulary logit to pick the next token (arg-max 1, top-k/top-p "
                              "with temperature ~4-16), on the chip that gathers the logits",
    "stage_sync_cycles": "[U] per pipeline stage and step: program synchronisation and Deskew of a stage's chips "
                         "(P2 keeps chips in lockstep with aligned counters; the cost is not public)",
    "cross_node_sync_cycles": "[U] per collective transfer that leaves a node (the exchange of a tensor split wider "
                              "than a node; a MoE layer's dispatch to and combine from expert chips in other nodes): "
                              "aligning the chips of several nodes over the global links (P2: plesiochronous links, "
                              "Deskew, hardware-aligned counters); not public",
    "host_loop_s": "[U] per token: the host runtime's loop (return the sampled token, stream it to the user, "
                   "launch the next step); not public",
}



@dataclass(frozen=True)
class ChipParams:
    """Micro-architecture parameters of a TSP that are not on a datasheet (override any of them).

    Sources are in :data:`PARAM_SOURCES`; most are guesses and are named so a
    user can change them (``dataclasses.replace(params, d_mxm_cycles=40)``).
    The defaults are TSP v1's documented values with the per-token costs the
    calibration adds set to their cheapest; a preset's own set (calibrated)
    comes from :func:`twinfer.lpu.microarch.chip_params_for`.
    """

    superlane_skew_cycles: int = 20
    mxm_install_cycles: int = 40  # one 320x320 tile of 1-byte weights into a plane (planes in parallel)
    d_mxm_cycles: int = 24
    d_vxm_cycles: int = 4
    d_sxm_cycles: int = 4
    d_mem_cycles: int = 2
    stream_transit_cycles: int = 46
    vxm_alus_per_lane: int = 16
    vxm_ops_rmsnorm: int = 4
    vxm_ops_rope: int = 4
    vxm_ops_silu_mul: int = 5
    vxm_ops_softmax: int = 5
    moe_imbalance_factor: float = 1.0  # MoE: busiest expert chip's load over the uniform expectation (>= 1)
    c2c_deskew_cycles: int = 10
    reserved_sram_bytes: int = 8 * 1024**2
    activation_rows_resident: int = 32
    host_overhead_s: float = 20e-6
    host_bw_bytes_per_s: float = 24e9
    mxm_wide_install_factor: float = 2.0
    mxm_ktile_acc_cycles: int = 0
    sampling_ops_per_logit: int = 1
    stage_sync_cycles: int = 0
    cross_node_sync_cycles: int = 0
    host_loop_s: float = 0.0
    sources: dict[str, str] = field(default_factory=lambda: dict(PARAM_SOURCES), compare=False)


@dataclass(frozen=True)
class Chip:
    """One TSP chip: datasheet spec + micro-architecture + the C2C link, with closed-form op costs.

    Every ``*_cycles`` method is a pure function of shapes; the compiler calls
    it once per instruction so the schedule is exact for this model.
    """

    spec: LpuSpec
    link: LinkSpec
    params: ChipParams = ChipParams()

    # ---- derived, computed once -------------------------------------------
    @cached_property
    def usable_sram_bytes(self) -> int:
        """SRAM a program may fill with weights, KV cache and activations."""
        return int(self.spec.sram_bytes) - self.params.reserved_sram_bytes

    @cached_property
    def slice_bytes(self) -> int:
        """Capacity of one MEM slice (both banks)."""
        return int(self.spec.sram_bytes) // self.spec.mem_slices

    @cached_property
    def link_bytes_per_cycle(self) -> float:
        """One C2C link's bandwidth per direction, in bytes per clock cycle."""
        return self.link.bw_bytes_per_s / self.spec.clock_hz

    @cached_property
    def hop_latency_cycles(self) -> int:
        """Latency of one C2C hop, in cycles (from the link preset's latency_s)."""
        return math.ceil(self.link.latency_s * self.spec.clock_hz)

    @cached_property
    def mxm_planes(self) -> int:
        """Matrix planes working in parallel, made consistent with the datasheet peak.

        TSP v1: 737 TOPS / (2 x 900 MHz x 320^2) = 4.0 = its 4 planes. A chip whose
        published peak exceeds its (placeholder) geometry gets the plane count
        the peak implies (Groq 3 LP30: 1.2 PFLOPS at 1 GHz -> 6 planes of 320^2).
        """
        dim2 = self.spec.mxm_dim**2
        top = max(self.spec.peak_ops_per_s.values(), default=0.0)
        implied = round(top / (2 * self.spec.clock_hz * dim2)) if top else 0
        return max(1, implied or self.spec.mxm_planes)

    def fixed_cycles(self, d_func: int) -> int:
        """Issue skew + unit delay + stream transit: the P1 ``N + d_func + delta`` of one instruction."""
        p = self.params
        return p.superlane_skew_cycles + d_func + p.stream_transit_cycles

    def mxm_mode(self, weight_dtype: str, act_dtype: str | None = None) -> tuple[int, int]:
        """(cycles per streamed vector, install cycles per tile) of matmuls of ``weight_dtype`` weights.

        Both MXM operands share one type (P1), so with ``act_dtype`` given the
        mode is the wider of the two: int8 weights meeting fp16 activations
        run in fp16 mode. The rate of a mode is its peak relative to the top
        rate (``peak_ops_per_s``); a type the chip has no rate for (fp8 on
        TSP v1) runs as fp16. A 2-byte mode installs a tile
        ``mxm_wide_install_factor`` times slower than a 1-byte one.
        """
        peaks = self.spec.peak_ops_per_s
        if not peaks:
            raise ConfigError(f"{self.spec.name} lists no peak_ops_per_s; add int8/fp16 rates")
        top = max(peaks.values())
        mode = weight_dtype
        if act_dtype is not None and dtype_bytes(act_dtype) > dtype_bytes(weight_dtype):
            mode = act_dtype
        key = "fp16" if mode == "bf16" else mode
        if key not in peaks:
            key = "fp16"
        # A chip without a published fp16 rate: assume 1/4 of its top rate (TSP v1 ratio 188/737; guess).
        rate = peaks.get(key, top / 4)
        vector_cycles = max(1, round(top / rate))
        wide = key == "fp16" or dtype_bytes(key) >= 2
        install = self.params.mxm_install_cycles
        return vector_cycles, round(install * self.params.mxm_wide_install_factor) if wide else install

    # ---- closed-form op costs ----------------------------------------------
    def matmul_cycles(self, m: int, k: int, n: int, weight_dtype: str, act_dtype: str | None = None) -> int:
        """Cycles of ``[m,k] x [k,n]`` with the weights stationary in the MXM planes.

        Tiles of ``mxm_dim`` x ``mxm_dim`` are spread over the planes; each
        plane round installs a tile (overlapped with the previous round's
        streaming) and streams ``m`` vectors, then (when ``k`` spans more than
        one tile) adds them into the fp32 accumulators. The first install is
        exposed. ``act_dtype`` sets the MXM mode with the weights (:meth:`mxm_mode`).
        """
        dim, planes = self.spec.mxm_dim, self.mxm_planes
        k_tiles = math.ceil(k / dim)
        tiles = k_tiles * math.ceil(n / dim)
        rounds = math.ceil(tiles / planes)
        vector_cycles, install = self.mxm_mode(weight_dtype, act_dtype)
        stream = m * vector_cycles + (self.params.mxm_ktile_acc_cycles if k_tiles > 1 else 0)
        body = install + (rounds - 1) * max(install, stream) + stream
        return body + self.fixed_cycles(self.params.d_mxm_cycles)

    def attention_cycles(self, *, batch: int, q_rows: int, ctx: int, heads: int, kv_heads: int,
                         head_dim: int, act_dtype: str) -> int:
        """Cycles of causal attention for one shard: K and V installed as MXM weights, softmax on VXM.

        Per sequence and KV head, K^T (head_dim x ctx) and V (ctx x head_dim) are
        installed; the ``q_rows`` x (heads/kv_heads) query rows stream through
        them. Causal masking is not exploited (full ctx is costed).
        """
        dim, planes = self.spec.mxm_dim, self.mxm_planes
        group = max(1, heads // max(1, kv_heads))
        tiles = 2 * batch * kv_heads * math.ceil(ctx / dim) * math.ceil(head_dim / dim)
        rounds = math.ceil(tiles / planes)
        vector_cycles, install = self.mxm_mode(act_dtype, act_dtype)
        stream = q_rows * group * vector_cycles
        mxm = install + (rounds - 1) * max(install, stream) + stream
        softmax = self._vxm_body(batch * q_rows * heads * ctx, self.params.vxm_ops_softmax)
        return mxm + softmax + self.fixed_cycles(self.params.d_mxm_cycles)

    def _vxm_body(self, elements: int, ops_per_element: int) -> int:
        vectors = math.ceil(elements / self.spec.lanes)
        return math.ceil(vectors * ops_per_element / self.params.vxm_alus_per_lane)

    def vxm_cycles(self, elements: int, ops_per_element: int) -> int:
        """Cycles of an elementwise/reduction op over ``elements`` values on the VXM."""
        return self._vxm_body(elements, ops_per_element) + self.fixed_cycles(self.params.d_vxm_cycles)

    def sxm_cycles(self, elements: int) -> int:
        """Cycles of a layout change (slice, concat, row pick) moving ``elements`` values through the SXM."""
        vectors = math.ceil(elements / self.spec.lanes)
        return vectors + self.fixed_cycles(self.params.d_sxm_cycles)

    def mem_gather_cycles(self, rows: int, width: int) -> int:
        """Cycles of gathering ``rows`` table rows of ``width`` values from MEM (embedding lookup)."""
        vectors = rows * math.ceil(width / self.spec.lanes)
        return vectors + self.fixed_cycles(self.params.d_mem_cycles)

    def c2c_cycles(self, num_bytes: int) -> int:
        """Cycles one link is busy serialising ``num_bytes`` (plus the receive deskew)."""
        return math.ceil(num_bytes / self.link_bytes_per_cycle) + self.params.c2c_deskew_cycles


def params_from_values(values: Mapping[str, float], sources: Mapping[str, str] | None = None) -> ChipParams:
    """A :class:`ChipParams` from plain values (whole-number fields rounded), e.g. a microarch table."""
    kinds = {f.name: f.type for f in fields(ChipParams) if f.name != "sources"}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(f"unknown chip parameter(s) {unknown}; known: {sorted(kinds)}")
    kw: dict[str, Any] = {k: int(round(v)) if kinds[k] in ("int", int) else float(v) for k, v in values.items()}
    return ChipParams(**kw, sources={**PARAM_SOURCES, **(sources or {})})


def param_names() -> tuple[str, ...]:
    """Names of the micro-architecture parameters (``ChipParams`` fields)."""
    return tuple(f.name for f in fields(ChipParams) if f.name != "sources")


def make_chip(spec: LpuSpec | str, *, params: ChipParams | None = None, link: LinkSpec | str | None = None,
              extra: HardwareSet | None = None) -> Chip:
    """A :class:`Chip` from an LpuSpec (or preset name), its C2C link and its own micro-architecture.

    Without ``params`` the chip's own set is used (:func:`twinfer.lpu.microarch.microarch_for`):
    a preset's shipped (calibrated) set or a user LPU's ``microarch`` table; an LPU with
    neither is an error that says what to add. ``extra`` holds a user's hardware file.
    """
    from twinfer.hardware import get_hardware, get_link

    lpu = get_hardware(spec, extra) if isinstance(spec, str) else spec
    if not isinstance(lpu, LpuSpec):
        raise ConfigError(f"{lpu.name} is not an LPU; use an LPU preset such as groq-tsp-v1")
    lk = get_link(link if link is not None else lpu.c2c_link, extra)
    if params is None:
        ma = microarch_for(lpu, param_names())
        params = params_from_values(ma.values, ma.sources)
    return Chip(spec=lpu, link=lk, params=params)


def with_params(chip: Chip, **overrides: Any) -> Chip:
    """A copy of ``chip`` with some micro-architecture parameters overridden."""
    unknown = set(overrides) - set(PARAM_SOURCES)
    if unknown:
        raise ConfigError(f"unknown chip parameter(s) {sorted(unknown)}; known: {sorted(PARAM_SOURCES)}")
    return replace(chip, params=replace(chip.params, **overrides))


def override_params(params: ChipParams, overrides: Mapping[str, float]) -> ChipParams:
    """``params`` with some values replaced (a calibration or band parameter set)."""
    kw: dict[str, Any] = dict(overrides)
    return replace(params, **kw)
