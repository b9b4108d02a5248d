"""The 2026 AI-factory presets: Vera Rubin (vr200) with NVL72 and NVLink 6, the Groq 3 LPX rack, the LPX<->GPU link.

Expected numbers are read off /work/shared/reference/factory-2026.md by hand.
"""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError, UnknownNameError
from twinfer.hardware import (
    GpuSpec,
    LpuSpec,
    get_hardware,
    get_link,
    get_rack,
    load_hardware_file,
    rack_names,
)


def test_vr200_matches_the_reference_and_is_uncertain():
    """288 GB HBM4, 22 TB/s (13 TB/s earlier figure as the low end), 72 GPUs on NVLink 6; every value [U]."""
    gpu = get_hardware("rubin")
    assert isinstance(gpu, GpuSpec) and gpu.name == "vr200"
    assert gpu.memory_bytes == 288e9
    assert gpu.mem_bw_bytes_per_s == 22e12 and gpu.ranges["mem_bw_bytes_per_s"] == (13e12, 22e12)
    assert gpu.peak_flops("fp4") == 50e15 and gpu.ranges["peak_flops_per_s.fp4"] == (25e15, 50e15)
    assert gpu.scale_up_gpus == 72 and gpu.scale_up_link == "nvlink6"
    for key in gpu.sources:
        assert key in gpu.uncertain, f"vr200.{key} is preliminary and must be [U]"


@pytest.mark.parametrize("name", ["vr200", "gb300", "rubin-cpx"])
def test_optional_factory_gpus_are_sourced_and_uncertain(name):
    """GB300 and Rubin CPX (and Rubin): every value has a source and is [U]; CPX is 128 GB GDDR7 at 30 PF NVFP4."""
    gpu = get_hardware(name)
    assert isinstance(gpu, GpuSpec)
    for key, source in gpu.sources.items():
        assert source and key in gpu.uncertain
    assert "ASSUMPTION" in gpu.sources["price_per_hour_usd"]
    if name == "rubin-cpx":
        assert (gpu.memory_bytes, gpu.peak_flops("fp4")) == (128e9, 30e15)


def test_nvlink6_is_half_the_quoted_bidirectional_figure():
    """3.6 TB/s per GPU bidirectional (260 TB/s / 72 GPUs) -> 1.8 TB/s per direction, twice NVLink 5."""
    nv6 = get_link("nvlink6")
    assert nv6.bw_bytes_per_s == pytest.approx(260e12 / 72 / 2, rel=0.01)
    assert nv6.bw_bytes_per_s == 2 * get_link("nvlink5").bw_bytes_per_s


def test_lpx_rack_and_its_link_to_the_gpus():
    """256 LP30 in 32 trays x 8; the GPU link is a [U] range because LP30 has no NVLink at launch."""
    lpx = get_rack("lpx")
    assert (lpx.name, lpx.devices, lpx.trays) == ("groq3-lpx", 256, 32)
    assert lpx.devices == lpx.trays * 8
    chip = get_hardware(lpx.device)
    assert isinstance(chip, LpuSpec) and chip.chips_per_rack == lpx.devices
    assert lpx.scale_up_bw_bytes_per_s == 640e12 and lpx.power_max_w is None
    link = get_link(lpx.attach_link)
    low, high = link.ranges["bw_bytes_per_s"]
    assert low == 50e9 and high == 200e9 and low <= link.bw_bytes_per_s <= high
    assert set(link.ranges) == {"bw_bytes_per_s", "latency_s"} == set(link.uncertain)
    assert "NVLink" in link.sources["bw_bytes_per_s"]


def test_nvl72_rack_power_range_and_every_rack_resolves():
    """NVL72: 72 GPUs + 36 CPUs, 190-230 kW; every rack's device and links are presets."""
    nvl = get_rack("nvl72")
    assert (nvl.devices, nvl.host_cpus, nvl.trays) == (72, 36, 18)
    assert nvl.ranges["power_max_w"] == (190e3, 230e3)
    assert get_hardware(nvl.device).scale_up_gpus == nvl.devices
    for name in rack_names():
        rack = get_rack(name)
        get_hardware(rack.device)
        get_link(rack.scale_up_link)
        if rack.attach_link:
            get_link(rack.attach_link)
    with pytest.raises(UnknownNameError, match="groq3-lpx"):
        get_rack("nvl144")


RANGE_TOML = """
[link.wan]
bw_bytes_per_s = {{ value = 10e9, range = {span}, source = "guess", uncertain = {unc} }}
latency_s = 1e-3
"""


def test_user_ranges_load_and_bad_ranges_are_clear_errors(write_file):
    """A range must be [low, high] around the value on an uncertain field; racks load from user files too."""
    hw = load_hardware_file(write_file("ok.toml", RANGE_TOML.format(span="[5e9, 20e9]", unc="true")))
    assert get_link("wan", hw).ranges["bw_bytes_per_s"] == (5e9, 20e9)
    for span, unc, needle in (("[5e9, 20e9]", "false", "uncertain = true"), ("[11e9, 20e9]", "true", "must hold"),
                              ("[5e9]", "true", r"\[low, high\]")):
        with pytest.raises(ConfigError, match=needle):
            load_hardware_file(write_file("bad.toml", RANGE_TOML.format(span=span, unc=unc)))
    rack = write_file("rack.toml", '[rack.mine]\ndevice = "h100"\ndevices = 8\ntrays = 1\nscale_up_link = "nvlink4"\n'
                                   'scale_up_bw_bytes_per_s = 3.6e12\n')
    assert get_rack("mine", load_hardware_file(rack)).devices == 8
    lpu_range = write_file("lpu.toml", '[lpu.x]\nclock_hz = { value = 1e9, range = [0.9e9, 1.1e9], uncertain = true }\n')
    with pytest.raises(ConfigError, match="do not take ranges"):
        load_hardware_file(lpu_range)


def test_hardware_command_lists_racks_and_ranges(capsys, monkeypatch):
    """`twinfer hardware --json` carries the racks and every range; --sources prints them beside the source."""
    import json

    from twinfer.cli import main

    assert main(["hardware", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    racks = {r["name"]: r for r in data["racks"]}
    assert racks["groq3-lpx"]["devices"] == 256 and racks["vr200-nvl72"]["ranges"]["power_max_w"] == [190e3, 230e3]
    links = {r["name"]: r for r in data["links"]}
    assert links["lpx-gpu"]["ranges"]["bw_bytes_per_s"] == [50e9, 200e9]
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps tables at the terminal width
    assert main(["hardware", "--sources"]) == 0
    out = capsys.readouterr().out
    assert "Racks" in out and "range 5e+10..2e+11" in out
