"""The reference forward and the program executor against Hugging Face transformers.

Every model here is a random ``LlamaForCausalLM`` saved to a tmp folder (see
executor_helpers.make_tiny_llama). Tolerance on logits: 1e-4 absolute for
fp32/bf16 weights (logits are O(1-5); fp32 accumulation-order noise is ~2e-5),
and each greedy step must win by a margin far above that, so an equal token
sequence is evidence and not luck.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from executor_helpers import LLAMA3_ROPE, greedy_margins, hf_greedy, make_tiny_llama, tiny_chip

from twinfer.lpu import kernels as K
from twinfer.lpu.executor import (
    ProgramError,
    ProgramExecutor,
    ReferenceModel,
    compile_generation,
    execute_generation,
    greedy_generate,
)
from twinfer.lpu.ir import weight_key
from twinfer.lpu.weights import WeightStore, checkpoint_spec
from twinfer.models.ops import Precision

#: YaRN rope shrunk to a tiny context (HF keys); its attention factor 0.1 ln 4 + 1 scales cos and sin.
YARN_ROPE = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 8.0,
             "beta_slow": 1.0}
LOGIT_ATOL = 1e-4
MIN_MARGIN = 20 * LOGIT_ATOL  # each greedy step must win by at least this much
PROMPT = [[3, 17, 42, 99, 5, 64, 12], [7, 7, 1, 120, 33, 2, 90]]
NEW_TOKENS = 6


def _reference(folder, dtype="bf16"):
    spec = checkpoint_spec(folder)
    return ReferenceModel(spec, WeightStore.open(folder, spec), dtype=dtype)


def _check_against_hf(model, gen, atol):
    hf_tokens, hf_logits = hf_greedy(model, PROMPT, NEW_TOKENS)
    assert greedy_margins(hf_logits).min() > MIN_MARGIN, "test model too flat to discriminate"
    assert len(set(hf_tokens.reshape(-1).tolist())) > 3, "greedy output collapsed"
    diffs = [
        np.abs(ours - theirs).max() for ours, theirs in zip(gen.logits, hf_logits, strict=True)
    ]
    assert max(diffs) < atol, diffs
    assert np.array_equal(gen.tokens, hf_tokens)
    return max(diffs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"tie": True, "attention_bias": True, "kv_heads": 1, "layers": 3},
        {"rope_theta": 5e4, "rope_scaling": LLAMA3_ROPE, "save_dtype": "bfloat16", "kv_heads": 4},
    ],
    ids=["llama", "tied-bias-mqa", "llama3rope-bf16file-mha"],
)
def test_reference_forward_matches_transformers(tmp_path, kwargs):
    model = make_tiny_llama(tmp_path, **kwargs)
    ref = _reference(tmp_path, "bf16")  # weights are bf16 values, so bf16 storage is exact
    gen = greedy_generate(lambda ids: ref.forward(ids)[:, -1], np.array(PROMPT), NEW_TOKENS)
    _check_against_hf(model, gen, LOGIT_ATOL)


def test_reference_prefill_logits_at_every_position(tmp_path):
    torch = pytest.importorskip("torch")
    model = make_tiny_llama(tmp_path)
    ours = _reference(tmp_path, "fp32").forward(np.array(PROMPT))
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(PROMPT)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=LOGIT_ATOL)


def _quantize_torch(torch, w, dtype):
    """Independent per-output-channel quantisation in torch (float8_e4m3fn for fp8)."""
    amax = w.abs().amax(dim=1, keepdim=True)
    if dtype == "int8":
        scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
        return torch.clamp(torch.round(w / scale), -127, 127) * scale
    scale = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    return (w / scale).to(torch.float8_e4m3fn).float() * scale


@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_reference_quantized_matches_transformers_with_quantized_weights(tmp_path, dtype):
    torch = pytest.importorskip("torch")
    model = make_tiny_llama(tmp_path)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:  # every matrix: projections, embedding table and LM head
                p.copy_(_quantize_torch(torch, p, dtype))
    ref = _reference(tmp_path, dtype)
    gen = greedy_generate(lambda ids: ref.forward(ids)[:, -1], np.array(PROMPT), NEW_TOKENS)
    _check_against_hf(model, gen, LOGIT_ATOL)


# ---- compiled programs ---------------------------------------------------------------------
def _compile(folder, sram_bytes, chips, dtype):
    spec = checkpoint_spec(folder)
    prec = Precision(weights=dtype, activations="fp16", kv_cache="fp16")
    compiled = compile_generation(
        spec, tiny_chip(sram_bytes), chips=chips, batch=len(PROMPT), prompt_len=len(PROMPT[0]),
        max_new_tokens=NEW_TOKENS, precision=prec,
    )  # fmt: skip
    return compiled, WeightStore.open(folder, spec)


_MQA3 = {"hidden": 48, "heads": 3, "kv_heads": 1}  # 3 heads: no 2-way tensor split exists


@pytest.mark.parametrize(
    ("sram_bytes", "chips", "tp", "stages", "shape"),
    [
        (1_000_000, 1, 1, 1, {}),  # single chip
        (300_000, 2, 2, 1, {}),  # does not fit one chip: 2-way tensor split
        (200_000, 2, 1, 2, _MQA3),  # 2 pipeline stages
        (150_000, 4, 4, 1, {}),  # 4-way tensor split
        (100_000, None, 4, 2, {}),  # fewest chips that fit: tensor split x pipeline
    ],
)
def test_executor_on_compiled_programs_matches_transformers(
    tmp_path, sram_bytes, chips, tp, stages, shape
):
    model = make_tiny_llama(tmp_path, layers=4, **shape)
    compiled, store = _compile(tmp_path, sram_bytes, chips, "bf16")
    assert (compiled.plan.tp, len(compiled.plan.stages)) == (tp, stages)
    sends = sum(i.op == "send" for i in compiled.prefill.instrs)
    assert (sends > 0) == (tp * stages > 1)  # multi-chip programs really move tensors
    assert all(p.schedule_cycles > 0 for p in compiled.programs)
    gen = execute_generation(compiled, store, np.array(PROMPT))
    _check_against_hf(model, gen, LOGIT_ATOL)


@pytest.mark.parametrize(
    ("dtype", "sram_bytes", "chips"), [("int8", 200_000, 2), ("fp8", 100_000, 4)]
)
def test_executor_quantized_multichip_matches_transformers(tmp_path, dtype, sram_bytes, chips):
    torch = pytest.importorskip("torch")
    model = make_tiny_llama(tmp_path, layers=4)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(_quantize_torch(torch, p, dtype))
    compiled, store = _compile(tmp_path, sram_bytes, chips, dtype)
    assert compiled.prefill.weight_dtype == dtype and compiled.plan.chips_used == chips
    gen = execute_generation(compiled, store, np.array(PROMPT))
    _check_against_hf(model, gen, LOGIT_ATOL)


def test_executor_is_deterministic_and_matches_reference_bitwise_shape(tmp_path):
    make_tiny_llama(tmp_path, layers=2)
    compiled, store = _compile(tmp_path, 300_000, 2, "bf16")
    a = execute_generation(compiled, store, np.array(PROMPT))
    b = execute_generation(compiled, store, np.array(PROMPT))
    assert all(np.array_equal(x, y) for x, y in zip(a.logits, b.logits, strict=True))
    # Keeping widened fp32 copies of the weights is a speed choice, not a numeric one.
    ex = ProgramExecutor(store, keep_widened=False)
    c = execute_generation(compiled, store, np.array(PROMPT), executor=ex)
    assert all(np.array_equal(x, y) for x, y in zip(a.logits, c.logits, strict=True))
    assert a.logits[0].shape == (len(PROMPT), 128)


def test_decode_compiled_with_another_plan_is_refused(tmp_path):
    make_tiny_llama(tmp_path, layers=2)
    two, store = _compile(tmp_path, 1_000_000, 2, "bf16")
    one, _ = _compile(tmp_path, 1_000_000, 1, "bf16")
    ex = ProgramExecutor(store)
    ex.run(two.prefill, np.array(PROMPT))
    with pytest.raises(ProgramError, match="same partition plan"):
        ex.run(one.decodes[0], np.array(PROMPT)[:, :1])


def test_program_run_at_another_context_is_refused(tmp_path):
    make_tiny_llama(tmp_path, layers=1)
    compiled, store = _compile(tmp_path, 1_000_000, 1, "bf16")
    ex = ProgramExecutor(store)
    with pytest.raises(ProgramError, match="needs 7 cached tokens"):
        ex.run(compiled.decodes[0], np.array(PROMPT)[:, :1])  # decode before any prefill
    ex.run(compiled.prefill, np.array(PROMPT))
    with pytest.raises(ProgramError, match="needs 8 cached tokens"):
        ex.run(compiled.decodes[1], np.array(PROMPT)[:, :1])  # skipped decodes[0]


def test_program_reading_a_tensor_its_chip_lacks_is_refused(tmp_path):
    make_tiny_llama(tmp_path, layers=1)
    compiled, store = _compile(tmp_path, 300_000, 2, "bf16")
    prog = compiled.prefill
    drop = next(i for i in prog.instrs if i.op == "recv")  # chip never receives this tensor
    broken = dataclasses.replace(prog, instrs=tuple(i for i in prog.instrs if i is not drop))
    with pytest.raises(ProgramError, match="does not hold"):
        ProgramExecutor(store).run(broken, np.array(PROMPT))


def _representable(x, dtype):
    if dtype == "fp16":
        return np.array_equal(x, x.astype(np.float16).astype(np.float32))
    return np.array_equal(x, K.round_bf16(x))


def test_round_activations_holds_tensors_in_the_program_activation_dtype(tmp_path):
    model = make_tiny_llama(tmp_path, layers=4)
    hf_tokens, hf_logits = hf_greedy(model, PROMPT, NEW_TOKENS)
    spec = checkpoint_spec(tmp_path)
    store = WeightStore.open(tmp_path, spec)
    errors = {}
    for act in ("fp16", "bf16"):
        compiled = compile_generation(
            spec, tiny_chip(300_000), chips=2, batch=len(PROMPT), prompt_len=len(PROMPT[0]),
            max_new_tokens=NEW_TOKENS, precision=Precision(weights="bf16", activations=act, kv_cache=act),
        )  # fmt: skip
        ex = ProgramExecutor(store, round_activations=True)
        gen = execute_generation(compiled, store, np.array(PROMPT), executor=ex)
        assert all(_representable(lg, act) for lg in gen.logits)
        assert all(
            _representable(k, act) and _representable(v, act) for k, v in ex.cache.entries.values()
        )
        errors[act] = max(np.abs(a - b).max() for a, b in zip(gen.logits, hf_logits, strict=True))
        if act == "fp16":  # 11-bit mantissa: small error, and greedy margins dwarf it
            assert 1e-4 < errors[act] < 0.1
            assert greedy_margins(hf_logits).min() > 2 * errors[act]
            assert np.array_equal(gen.tokens, hf_tokens)
    # bf16 keeps 8 mantissa bits to fp16's 11: its error must be clearly larger.
    assert errors["bf16"] > 3 * errors["fp16"]


@pytest.mark.parametrize(
    ("family", "kwargs"),
    [("qwen2", {"tie": True}), ("mistral", {"sliding_window": 4096})],
)
def test_executor_on_other_families_matches_transformers(tmp_path, family, kwargs):
    model = make_tiny_llama(tmp_path, layers=2, family=family, **kwargs)
    compiled, store = _compile(tmp_path, 300_000, 2, "bf16")
    assert compiled.plan.chips_used == 2
    if family == "qwen2":  # q/k/v biases really reach the program
        assert any(i.attr("bias") for i in compiled.prefill.instrs if i.op == "matmul")
    _check_against_hf(model, execute_generation(compiled, store, np.array(PROMPT)), LOGIT_ATOL)


def test_program_reading_a_weight_shard_placed_elsewhere_is_refused(tmp_path):
    make_tiny_llama(tmp_path, layers=1)
    compiled, store = _compile(tmp_path, 300_000, 2, "bf16")
    prog = compiled.prefill
    mm = next(i for i in prog.instrs if i.op == "matmul" and i.chip == 1)
    key = weight_key(mm.attr("weight"), mm.attr("rows"), mm.attr("cols"))
    kept = tuple(p for p in prog.placements if not (p.tensor == key and p.chip == 1))
    assert len(kept) == len(prog.placements) - 1
    with pytest.raises(ProgramError, match="not placed in that chip's SRAM"):
        ProgramExecutor(store).run(dataclasses.replace(prog, placements=kept), np.array(PROMPT))


def test_yarn_rope_reference_and_compiled_match_transformers(tmp_path):
    model = make_tiny_llama(tmp_path, layers=2, rope_scaling=YARN_ROPE)
    ref = _reference(tmp_path, "bf16")
    _check_against_hf(model, greedy_generate(lambda ids: ref.forward(ids)[:, -1], np.array(PROMPT), NEW_TOKENS),
                      LOGIT_ATOL)
    compiled, store = _compile(tmp_path, 300_000, 2, "bf16")
    _check_against_hf(model, execute_generation(compiled, store, np.array(PROMPT)), LOGIT_ATOL)
