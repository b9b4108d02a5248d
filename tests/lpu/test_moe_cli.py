"""``twinfer compile`` on the shipped Mixtral 8x7B preset, on TSP v1 (int8) and Groq 3 LP30 (fp8)."""

from __future__ import annotations

import json

import pytest

from twinfer.cli import main
from twinfer.models import load_model


@pytest.mark.parametrize(("hardware", "dtype"), [("groq-tsp-v1", "int8"), ("groq3-lp30", "fp8")])
def test_compile_mixtral(capsys, hardware, dtype):
    rc = main(["compile", "--model", "mixtral-8x7b", "--hardware", hardware, "--dtype", dtype, "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    spec = load_model("mixtral-8x7b")
    assert spec.moe is not None
    # every routed expert of every layer sits on some chip: at least the expert bytes over chip SRAM
    expert_bytes = spec.num_layers * spec.moe.num_experts * spec.expert_params() * 1  # 1 byte per weight
    assert d["chips_used"] * d["sram_bytes_per_chip"]["usable"] > expert_bytes
    assert d["weight_dtype"] == dtype and d["tokens_per_s_per_user"] > 0
    assert "MXM routed experts (busiest chip)" in d["decode_attribution_cycles"]
    e = d["experts"]
    assert e["expert_chips"] == e["expert_groups"] * e["chips_per_group"] < d["chips_used"]
    assert e["expert_groups"] * e["moe_layers_per_group"] >= spec.num_layers


def test_imbalance_parameter_reaches_compile(capsys):
    """Mixtral on LP30 holds one expert per expert chip. Decode is install-bound (a few rows through each
    expert's weights), so a hotter chip only costs more in prefill, where its routed rows stream."""
    runs = []
    for imb in ("1.0", "1.5"):
        rc = main(["compile", "--model", "mixtral-8x7b", "--hardware", "groq3-lp30", "--dtype", "fp8", "--batch", "2",
                   "--context", "1024", "--param", f"moe_imbalance_factor={imb}", "--json"])
        assert rc == 0
        d = json.loads(capsys.readouterr().out)
        assert d["chip_params"]["moe_imbalance_factor"] == float(imb)
        runs.append(d)
    assert runs[0]["experts"]["expert_bytes_per_chip"] < 2 * 3 * 4096 * 14336  # at most one expert per layer
    assert runs[1]["prefill_s"] > runs[0]["prefill_s"]
    assert runs[1]["per_token_latency_s"] == runs[0]["per_token_latency_s"]


def test_imbalance_below_one_exits_2(capsys):
    rc = main(["compile", "--model", "mixtral-8x7b", "--hardware", "groq3-lp30", "--param", "moe_imbalance_factor=0.5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "moe_imbalance_factor" in err and ">= 1" in err and "Traceback" not in err
