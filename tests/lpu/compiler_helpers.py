"""Factories for the LPU compiler tests (fixtures in conftest.py): a TSP v1 chip built from the paper's numbers, tiny chips and models."""

from __future__ import annotations

from twinfer.hardware.specs import LinkSpec, LpuSpec
from twinfer.lpu.chip import Chip, ChipParams
from twinfer.models.spec import ModelSpec


def make_tsp_spec(**overrides: object) -> LpuSpec:
    """A TSP v1 spec from shared/reference/lpu.md (P1), independent of the preset file."""
    fields: dict[str, object] = dict(
        name="tsp-test",
        clock_hz=900e6,
        sram_bytes=88 * 2.5 * 2**20,
        sram_bw_bytes_per_s=50.688e12,
        peak_ops_per_s={"int8": 737e12, "fp16": 188e12},
        lanes=320,
        mem_slices=88,
        mxm_planes=4,
        mxm_dim=320,
        c2c_links=16,
        c2c_link="groq-c2c",
        chips_per_node=8,
        chips_per_rack=72,
        power_idle_w=100.0,
        power_max_w=300.0,
        price_per_hour_usd=1.0,
    )
    fields.update(overrides)
    return LpuSpec(**fields)  # type: ignore[arg-type]


#: P1/Linley: 14 GB/s per link per direction; 0.5 us per hop (derived guess, P2).
C2C = LinkSpec(name="c2c-test", bw_bytes_per_s=14e9, latency_s=0.5e-6)


def make_tsp_chip() -> Chip:
    """A TSP v1 chip with the default micro-architecture parameters."""
    return Chip(spec=make_tsp_spec(), link=C2C, params=ChipParams())


def make_tiny_model(**overrides: object) -> ModelSpec:
    """A 2-layer Llama-shaped model small enough to compile onto tiny chips in milliseconds."""
    fields: dict[str, object] = dict(
        name="tiny-llama",
        architecture="llama",
        hidden_size=64,
        num_layers=2,
        num_attention_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=128,
        vocab_size=96,
        max_position_embeddings=256,
    )
    fields.update(overrides)
    return ModelSpec(**fields)  # type: ignore[arg-type]


def make_tiny_chip(
    sram_bytes: int = 64 * 1024, chips_per_node: int = 2, chips_per_rack: int = 4
) -> Chip:
    """A TSP-shaped chip with a tiny SRAM, so that tiny models need several chips."""
    spec = make_tsp_spec(
        sram_bytes=sram_bytes, chips_per_node=chips_per_node, chips_per_rack=chips_per_rack
    )
    return Chip(
        spec=spec, link=C2C, params=ChipParams(reserved_sram_bytes=0, activation_rows_resident=4)
    )
