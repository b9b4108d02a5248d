"""``twinfer estimate`` with the AI-factory options: --ep (wide expert parallelism) and --speculative-k."""

from __future__ import annotations

import json

import pytest

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


SPEC_ARGS = ["estimate", "--model", "llama-3.3-70b", "--hardware", "h100", "--tp", "8", "--batch", "1",
             "--input-len", "512", "--output-len", "256", "--json"]


def test_speculative_decoding_in_estimate(capsys):
    """--speculative-k prices draft + verify over (1 - p^(k+1)) / (1 - p) tokens, against the plain TPOT it printed."""
    assert main([*SPEC_ARGS, "--speculative-k", "4", "--acceptance", "0.8", "--speculative-method", "eagle"]) == 0
    r = json.loads(capsys.readouterr().out)
    sp = r["speculative"]
    assert sp["plain_step_s"] == r["tpot_s"]  # the same decode step, at the same context
    assert sp["tokens_per_step"] == pytest.approx((1 - 0.8**5) / (1 - 0.8), abs=1e-12)
    assert sp["tpot_s"] == pytest.approx((sp["draft_s"] + sp["verify_step_s"]) / sp["tokens_per_step"])
    assert sp["draft_s"] == pytest.approx(4 * r["tpot_s"] / 80)  # four EAGLE proposals, one of Llama-70B's 80 layers each
    assert sp["speedup"] > 2  # batch 1 is memory-bound: verifying 5 positions costs about one step


def test_speculative_with_a_draft_model_and_bad_input(capsys):
    assert main([*SPEC_ARGS, "--speculative-k", "3", "--acceptance", "0.9,0.7,0.5", "--draft-model", "llama-3.1-8b"]) == 0
    sp = json.loads(capsys.readouterr().out)["speculative"]
    assert (sp["method"], sp["acceptance"]) == ("draft", [0.9, 0.7, 0.5])
    assert sp["tokens_per_step"] == pytest.approx(1 + 0.9 + 0.9 * 0.7 + 0.9 * 0.7 * 0.5)
    assert main([*SPEC_ARGS, "--speculative-k", "3", "--acceptance", "high"]) == 2
    assert "--acceptance" in capsys.readouterr().err


def test_a_draft_model_on_its_own_lpu_pays_the_lpx_gpu_hand_off(capsys):
    """--draft-hardware: the 8B drafter on TSP v1 chips, over the lpx-gpu link (two token-id transfers per step)."""
    from twinfer.hardware import get_link

    args = [*SPEC_ARGS, "--speculative-k", "3", "--acceptance", "0.8", "--draft-model", "llama-3.1-8b"]
    assert main([*args, "--draft-hardware", "groq-tsp-v1", "--dtype", "int8"]) == 0
    sp = json.loads(capsys.readouterr().out)["speculative"]
    link = get_link("lpx-gpu")
    batch = 1
    by_hand = link.transfer_time_s(4 * batch * 3) + link.transfer_time_s(4 * batch * 4)  # drafts out, verified back
    assert sp["draft_hardware"] == "groq-tsp-v1" and sp["handoff_s"] == pytest.approx(by_hand, rel=1e-12)
    assert sp["tpot_s"] == pytest.approx((sp["draft_s"] + sp["handoff_s"] + sp["verify_step_s"]) / sp["tokens_per_step"])
    assert "groq-tsp-v1, over lpx-gpu" in sp["assumption"]
    assert main([*args, "--dtype", "int8"]) == 0
    same = json.loads(capsys.readouterr().out)["speculative"]
    assert same["handoff_s"] == 0.0 and same["verify_step_s"] == sp["verify_step_s"]


def test_draft_hardware_without_a_draft_model_is_a_clear_error(capsys):
    assert main([*SPEC_ARGS, "--draft-hardware", "h100"]) == 2
    assert "--speculative-k" in capsys.readouterr().err
    assert main([*SPEC_ARGS, "--speculative-k", "2", "--speculative-method", "eagle", "--draft-hardware", "h100"]) == 2
    assert "give --draft-model too" in capsys.readouterr().err


def test_without_a_draft_model_the_default_drafter_is_the_models_own(capsys):
    """Llama has no MTP module: EAGLE-style heads by default, mtp refused; DeepSeek-V3's MTP module is the default."""
    assert main([*SPEC_ARGS, "--speculative-k", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["speculative"]["method"] == "eagle"
    assert main([*SPEC_ARGS, "--speculative-k", "2", "--speculative-method", "mtp"]) == 2
    assert "multi-token-prediction" in capsys.readouterr().err
    assert main([*EP_ARGS, "--json", "--speculative-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["speculative"]["method"] == "mtp"


@pytest.mark.parametrize(("extra", "match"), [
    (["--draft-model", "llama-3.1-8b"], "--draft-model: speculative decoding needs --speculative-k"),
    (["--acceptance", "0.9"], "--acceptance: speculative decoding needs --speculative-k"),
    (["--speculative-k", "4", "--draft-model", "llama-3.1-8b", "--draft-tp", "2"], "give --draft-hardware too"),
    (["--speculative-k", "4", "--draft-model", "llama-3.1-8b", "--draft-hardware", "groq-tsp-v1", "--draft-tp", "2"],
     "is an LPU; size an LPU drafter with chips"),
    (["--speculative-k", "4", "--draft-model", "llama-3.1-8b", "--draft-hardware", "h100", "--draft-chips", "2"],
     "is a GPU; size a GPU drafter with tp"),
    (["--speculative-k", "4", "--draft-model", "mistral-7b"], "the target's tokenizer"),
    (["--speculative-k", "4", "--draft-model", "llama-3.1-8b", "--draft-hardware", "groq-tsp-v1", "--draft-chips", "2"],
     "for the drafter, use --draft-tp / --draft-chips"),
    (["--speculative-k", "4", "--draft-model", "llama-3.1-405b"], "is larger than the target"),
])
def test_speculative_options_that_cannot_hold_are_refused(extra, match, capsys):
    assert main([*SPEC_ARGS, *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


def test_an_lpu_drafter_without_room_for_the_batchs_kv_is_refused(capsys):
    """80 TSP chips hold the 8B drafter's weights but KV for ~1.3k tokens, not 64 x 8,256."""
    args = ["estimate", "--model", "llama-3.3-70b", "--hardware", "h100", "--tp", "8", "--batch", "64",
            "--input-len", "8000", "--speculative-k", "4", "--draft-model", "llama-3.1-8b",
            "--draft-hardware", "groq-tsp-v1", "--draft-chips", "80"]
    assert main(args) == 2
    assert "less than the batch's 528,384" in capsys.readouterr().err
