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


# ------------------------------------------------------------------ a user's file against the presets
# The H100 preset's names as presets.toml lists them (typed here, not read from the registry under test).
H100_NAMES = ("h100-sxm", "h100", "h100-sxm5", "h100-80g", "h100-sxm-80gb", "H100", " H100-SXM5 ")


def _user_file(tmp_path, tables: dict) -> str:
    """A hardware file holding ``tables`` (JSON is YAML), returned as its path."""
    import json

    path = tmp_path / "hw.yaml"
    path.write_text(json.dumps(tables), encoding="utf-8")
    return str(path)


def _h100_body(**changes) -> dict:
    from twinfer.hardware import spec_table

    return {**spec_table(get_hardware("h100-sxm")), **changes}


def test_an_entry_under_the_canonical_name_replaces_the_preset_under_every_name(tmp_path):
    """[gpu.h100-sxm] at 1.50 $/h: every H100 name gives that one spec; without the file the preset is untouched."""
    from twinfer.hardware import load_hardware_file, replacement_notes

    path = _user_file(tmp_path, {"gpu": {"h100-sxm": _h100_body(price_per_hour_usd=1.5)}})
    hw = load_hardware_file(path)
    specs = {name: get_hardware(name, hw) for name in H100_NAMES}
    assert {s.price_per_hour_usd for s in specs.values()} == {1.5}
    assert len({id(s) for s in specs.values()}) == 1
    assert get_hardware("h100").price_per_hour_usd == 2.99  # presets.toml's assumption, not mutated
    (note,) = replacement_notes(hw)
    assert all(n.strip().lower() in note for n in H100_NAMES) and path in note


@pytest.mark.parametrize(("kind", "name", "canonical"), [
    ("gpu", "h100", "h100-sxm"), ("gpu", "H100-SXM5", "h100-sxm"), ("lpu", "groq", "groq-tsp-v1"),
    ("lpu", "lp30", "groq3-lp30"), ("link", "ib", "ib-ndr"), ("link", "nvlink", "nvlink4"),
    ("rack", "nvl72", "vr200-nvl72"), ("gpu", "vr200-nvl72", "vr200"),
])
def test_an_entry_under_a_preset_alias_is_refused_naming_the_fix(tmp_path, kind, name, canonical):
    """[gpu.h100] would leave h100-sxm on the preset (two H100s in one fleet): refused, saying which name to use."""
    from twinfer.errors import ConfigError
    from twinfer.hardware import get_link, get_rack, load_hardware_file, spec_table

    preset = {"gpu": get_hardware, "lpu": get_hardware, "link": get_link, "rack": get_rack}[kind](canonical)
    path = _user_file(tmp_path, {kind: {name: spec_table(preset)}})
    with pytest.raises(ConfigError) as info:
        load_hardware_file(path)
    message = str(info.value)
    assert path in message and f"[{kind}.{canonical}]" in message and "new name" in message


@pytest.mark.parametrize(("aliases", "needle"), [
    (["h100"], "already names the preset h100-sxm"),
    (["nvlink"], "share one name space"),
])
def test_a_user_alias_may_not_name_another_preset(tmp_path, aliases, needle):
    from twinfer.errors import ConfigError
    from twinfer.hardware import load_hardware_file

    path = _user_file(tmp_path, {"gpu": {"my-gpu": {**_h100_body(), "aliases": aliases}}})
    with pytest.raises(ConfigError, match=needle):
        load_hardware_file(path)


def test_a_replacement_may_keep_the_preset_aliases_and_must_keep_its_kind_and_spelling(tmp_path):
    from twinfer.errors import ConfigError
    from twinfer.hardware import load_hardware_file, spec_table

    keeps = load_hardware_file(_user_file(tmp_path, {"gpu": {"h100-sxm": {**_h100_body(num_sms=100),
                                                                          "aliases": ["h100", "h100-sxm5"]}}}))
    assert get_hardware("h100-80g", keeps).num_sms == get_hardware("h100", keeps).num_sms == 100
    lpu_body = spec_table(get_hardware("groq-tsp-v1"))
    with pytest.raises(ConfigError, match="h100-sxm is a GPU preset"):
        load_hardware_file(_user_file(tmp_path, {"lpu": {"h100-sxm": lpu_body}}))
    with pytest.raises(ConfigError, match=r"\[gpu.h100-sxm\]"):
        load_hardware_file(_user_file(tmp_path, {"gpu": {"H100-SXM": _h100_body()}}))


def test_a_replaced_link_is_the_one_every_name_and_chip_reaches(tmp_path):
    """[link.ib-ndr] at 25 GB/s: ib, infiniband and the GPU step cost's inter-node link all see it."""
    from twinfer.gpu.step_cost import GpuStepCost
    from twinfer.hardware import get_link, load_hardware_file, spec_table
    from twinfer.models import load_model

    body = {**spec_table(get_link("ib-ndr")), "bw_bytes_per_s": 25e9}
    hw = load_hardware_file(_user_file(tmp_path, {"link": {"ib-ndr": body}}))
    assert {get_link(n, hw).bw_bytes_per_s for n in ("ib", "infiniband", "ndr", "IB-NDR")} == {25e9}
    cost = GpuStepCost(load_model("llama-3-8b"), "h100", tp=1, extra_hardware=hw)
    assert cost.kernels.scale_out.bw_bytes_per_s == 25e9


def test_user_names_are_case_insensitive_like_preset_names(tmp_path):
    from twinfer.hardware import load_hardware_file

    hw = load_hardware_file(_user_file(tmp_path, {"gpu": {"My-GPU": _h100_body(price_per_hour_usd=1.0)}}))
    assert get_hardware("my-gpu", hw).name == "My-GPU"


def test_a_replaced_lpu_is_one_chip_under_every_name_with_its_shipped_microarchitecture(tmp_path):
    """[lpu.groq-tsp-v1] at 0.9 GHz: `tsp`, `groq` and `lpu` build the same chip, which keeps the preset's
    calibrated micro-architecture (it is still a TSP v1, priced or clocked the user's way)."""
    from twinfer.hardware import load_hardware_file, spec_table
    from twinfer.lpu.chip import make_chip

    body = {**spec_table(get_hardware("groq-tsp-v1")), "clock_hz": 0.9e9}
    hw = load_hardware_file(_user_file(tmp_path, {"lpu": {"groq-tsp-v1": body}}))
    chips = [make_chip(name, extra=hw) for name in ("groq-tsp-v1", "tsp", "groq", "lpu")]
    assert {c.spec.clock_hz for c in chips} == {0.9e9}
    assert len({c.params for c in chips}) == 1 and chips[0].params == make_chip("groq-tsp-v1").params
