"""Scenarios shipped in the package (``twinfer simulate builtin:NAME``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinfer.errors import ConfigError
from twinfer.sim.scenario import builtin_scenario_path, load_scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_packaged_factory_is_the_example_users_read():
    """`builtin:factory-2026` runs from an installed package; it must stay the file examples/ documents."""
    shipped = builtin_scenario_path("builtin:factory-2026").read_bytes()
    assert shipped == (EXAMPLES / "factory_2026.yaml").read_bytes()


def test_the_factory_names_each_fleets_mode():
    scen = load_scenario("builtin:factory-2026")
    assert scen.model == "deepseek-v3"
    modes = [f.mode_label for f in scen.fleets]
    assert modes == ["aggregated", "disaggregated", "disaggregated", "AFD"]
    assert scen.fleets[3].pools["decode"].speculative is not None


def test_an_unknown_builtin_names_the_choices():
    with pytest.raises(ConfigError, match="builtin:factory-2026"):
        load_scenario("builtin:factory-2027")
