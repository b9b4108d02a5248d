"""The compiled verify step of speculative decoding: k + 1 query rows per sequence over the cached context.

References: transformers' logits at every verified position (the executor runs the compiled verify
program after a compiled prefill), and properties a reader checks by hand: a verify step reads the
weights once, as a decode step does, so it costs at least one decode step and less than k + 1 of them.
"""

from __future__ import annotations

import numpy as np
import pytest
from compiler_helpers import make_tiny_model
from executor_helpers import make_tiny_llama, tiny_chip

from twinfer.errors import ConfigError
from twinfer.lpu.costs import StepInfo, attention_geometry
from twinfer.lpu.cycles import report
from twinfer.lpu.passes import compile_step
from twinfer.lpu.plan import make_plan
from twinfer.lpu.system import System
from twinfer.models.ops import Precision

PREC = Precision(weights="int8", activations="fp16", kv_cache="fp16")


def _programs(model, chip, ctx: int, batch: int, ks: tuple[int, ...]):
    plan = make_plan(model, chip, PREC, chips=None, batch=batch, ctx=ctx, tokens=batch * (max(ks) + 1))
    system = System(chip, plan.num_chips)
    kw = dict(batch=batch, seq_len=ctx, precision=PREC, plan=plan)
    dec = compile_step(model, system, phase="decode", **kw).program
    vers = {k: compile_step(model, system, phase="verify", verify_tokens=k + 1, **kw).program for k in ks}
    return dec, vers


@pytest.mark.parametrize("batch", [1, 4])
def test_verify_of_k_plus_1_rows_costs_between_one_and_k_plus_1_decode_steps(tsp, batch):
    # wide enough that streaming the weights, not fixed latencies, dominates a step
    model = make_tiny_model(hidden_size=2048, intermediate_size=5632, num_attention_heads=16, num_kv_heads=4,
                            head_dim=128, vocab_size=4096, num_layers=2)
    dec, vers = _programs(model, tsp, ctx=512, batch=batch, ks=(1, 3, 7))
    d = report(dec, tsp).cycles
    cycles = [report(vers[k], tsp).cycles for k in (1, 3, 7)]
    for k, c in zip((1, 3, 7), cycles, strict=True):
        assert d <= c < (k + 1) * d, (k, c, d)
    assert cycles == sorted(cycles)  # more rows to check never costs less


def test_verify_program_shape_every_row_gets_logits_and_attends_the_whole_context(tiny_model, tsp):
    dec, vers = _programs(tiny_model, tsp, ctx=64, batch=2, ks=(3,))
    v = vers[3]
    assert v.phase == "verify" and v.tokens == 2 * 4 and v.get_meta("verify_tokens") == 4
    head = [i for i in v.instrs if i.attr("role") == "lm_head"]
    assert head and all(i.attr("shape")[0] == 2 * 4 for i in head)
    att = [i for i in v.instrs if i.op == "attention"]
    step = StepInfo(v.phase, v.batch, v.seq_len, v.activation_dtype)
    assert att and all(attention_geometry(i, step) == (4, 64) for i in att)  # 4 queries over 60 cached + 4 new


def test_verify_tokens_must_fit_the_context(tiny_model, tsp):
    with pytest.raises(ConfigError, match="verify step checks"):
        _programs(tiny_model, tsp, ctx=3, batch=1, ks=(3,))


