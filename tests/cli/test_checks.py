"""Command-line value checks: ranges, output paths, and the calibration-device warning."""

from __future__ import annotations

import json
import math

import pytest

from twinfer.cli import checks, main
from twinfer.errors import ConfigError


@pytest.mark.parametrize("value", [math.nan, math.inf, -1, 11, 0])
def test_number_in_range_refuses_nan_inf_and_out_of_range(value) -> None:
    with pytest.raises(ConfigError, match="--x"):
        checks.number_in_range("--x", value, 0, 10, low_open=True)


def test_number_in_range_accepts_bounds_and_unset() -> None:
    checks.number_in_range("--x", 10, 0, 10, low_open=True)
    checks.number_in_range("--x", 0, 0, 10)
    checks.number_in_range("--x", None, 0, 10)


def test_output_paths(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a folder"):
        checks.output_file(tmp_path, "--trace")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        checks.output_file(tmp_path / "f" / "t.json", "--trace")
    with pytest.raises(ConfigError, match="is a file"):
        checks.output_folder(tmp_path / "f", "--out")
    with pytest.raises(ConfigError, match="inside the file"):
        checks.output_folder(tmp_path / "f" / "sub", "--out")
    checks.output_file(tmp_path / "new" / "t.json", "--trace")
    checks.output_folder(tmp_path / "new" / "deeper", "--out")


def test_seed_range() -> None:
    assert checks.seed(0) == 0
    with pytest.raises(ConfigError, match="--seed"):
        checks.seed(-1)


def _calibration(tmp_path, **meta) -> str:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"format": "twinfer.calibration/1", "params": {}, **meta}))
    return str(path)


def test_a_cpu_calibration_on_a_gpu_estimate_warns(tmp_path, capsys) -> None:
    cal = _calibration(tmp_path, device="cpu", device_name="cpu (x86_64)", reference_hardware="cpu-bf16")
    assert main(["estimate", "--model", "llama-3-8b", "--hardware", "h100", "--tp", "1", "--calibration", cal]) == 0
    assert "measured on a CPU" in capsys.readouterr().err


def test_a_calibration_of_the_same_gpu_does_not_warn(tmp_path, capsys) -> None:
    cal = _calibration(tmp_path, device="cuda", device_name="NVIDIA H100 80GB HBM3", reference_hardware="h100-sxm")
    assert main(["estimate", "--model", "llama-3-8b", "--hardware", "h100", "--tp", "1", "--calibration", cal]) == 0
    assert "warning" not in capsys.readouterr().err
    other = _calibration(tmp_path, device="cuda", device_name="NVIDIA A100", reference_hardware="a100-80g")
    assert checks.calibration_warning(other, "h100-sxm") is not None
