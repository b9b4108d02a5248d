"""Shipped efficiency parameters and calibration files."""

from __future__ import annotations

import json

import pytest

from twinfer.errors import ConfigError
from twinfer.gpu import GpuEfficiency, GpuStepCost, default_efficiency, load_calibration
from twinfer.models import StepShape, load_model


def test_defaults_are_fractions_and_h200_reuses_h100():
    """Efficiencies lie in (0, 1]; GPUs without measurements reuse the H100 entry."""
    for name in ("h100-sxm", "a100-80g", "b200"):
        eff = default_efficiency(name)
        for field in ("gemm_peak_eff", "gemm_mem_eff", "elementwise_mem_eff", "allreduce_bw_eff", "attn_decode_mem_eff"):
            assert 0 < getattr(eff, field) <= 1
    assert default_efficiency("h200") == default_efficiency("h100-sxm")


def test_calibration_file_replaces_fields(tmp_path):
    """A calibration file's params replace those fields; a slower GEMM efficiency slows prefill."""
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"device_name": "test", "params": {"gemm_peak_eff": 0.3}}))
    base = default_efficiency("h100-sxm")
    eff = load_calibration(path, base)
    assert eff.gemm_peak_eff == 0.3 and eff.gemm_mem_eff == base.gemm_mem_eff
    spec = load_model("llama-3-8b")
    shape = StepShape.prefill([4096])
    slow = GpuStepCost(spec, "h100", efficiency=eff).step_time_s(shape)
    fast = GpuStepCost(spec, "h100").step_time_s(shape)
    assert slow > 2 * fast


@pytest.mark.parametrize(
    ("text", "needle"),
    [("{not json", "not valid JSON"), ('{"params": {"gemm_speed": 1}}', "gemm_speed"), ('{"x": 1}', "no 'params'")],
)
def test_bad_calibration_files(tmp_path, text, needle):
    """Bad calibration files raise ConfigError naming the problem and the file."""
    path = tmp_path / "cal.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_calibration(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_calibration(tmp_path / "missing.json")


def test_replace_rejects_unknown():
    """GpuEfficiency.replace names unknown parameters."""
    with pytest.raises(ConfigError, match="nope"):
        GpuEfficiency().replace(nope=1)
