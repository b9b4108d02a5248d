"""Each LPU has its own micro-architecture set; a user LPU brings one or names the preset it starts from."""

from __future__ import annotations

import json

import pytest

from twinfer.errors import ConfigError
from twinfer.hardware import get_hardware, load_hardware_file
from twinfer.lpu.chip import make_chip

USER_LPU = """
[lpu.my-tsp]
clock_hz = 1.0e9
sram_bytes = 230686720
sram_bw_bytes_per_s = 50e12
peak_ops_per_s.int8 = 737e12
peak_ops_per_s.fp16 = 188e12
lanes = 320
mem_slices = 88
mxm_planes = 4
mxm_dim = 320
c2c_links = 16
c2c_link = "groq-c2c"
chips_per_node = 8
chips_per_rack = 72
power_idle_w = 100
power_max_w = 300
price_per_hour_usd = 1.0
{micro}
"""


def _user_file(tmp_path, micro: str):
    path = tmp_path / "hw.toml"
    path.write_text(USER_LPU.format(micro=micro), encoding="utf-8")
    return path


def test_lp30_has_its_own_parameters_derived_from_its_figures():
    tsp, lp30 = make_chip("groq-tsp-v1"), make_chip("groq3-lp30")
    # LP30 installs a 6-plane round from 150 TB/s at 1 GHz; TSP v1 a 4-plane round from
    # 88 x 2 x 320 B/cycle: 40 cycles x 1.5 (bytes per round) / (150 KB / 56.3 KB per cycle) = 22.5.
    tsp_bytes_per_cycle = 50.688e12 / 900e6
    expected = 40 * 1.5 / (150e12 / 1e9 / tsp_bytes_per_cycle)
    assert lp30.params.mxm_install_cycles == pytest.approx(expected, abs=0.6)
    assert lp30.params.reserved_sram_bytes != tsp.params.reserved_sram_bytes
    assert "LP30" in lp30.params.sources["mxm_install_cycles"] or "150 TB/s" in lp30.params.sources["mxm_install_cycles"]


def test_an_lpu_without_parameters_is_an_error_that_says_what_to_add(tmp_path):
    extra = load_hardware_file(_user_file(tmp_path, ""))
    with pytest.raises(ConfigError, match="microarch_based_on"):
        make_chip("my-tsp", extra=extra)


def test_a_user_lpu_based_on_a_preset_takes_its_set_and_its_overrides(tmp_path):
    micro = 'microarch_based_on = "groq-tsp-v1"\nmicroarch.d_mxm_cycles = { value = 50, source = "my lab" }'
    extra = load_hardware_file(_user_file(tmp_path, micro))
    chip, tsp = make_chip("my-tsp", extra=extra), make_chip("groq-tsp-v1")
    assert chip.params.d_mxm_cycles == 50
    assert chip.params.sources["d_mxm_cycles"] == "my lab"
    assert chip.params.host_loop_s == tsp.params.host_loop_s
    assert get_hardware("my-tsp", extra).clock_hz == 1e9


def test_microarch_based_on_takes_a_preset_alias_too(tmp_path):
    """``tsp`` is an alias of groq-tsp-v1: the same set; a name no preset has is still a clear error."""
    chip = make_chip("my-tsp", extra=load_hardware_file(_user_file(tmp_path, 'microarch_based_on = "tsp"')))
    assert chip.params == make_chip("groq-tsp-v1").params
    bad = load_hardware_file(_user_file(tmp_path, 'microarch_based_on = "nope"'))
    with pytest.raises(ConfigError, match="is not an LPU with a parameter set"):
        make_chip("my-tsp", extra=bad)


def test_a_user_microarch_table_must_be_complete_without_a_base(tmp_path):
    extra = load_hardware_file(_user_file(tmp_path, "microarch.d_mxm_cycles = 50"))
    with pytest.raises(ConfigError, match="lacks"):
        make_chip("my-tsp", extra=extra)


def test_unknown_microarch_field_is_named(tmp_path):
    micro = 'microarch_based_on = "groq-tsp-v1"\nmicroarch.d_mxx_cycles = 50'
    extra = load_hardware_file(_user_file(tmp_path, micro))
    with pytest.raises(ConfigError, match="d_mxx_cycles"):
        make_chip("my-tsp", extra=extra)


def test_user_lpu_reaches_compile(tmp_path, capsys):
    from twinfer.cli import main

    micro = 'microarch_based_on = "groq-tsp-v1"'
    path = _user_file(tmp_path, micro)
    rc = main(["compile", "--model", "llama-2-7b", "--hardware", "my-tsp", "--hardware-file", str(path), "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hardware"] == "my-tsp"
    lo, hi = d["tokens_per_s_per_user_range"]
    assert lo <= d["tokens_per_s_per_user"] <= hi


def test_user_lpu_reaches_the_step_cost_factory(tmp_path):
    from twinfer.models import load_model
    from twinfer.models.step import StepShape
    from twinfer.perf.factory import make_step_cost

    micro = 'microarch_based_on = "groq-tsp-v1"\nmicroarch.host_loop_s = 0.002'
    extra = load_hardware_file(_user_file(tmp_path, micro))
    cost = make_step_cost(load_model("llama-2-7b"), "my-tsp", chips=72, extra_hardware=extra)
    # The user's 2 ms host loop is in every step.
    assert cost.step_time_s(StepShape.decode([100])) > 0.002
