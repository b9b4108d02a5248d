"""``twinfer estimate`` with the AI-factory options: --ep (wide expert parallelism)."""

from __future__ import annotations

import json

from twinfer.cli import main

EP_ARGS = ["estimate", "--model", "deepseek-v3", "--hardware", "vr200", "--tp", "1", "--ep", "8", "--dtype", "fp8"]


def test_deepseek_v3_on_vr200_with_ep8(capsys):
    """The issue's command works: 8 GPUs, each with 1/8 of the experts and a full attention replica."""
    assert main(EP_ARGS) == 0
    assert "ep=8" in capsys.readouterr().out
    assert main([*EP_ARGS, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["gpus"], r["ep"]) == (8, 8)
    names = {row["op"] for row in r["breakdown"]["decode"]}
    assert {"ep_dispatch", "ep_combine", "moe_up_proj", "attention"} <= names
    assert r["decode_tokens_per_s_per_gpu"] == r["batch"] / r["tpot_s"] / 8
    # 671B fp8 = 671 GB in all; one GPU holds well under a quarter of it (a replica of 14B non-expert weights + 1/8 of the rest).
    assert 671e9 / 8 < r["memory_per_gpu"]["weights_bytes"] < 671e9 / 4


def test_ep_errors_exit_2(capsys):
    """Dense model with --ep, and weights that do not fit, are one-line errors with exit 2."""
    assert main(["estimate", "--model", "llama-3-8b", "--hardware", "h100", "--tp", "1", "--ep", "2"]) == 2
    assert "MoE models only" in capsys.readouterr().err
    assert main(["estimate", "--model", "deepseek-v3", "--hardware", "h100", "--tp", "1", "--ep", "2", "--dtype", "fp8"]) == 2
    assert "larger --ep" in capsys.readouterr().err