@pytest.mark.parametrize(("sram_bytes", "chips"), [(1_000_000, 1), (150_000, 4)])
def test_executor_verify_logits_match_transformers_at_every_checked_position(tmp_path, sram_bytes, chips):
    torch = pytest.importorskip("torch")
    from twinfer.lpu.executor import ProgramExecutor
    from twinfer.lpu.weights import WeightStore, checkpoint_spec

    model = make_tiny_llama(tmp_path, layers=2)
    spec = checkpoint_spec(tmp_path)
    prec = Precision(weights="bf16", activations="fp16", kv_cache="fp16")
    prompt = np.array([[3, 17, 42, 99, 5, 64, 12], [7, 7, 1, 120, 33, 2, 90]])
    drafts = np.array([[8, 50, 21, 4], [60, 9, 9, 101]])  # the last sampled token and 3 drafts, k = 3
    chip = tiny_chip(sram_bytes)
    ctx = prompt.shape[1] + drafts.shape[1]
    plan = make_plan(spec, chip, prec, chips=chips, batch=2, ctx=ctx, tokens=prompt.size)
    system = System(chip, plan.num_chips)
    kw = dict(batch=2, precision=prec, plan=plan)
    prefill = compile_step(spec, system, phase="prefill", seq_len=prompt.shape[1], **kw).program
    verify = compile_step(spec, system, phase="verify", seq_len=ctx, verify_tokens=4, **kw).program
    ex = ProgramExecutor(WeightStore.open(tmp_path, spec))
    ex.run(prefill, prompt)
    ours = ex.run(verify, drafts).logits.reshape(2, 4, -1)
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(np.concatenate([prompt, drafts], axis=1))).logits.numpy()
    np.testing.assert_allclose(ours, theirs[:, prompt.shape[1]:], atol=1e-4)


def test_compile_cli_shows_tokens_per_user_with_speculation(tmp_path, capsys):
    import json

    from twinfer.cli import main

    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 512,
              "intermediate_size": 1408, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
              "vocab_size": 4096, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5}
    (tmp_path / "config.json").write_text(json.dumps(config))
    rc = main(["compile", "--model", str(tmp_path / "config.json"), "--hardware", "groq3-lp30", "--context", "512",
               "--json", "--speculative-k", "3", "--acceptance", "0.8"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    sp = d["speculative"]
    assert sp["tokens_per_step"] == pytest.approx((1 - 0.8**4) / 0.2)
    assert sp["plain_tokens_per_s_per_user"] == pytest.approx(d["tokens_per_s_per_user"])
    # (draft + verify) / E[tokens] per token, against the plain decode step
    assert sp["tokens_per_s_per_user"] == pytest.approx(sp["tokens_per_step"] / (sp["draft_s"] + sp["verify_step_s"]))
    assert 1.0 < sp["speedup"] < sp["tokens_per_step"]


@pytest.mark.parametrize(("args", "match"), [
    (["--speculative-k", "3", "--speculative-method", "draft"], "twinfer estimate --draft-model"),
    (["--speculative-k", "3", "--acceptance", "0.9,x"], "comma-separated"),
    (["--speculative-k", "0"], "integer >= 1"),
    (["--speculative-k", "3", "--speculative-method", "mtp"], "llama-3-8b has none"),  # no MTP module in Llama
    (["--acceptance", "0.9"], "needs --speculative-k"),
    (["--speculative-method", "eagle"], "needs --speculative-k"),
])
def test_compile_cli_refuses_bad_speculative_options(args, match, capsys):
    from twinfer.cli import main

    assert main(["compile", "--model", "llama-3-8b", *args]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize(("name", "chips", "batch", "seq", "verify"),
                         [("tiny", 1, 3, 50, 5), ("llama-2-7b", 64, 2, 300, 4)])
def test_the_simulators_lpu_backend_prices_a_verify_step_as_the_compiled_program(tsp, name, chips, batch, seq,
                                                                                   verify):
    # the simulator prices a speculative pool's step as a decode step with k extra query rows per sequence
    # (StepShape.decode(..., tokens_per_seq=k + 1)); on an LPU that must be the compiled verify program's cycles
    from twinfer.lpu.analytic import AnalyticLpu
    from twinfer.lpu.step_cost import LPU_DEFAULT_PRECISION
    from twinfer.models import load_model
    from twinfer.models.step import StepShape

    model = make_tiny_model() if name == "tiny" else load_model(name)
    system = System(tsp, chips)
    plan = make_plan(model, tsp, LPU_DEFAULT_PRECISION, chips=chips, batch=1, ctx=8192, tokens=1)
    prog = compile_step(model, system, phase="verify", batch=batch, seq_len=seq, plan=plan,
                        precision=LPU_DEFAULT_PRECISION, verify_tokens=verify).program
    shape = StepShape.decode([seq] * batch, tokens_per_seq=verify)
    assert AnalyticLpu(model, system, plan, LPU_DEFAULT_PRECISION).step_cycles(shape) == prog.schedule_cycles
