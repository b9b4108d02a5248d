"""Tier presets: every value sourced, guesses flagged with a range, figures as the reference says."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinfer.errors import ConfigError, UnknownNameError
from twinfer.kvcache.tiers import get_tier, load_tiers

NUMBERS = ("capacity_bytes", "read_bw_bytes_per_s", "write_bw_bytes_per_s", "latency_s")


def test_every_value_has_a_source_and_every_guess_a_range() -> None:
    tiers = load_tiers()
    assert {"h100-host-dram", "h100-local-nvme", "mooncake-store"} <= set(tiers)
    for spec in tiers.values():
        assert set(spec.sources) == set(NUMBERS)
        assert all(spec.sources[k].strip() for k in NUMBERS)
        for key in spec.uncertain:
            if "guess" in spec.sources[key]:
                low, high = spec.ranges[key]
                assert low <= getattr(spec, key) <= high


def test_figures_match_the_reference_file() -> None:
    # gpu-and-serving.md: PCIe 5 x16 ~64 GB/s per direction; Mooncake 190 GB/s per 8-GPU node.
    assert get_tier("h100-host-dram").read_bw_bytes_per_s == 64e9
    assert get_tier("mooncake-store").read_bw_bytes_per_s == pytest.approx(190e9 / 8)
    assert get_tier("mooncake-store").shared
    # DGX H100: 2 TB of DDR5 and eight 3.84 TB NVMe drives for eight GPUs.
    assert get_tier("h100-host-dram").capacity_bytes * 8 == pytest.approx(2e12)
    assert get_tier("h100-local-nvme").capacity_bytes * 8 == pytest.approx(8 * 3.84e12)


def test_for_gpus_scales_capacity_and_bandwidth_not_latency() -> None:
    one = get_tier("h100-host-dram")
    four = one.for_gpus(4)
    assert four.capacity_bytes == 4 * one.capacity_bytes
    assert four.read_bw_bytes_per_s == 4 * one.read_bw_bytes_per_s
    assert four.latency_s == one.latency_s


def test_bad_files_and_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="h100-host-dram"):
        get_tier("nope")
    bad = tmp_path / "t.toml"
    bad.write_text("[tier.x]\nread_bw_bytes_per_s = 5\n")
    with pytest.raises(ConfigError, match="tier.x: missing capacity_bytes"):
        load_tiers(bad)
    bad.write_text(
        "[tier.x]\ncapacity_bytes = 5\n"
        + "\n".join(f'{k} = {{value = 1, source = "s"}}' for k in NUMBERS[1:])
    )
    with pytest.raises(ConfigError, match="tier.x.capacity_bytes: expected a table"):
        load_tiers(bad)
    bad.write_text(
        "[tier.x]\n"
        + "\n".join(f'{k} = {{value = 1, source = "s", range = [2, 3]}}' for k in NUMBERS)
    )
    with pytest.raises(ConfigError, match="range"):
        load_tiers(bad)
