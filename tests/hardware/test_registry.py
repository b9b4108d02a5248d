"""Hardware presets against the datasheet numbers in shared/reference and typed in by hand."""

from __future__ import annotations

import re

import pytest

from twinfer.errors import UnknownNameError
from twinfer.hardware import get_hardware, get_link, hardware_names, link_names

#: Row label in gpu-and-serving.md -> preset name.
REF_ROWS = {
    "A100 SXM 80GB": "a100-80g",
    "H100 SXM": "h100-sxm",
    "H200 SXM": "h200",
    "B200 (HGX)": "b200",
    "GB200 (per GPU, NVL72)": "gb200",
}


def _parse_quantity(cell: str) -> float:
    """'3.35 TB/s' -> 3.35e12, '1,979 TF' -> 1.979e15, '2.25 PF' -> 2.25e15, '700 W' -> 700."""
    m = re.match(r"(?:up to )?([\d,.]+)\s*(GB|TB/s|TF|PF|W)", cell)
    assert m, cell
    value = float(m.group(1).replace(",", ""))
    return value * {"GB": 1e9, "TB/s": 1e12, "TF": 1e12, "PF": 1e15, "W": 1.0}[m.group(2)]


@pytest.mark.parametrize("row", list(REF_ROWS))
def test_gpu_presets_match_reference_table(row, gpu_reference_table):
    """Memory, bandwidth, dense peaks and TDP equal the reference markdown table's cells."""
    cells = gpu_reference_table[row]
    spec = get_hardware(REF_ROWS[row])
    mem, bw, bf16, fp8, fp4, tdp = cells[:6]
    assert spec.memory_bytes == pytest.approx(_parse_quantity(mem))
    assert spec.mem_bw_bytes_per_s == pytest.approx(_parse_quantity(bw), rel=0.01)
    assert spec.peak_flops("bf16") == pytest.approx(_parse_quantity(bf16), rel=0.001)
    for dtype, cell in (("fp8", fp8), ("fp4", fp4)):
        if cell == "—":
            assert dtype not in spec.peak_flops_per_s
        else:
            assert spec.peak_flops(dtype) == pytest.approx(_parse_quantity(cell), rel=0.001)
    assert spec.power_max_w == pytest.approx(_parse_quantity(tdp))


def test_h100_datasheet_numbers_by_hand():
    """H100 SXM: 80 GB, 3.35 TB/s, 989 TF bf16, 1979 TF fp8, 700 W, NVLink4 at 450 GB/s per direction."""
    h100 = get_hardware("h100")
    assert h100.name == "h100-sxm"
    assert (h100.memory_bytes, h100.mem_bw_bytes_per_s) == (80e9, 3.35e12)
    assert h100.peak_flops("bf16") == 989e12 and h100.peak_flops("fp16") == 989e12
    assert h100.peak_flops("fp8") == 1979e12
    assert get_link(h100.scale_up_link).bw_bytes_per_s == 450e9


def test_groq_tsp_v1_matches_isca_paper():
    """TSP v1: 220 MiB SRAM = 88 x 2.5 MiB, 737 TOPS = 409,600 MACs x 2 x 900 MHz, 16 C2C links of 14 GB/s."""
    tsp = get_hardware("groq")
    assert tsp.name == "groq-tsp-v1" and tsp.kind == "lpu"
    assert tsp.sram_bytes == 88 * 2.5 * 2**20
    assert tsp.peak_ops_per_s["int8"] == pytest.approx(4 * 320 * 320 * 2 * 900e6, rel=0.001)
    assert (tsp.lanes, tsp.mem_slices, tsp.mxm_planes, tsp.mxm_dim) == (320, 88, 4, 320)
    assert (tsp.c2c_links, tsp.chips_per_node, tsp.chips_per_rack) == (16, 8, 72)
    assert get_link(tsp.c2c_link).bw_bytes_per_s == 14e9


def test_groq3_is_marked_uncertain_everywhere():
    """Every numeric field of the Groq 3 LP30 preset is flagged uncertain (press coverage only)."""
    lp30 = get_hardware("lp30")
    assert lp30.sram_bytes == 500e6 and lp30.c2c_links == 96 and lp30.chips_per_rack == 256
    for key in ("sram_bytes", "sram_bw_bytes_per_s", "peak_ops_per_s.fp8", "c2c_links", "clock_hz"):
        assert key in lp30.uncertain


@pytest.mark.parametrize("name", ["a100-80g", "h100-sxm", "h200", "b200", "gb200", "groq-tsp-v1", "groq3-lp30"])
def test_every_value_has_a_source_and_guesses_are_flagged(name):
    """Each field has a source; idle power and price are always flagged as guesses/assumptions."""
    import dataclasses

    spec = get_hardware(name)
    # An LPU preset keeps its micro-architecture (with sources) in twinfer/lpu/data/microarch.toml,
    # not in these fields, which only a user's --hardware-file fills.
    meta = {"name", "sources", "uncertain", "kind", "microarch", "microarch_based_on"}
    for f in dataclasses.fields(spec):
        if f.name in meta:
            continue
        if isinstance(getattr(spec, f.name), dict):
            for dtype in getattr(spec, f.name):
                assert spec.sources[f"{f.name}.{dtype}"]
        else:
            assert spec.sources.get(f.name), f"{name}.{f.name} has no source"
    assert "power_idle_w" in spec.uncertain
    assert "price_per_hour_usd" in spec.uncertain
    assert "ASSUMPTION" in spec.sources["price_per_hour_usd"]


def test_links_from_reference():
    """Per-direction link bandwidths: NVLink4 450, NVLink5 900, IB NDR 50 x 8 NICs, PCIe5 64 GB/s."""
    assert get_link("nvlink4").bw_bytes_per_s == 450e9
    assert get_link("nvlink5").bw_bytes_per_s == 900e9
    ib = get_link("infiniband")
    assert (ib.name, ib.bw_bytes_per_s, ib.links_per_node) == ("ib-ndr", 50e9, 8)
    assert get_link("pcie5").bw_bytes_per_s == 64e9
    assert get_link("c2c").name == "groq-c2c"
    assert {"nvlink4", "nvlink5", "ib-ndr", "pcie5", "groq-c2c"} <= set(link_names())


def test_aliases_and_names():
    """Short names resolve to presets; listing includes all required presets."""
    assert get_hardware("A100").name == "a100-80g"
    assert get_hardware(" h200-sxm ").name == "h200"
    assert {"a100-80g", "h100-sxm", "h200", "b200", "gb200", "groq-tsp-v1", "groq3-lp30"} <= set(hardware_names())
    spec = get_hardware("h100")
    assert get_hardware(spec) is spec


def test_unknown_names_list_presets():
    """An unknown name raises UnknownNameError listing the presets."""
    with pytest.raises(UnknownNameError, match="h100-sxm"):
        get_hardware("h1000")
    with pytest.raises(UnknownNameError, match="nvlink4"):
        get_link("nvlink9")
