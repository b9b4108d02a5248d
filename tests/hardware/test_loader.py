"""Users' own hardware files: round trips and clear errors."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.hardware import get_hardware, get_link, hardware_names, load_hardware_file

TOML = """
[gpu.my-gpu]
aliases = ["mine"]
memory_bytes = 96e9
mem_bw_bytes_per_s = { value = 4.0e12, source = "vendor sheet" }
peak_flops_per_s.bf16 = 800e12
peak_flops_per_s.fp8 = { value = 1600e12, source = "guess", uncertain = true }
scale_up_link = "my-link"
power_idle_w = 60
power_max_w = 600
price_per_hour_usd = 2.5
num_sms = 100

[link.my-link]
bw_bytes_per_s = 200e9
latency_s = 2e-6
"""

YAML = """
gpu:
  yaml-gpu:
    memory_bytes: 48e9
    mem_bw_bytes_per_s: 1.0e12
    peak_flops_per_s: {bf16: 200e12}
    scale_up_link: pcie5
    power_idle_w: 30
    power_max_w: 300
    price_per_hour_usd: 1
"""


def test_toml_round_trip(write_file):
    """Every value read back equals what was written; plain values get the file as their source."""
    path = write_file("hw.toml", TOML)
    hw = load_hardware_file(path)
    gpu = get_hardware("mine", hw)
    assert gpu.name == "my-gpu"
    assert gpu.memory_bytes == 96e9 and gpu.mem_bw_bytes_per_s == 4.0e12
    assert dict(gpu.peak_flops_per_s) == {"bf16": 800e12, "fp8": 1600e12}
    assert gpu.num_sms == 100 and isinstance(gpu.num_sms, int)
    assert gpu.sources["mem_bw_bytes_per_s"] == "vendor sheet"
    assert str(path) in gpu.sources["memory_bytes"]
    assert gpu.uncertain == ("peak_flops_per_s.fp8",)
    assert get_link("my-link", hw).bw_bytes_per_s == 200e9
    assert "my-gpu" in hardware_names(hw) and "h100-sxm" in hardware_names(hw)


def test_yaml_strings_like_48e9_are_numbers(write_file):
    """PyYAML reads 48e9 as a string; the loader still takes it as a number."""
    hw = load_hardware_file(write_file("hw.yaml", YAML))
    gpu = get_hardware("yaml-gpu", hw)
    assert gpu.memory_bytes == 48e9 and gpu.peak_flops("bf16") == 200e12


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (TOML.replace("num_sms = 100", "num_smz = 100"), "unknown field 'num_smz'"),
        (TOML.replace("power_max_w = 600\n", ""), "missing field(s) power_max_w"),
        (TOML.replace("memory_bytes = 96e9", 'memory_bytes = "lots"'), "gpu.my-gpu.memory_bytes: expected a number"),
        (TOML.replace("memory_bytes = 96e9", "memory_bytes = -1"), "must be positive"),
        (TOML.replace("num_sms = 100", "num_sms = 10.5"), "whole number"),
        ("[cpu.x]\nfoo = 1\n", "unknown top-level key"),
        ("[gpu.x\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_field_and_file(write_file, text, needle):
    """Errors are ConfigErrors naming the file and the bad field."""
    path = write_file("bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_hardware_file(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_and_bad_suffix(write_file, tmp_path):
    """A missing file or a .json file gives a clear ConfigError."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_hardware_file(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml"):
        load_hardware_file(write_file("hw.json", "{}"))


def test_shipped_example_file_loads():
    """The example user file in the package loads and its GPU is usable by name."""
    from importlib import resources

    path = resources.files("twinfer.hardware").joinpath("examples/user-hardware.toml")
    hw = load_hardware_file(str(path))
    gpu = get_hardware("h100-cheap", hw)
    assert gpu.price_per_hour_usd == 1.90 and gpu.peak_flops("fp8") == 1979e12
    assert get_link("roce-200g", hw).links_per_node == 8


@pytest.mark.parametrize(("kind", "name"), [("gpu", "vr200"), ("lpu", "groq3-lp30"), ("link", "lpx-gpu")])
def test_spec_table_loads_back_to_the_same_values(tmp_path, kind, name):
    """A hardware file built from a preset's spec_table holds the preset's values field for field (sources aside)."""
    import dataclasses
    import json

    from twinfer.hardware import get_hardware, get_link, load_hardware_file, spec_table

    spec = get_link(name) if kind == "link" else get_hardware(name)
    path = tmp_path / "hw.yaml"
    path.write_text(json.dumps({kind: {name: spec_table(spec)}}), encoding="utf-8")
    loaded = load_hardware_file(path)
    again = loaded.links[name] if kind == "link" else loaded.chips[name]
    for f in dataclasses.fields(spec):
        if f.name not in ("sources", "uncertain", "ranges"):
            assert getattr(again, f.name) == getattr(spec, f.name), f.name


#: my-gpu's fields (the lines after its aliases, up to the link), for a second GPU entry.
GPU_FIELDS = TOML.split("\n", 3)[3].split("[link")[0]


@pytest.mark.parametrize(("text", "needle"), [
    (TOML + '\n[gpu.other]\naliases = ["mine"]\n' + GPU_FIELDS,
     "alias 'mine' is already an alias of my-gpu"),
    (TOML.replace('aliases = ["mine"]', 'aliases = ["my-link", "my-gpu2"]') + "\n[gpu.my-gpu2]\n" + GPU_FIELDS,
     "alias 'my-gpu2' of my-gpu is the name of the entry my-gpu2"),
    (TOML + "\n[gpu.MY-GPU]\n" + GPU_FIELDS, "differ only by case"),
])
def test_one_name_means_one_entry_within_a_file(write_file, text, needle):
    """An alias given twice, an alias that is another entry's name, or two spellings of one name: refused."""
    with pytest.raises(ConfigError, match=needle):
        load_hardware_file(write_file("hw.toml", text))
