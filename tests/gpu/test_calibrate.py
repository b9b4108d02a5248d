"""``twinfer calibrate`` on the CPU with tiny sizes, and loading its file into estimate."""

from __future__ import annotations

import json

import pytest

from twinfer.cli import main
from twinfer.gpu.calibrate import preset_for_device


def test_calibrate_cpu_tiny_writes_loadable_file(tmp_path, capsys):
    """A tiny CPU run writes device, date, torch version, measurements and params that estimate can load."""
    pytest.importorskip("torch")
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--size", "tiny", "--dtype", "fp32", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["device"] in ("cpu", "cuda") and doc["device_name"] and doc["torch_version"]
    assert doc["date"].endswith("Z")
    gemm = doc["measurements"]["gemm"]
    assert len(gemm) == 8 and all(g["time_s"] > 0 for g in gemm)
    assert len(doc["measurements"]["attention_prefill"]) == 2 and len(doc["measurements"]["memory"]) == 3
    for key in ("gemm_peak_eff", "gemm_mem_eff", "elementwise_mem_eff", "attn_prefill_peak_eff", "attn_decode_mem_eff"):
        assert 0 < doc["params"][key] <= 1
    capsys.readouterr()
    assert main(["estimate", "--model", "llama-3-8b", "--tp", "1", "--calibration", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"] == str(out)


def test_bad_size_exits_2(capsys, tmp_path):
    """An unknown --size is a user error (exit 2), checked before any benchmark runs."""
    assert main(["calibrate", "--size", "huge", "--out", str(tmp_path / "x.json")]) == 2
    assert "tiny or full" in capsys.readouterr().err


def test_cuda_names_map_to_presets():
    """CUDA device names map to the right preset; unknown names to None."""
    assert preset_for_device("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert preset_for_device("NVIDIA A100-SXM4-80GB") == "a100-80g"
    assert preset_for_device("NVIDIA GeForce RTX 4090") is None


@pytest.mark.gpu
def test_calibrate_on_cuda(tmp_path):
    """On an NVIDIA GPU the fitted GEMM efficiency is a plausible fraction of the datasheet peak."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--size", "tiny", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["device"] == "cuda" and 0 < doc["params"]["gemm_peak_eff"] <= 1
