"""``twinfer estimate`` through twinfer.cli.main: numbers, JSON, breakdown and the error path."""

from __future__ import annotations

import json

import pytest

from twinfer.cli import main
from twinfer.models import load_model

ARGS = ["estimate", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "8", "--batch", "16",
        "--input-len", "2048", "--output-len", "256"]


@pytest.fixture
def estimate_json(capsys):
    """Run estimate with --json and return the parsed output."""

    def _run(*extra: str) -> dict:
        assert main([*ARGS, "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    return _run


def test_text_output_has_the_headline_numbers(capsys):
    """The default output names TTFT, time per output token, tokens/s and memory."""
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    for needle in ("TTFT", "time per output token", "tokens/s per user", "per GPU", "memory per GPU"):
        assert needle in out


def test_json_is_consistent_and_has_op_names(estimate_json):
    """JSON holds the required op names; tokens/s per user = 1/TPOT; per GPU = batch/TPOT/8."""
    r = estimate_json()
    names = {row["op"] for row in r["breakdown"]["decode"]}
    assert {"qkv_proj", "attn_out_proj", "mlp_up_proj", "mlp_down_proj", "attention", "all_reduce"} <= names
    assert r["tokens_per_s_per_user"] == pytest.approx(1 / r["tpot_s"])
    assert r["decode_tokens_per_s_per_gpu"] == pytest.approx(16 / r["tpot_s"] / 8)
    assert r["ttft_s"] > r["tpot_s"] > 0
    per_layer = {row["op"]: row for row in r["breakdown"]["prefill"]}
    assert per_layer["qkv_proj"]["repeat"] == 80 and per_layer["all_reduce"]["repeat"] == 160


def test_memory_by_hand(estimate_json):
    """Weights per GPU = params x 2 B / 8; KV needed = 16 x 2304 tokens x 327,680 B / 8."""
    r = estimate_json()
    m = r["memory_per_gpu"]
    assert m["weights_bytes"] == pytest.approx(load_model("llama-3-70b").param_count() * 2 / 8)
    assert m["kv_needed_bytes"] == pytest.approx(16 * 2304 * 327_680 / 8)
    assert m["usable_bytes"] == pytest.approx(0.9 * 80e9)


def test_fp8_is_faster_and_smaller(estimate_json):
    """--dtype fp8 halves weight bytes and speeds up the weight-bound decode step."""
    bf16, fp8 = estimate_json(), estimate_json("--dtype", "fp8")
    assert fp8["memory_per_gpu"]["weights_bytes"] == pytest.approx(bf16["memory_per_gpu"]["weights_bytes"] / 2)
    assert fp8["precision"]["kv_cache"] == "fp8"
    assert fp8["tpot_s"] < bf16["tpot_s"]


def test_breakdown_tables(capsys):
    """--breakdown prints a prefill and a decode table with per-op rows."""
    assert main([*ARGS, "--breakdown"]) == 0
    out = capsys.readouterr().out
    assert "prefill step" in out and "decode step" in out and "mlp_down_proj" in out


def test_does_not_fit_exits_2_with_missing_gb(capsys):
    """70B bf16 on 2 GPUs: exit 2, a one-line error with the missing GB and a TP suggestion, no traceback."""
    code = main(["estimate", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "GB" in err and "--tp 4" in err and "Traceback" not in err


def test_kv_does_not_fit_exits_2(capsys):
    """A batch whose KV cache exceeds free memory names the missing GB."""
    code = main(["estimate", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "4", "--batch", "256",
                 "--input-len", "8192"])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err and "KV cache" in err


def test_unknown_hardware_and_lpu_exit_2(capsys):
    """Unknown hardware lists presets; an LPU preset is refused clearly."""
    assert main(["estimate", "--hardware", "h1000"]) == 2
    assert "h100-sxm" in capsys.readouterr().err
    assert main(["estimate", "--hardware", "groq"]) == 2
    assert "LPU" in capsys.readouterr().err


def test_hardware_file_gpu(capsys, tmp_path):
    """A user GPU from --hardware-file is estimated; twice the bandwidth speeds up decode."""
    fields = (
        'memory_bytes = 80e9\nmem_bw_bytes_per_s = {bw}\npeak_flops_per_s.bf16 = 989e12\nscale_up_link = "nvlink4"\n'
        "power_idle_w = 70\npower_max_w = 700\nprice_per_hour_usd = 3\nnum_sms = 132\n"
    )
    path = tmp_path / "hw.toml"
    path.write_text("[gpu.slow]\n" + fields.format(bw="3.35e12") + "[gpu.fast]\n" + fields.format(bw="6.7e12"))
    out = {}
    for name in ("slow", "fast"):
        assert main([*ARGS, "--hardware", name, "--hardware-file", str(path), "--json"]) == 0
        out[name] = json.loads(capsys.readouterr().out)["tpot_s"]
    assert out["fast"] < out["slow"]


def test_fp4_on_h100_is_a_clear_error(capsys):
    """H100 has no FP4 tensor cores: exit 2 naming the supported dtypes."""
    assert main([*ARGS, "--dtype", "fp4"]) == 2
    err = capsys.readouterr().err
    assert "fp4" in err and "bf16" in err and "Traceback" not in err


def test_pipeline_parallel_adds_sends_and_splits_memory(estimate_json):
    """tp=4 x pp=2 holds an eighth of the weights per GPU and adds pp_send_recv to the step."""
    r = estimate_json("--tp", "4", "--pp", "2")
    assert r["gpus"] == 8
    assert r["memory_per_gpu"]["weights_bytes"] == pytest.approx(load_model("llama-3-70b").param_count() * 2 / 8)
    assert any(row["op"] == "pp_send_recv" for row in r["breakdown"]["decode"])


def test_engine_changes_results_for_documented_reasons(estimate_json):
    """--engine trtllm: fewer kernels (fused ops named), the roofline kept beside, host time in TTFT."""
    base, trt = estimate_json(), estimate_json("--engine", "trtllm")
    assert base["engine"]["name"] == "roofline" and trt["engine"]["name"] == "trtllm"
    names = {row["op"] for row in trt["breakdown"]["prefill"]}
    assert "all_reduce_add_rmsnorm" in names and "rope" not in names and "mlp_act" in names  # bf16: act separate
    assert trt["breakdown_roofline"]["prefill"] == base["breakdown"]["prefill"]
    kernels = sum(row["total_ms"] for row in trt["breakdown"]["prefill"])
    assert trt["ttft_s"] * 1e3 == pytest.approx(kernels + trt["host"]["prefill"]["step_overhead_ms"]
                                                + trt["engine"]["request_overhead_ms"], rel=1e-9)
    assert trt["ttft_s"] < base["ttft_s"]


def test_breakdown_shows_what_fusion_saves(capsys):
    assert main([*ARGS, "--engine", "vllm", "--breakdown"]) == 0
    out = capsys.readouterr().out
    assert "fused away" in out and "element-wise kernels save" in out and "host: step overhead" in out


def test_unknown_engine_is_a_clear_error(capsys):
    assert main([*ARGS, "--engine", "tgi"]) == 2
    assert "unknown engine 'tgi'" in capsys.readouterr().err


def test_gemma_and_phi_estimate(estimate_json, capsys):
    for model in ("gemma-2-9b", "phi-3-mini-4k"):
        assert main(["estimate", "--model", model, "--tp", "1", "--batch", "4", "--input-len", "1024",
                     "--output-len", "128", "--engine", "vllm", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert 0 < r["tpot_s"] < r["ttft_s"] < 1.0
