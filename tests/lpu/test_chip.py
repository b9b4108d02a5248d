"""Chip model: closed-form op cycles counted by hand from P1's timing model."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.lpu.chip import PARAM_SOURCES, ChipParams, with_params

# Hand-counted constants (P1 and the documented guesses): N = 20 superlane skew, d_MXM = 24,
# stream transit = 46 slices, one 320x320 tile of 1-byte weights installs in 40 cycles.
N, D_MXM, D_VXM, TRANSIT, INSTALL = 20, 24, 4, 46, 40


def test_single_tile_matmul_is_install_plus_one_vector_plus_fixed_latency(tsp):
    # One tile, one plane round: install 40, stream 1 vector, then N + d_MXM + transit.
    assert tsp.matmul_cycles(1, 320, 320, "int8") == INSTALL + 1 + N + D_MXM + TRANSIT


def test_matmul_rounds_overlap_install_with_streaming(tsp):
    # k=640, n=1280: 2 x 4 = 8 tiles over 4 planes = 2 rounds; 100 vectors per round.
    # First install exposed (40), round 1 max(install 40, stream 100) = 100, last round streams 100.
    assert tsp.matmul_cycles(100, 640, 1280, "int8") == 40 + 100 + 100 + N + D_MXM + TRANSIT
    # Batch-1 decode is install-bound: 4 x 6 = 24 tiles over 4 planes = 6 rounds of 40 cycles + 1 vector.
    assert tsp.matmul_cycles(1, 1280, 1920, "int8") == 40 + 5 * 40 + 1 + N + D_MXM + TRANSIT


def test_fp16_streams_at_a_quarter_rate_and_installs_twice_the_bytes(tsp):
    # 737 / 188 TOPS rounds to 4 cycles per vector; 2-byte weights double the install.
    assert tsp.mxm_mode("fp16") == (4, 80)
    assert tsp.mxm_mode("bf16") == (4, 80)
    assert tsp.mxm_mode("int8") == (1, 40)
    # TSP v1 has no fp8 MXM rate: fp8 weights run as fp16.
    assert tsp.mxm_mode("fp8") == (4, 80)


def test_vector_op_counts_vectors_over_sixteen_alus(tsp):
    # 3,200 elements = 10 vectors of 320; 4 ops each over 16 ALUs per lane = ceil(40/16) = 3.
    assert tsp.vxm_cycles(3200, 4) == 3 + N + D_VXM + TRANSIT


def test_c2c_serialisation_from_link_bandwidth(tsp):
    # 14 GB/s at 900 MHz = 15.56 B/cycle; 2,048 B -> 132 cycles + 10 deskew.
    assert tsp.c2c_cycles(2048) == 132 + 10
    assert tsp.hop_latency_cycles == 450  # 0.5 us x 900 MHz


def test_usable_sram_is_capacity_minus_reserve(tsp):
    assert tsp.usable_sram_bytes == int(220 * 2**20) - ChipParams().reserved_sram_bytes
    assert tsp.slice_bytes == int(2.5 * 2**20)


def test_every_parameter_has_a_source_and_overrides_work(tsp):
    fields = {f for f in ChipParams.__dataclass_fields__ if f != "sources"}
    assert fields == set(PARAM_SOURCES)
    slow = with_params(tsp, d_mxm_cycles=D_MXM + 10)
    assert slow.matmul_cycles(1, 320, 320, "int8") == tsp.matmul_cycles(1, 320, 320, "int8") + 10
    with pytest.raises(ConfigError):
        with_params(tsp, no_such_param=1)


def test_plane_count_follows_the_datasheet_peak(tsp):
    from dataclasses import replace

    from compiler_helpers import make_tsp_spec

    assert tsp.mxm_planes == 4  # 737 TOPS / (2 x 0.9 GHz x 320^2) = 4.0
    lp30 = replace(tsp, spec=make_tsp_spec(clock_hz=1e9, peak_ops_per_s={"fp8": 1.2e15, "int8": 1.2e15}))
    assert lp30.mxm_planes == 6  # 1.2 PFLOPS / (2 x 1 GHz x 320^2) = 5.86
    # 24 tiles: 6 rounds on 4 planes, 4 rounds on 6.
    assert lp30.matmul_cycles(1, 1280, 1920, "int8") == 40 + 3 * 40 + 1 + N + D_MXM + TRANSIT
