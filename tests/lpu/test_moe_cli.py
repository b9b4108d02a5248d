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


def test_compile_moe_with_too_few_chips_exits_2(capsys):
    rc = main(["compile", "--model", "mixtral-8x7b", "--hardware", "groq-tsp-v1", "--chips", "64"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "at least" in err and "--chips" in err and "Traceback" not in err
