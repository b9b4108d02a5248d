"""The executor on compiled Mixtral programs against transformers' ``MixtralForCausalLM``.

A random tiny Mixtral (moe_helpers.make_tiny_mixtral) is saved as safetensors
+ config.json and loaded through twinfer's own checkpoint code. Tolerances as
in test_executor.py: logits within 1e-4 (bf16-valued weights held exactly;
fp32 accumulation order differs, ~1e-5), and every greedy step wins by a
margin far above that, so equal tokens are evidence.
"""

from __future__ import annotations

import numpy as np
import pytest
from executor_helpers import greedy_margins, hf_greedy, tiny_chip
from moe_helpers import make_tiny_deepseek_v3, make_tiny_mixtral

from twinfer.lpu.executor import (
    ReferenceModel,
    compile_generation,
    execute_generation,
    greedy_generate,
    unused_weights,
)
from twinfer.lpu.weights import WeightStore, checkpoint_spec
from twinfer.models.ops import Precision

LOGIT_ATOL = 1e-4
MIN_MARGIN = 20 * LOGIT_ATOL
PROMPT = [[3, 17, 42, 99, 5, 64, 12], [7, 7, 1, 120, 33, 2, 90]]
NEW_TOKENS = 6


@pytest.mark.parametrize(
    ("sram_bytes", "chips", "kwargs"),
    [
        (400_000, None, {}),  # fewest chips: attention stage(s) + expert chips
        (150_000, 12, {"experts": 8}),  # tensor split, experts on more chips than the stage has
        (400_000, None, {"experts": 4, "top_k": 1, "layers": 3}),  # top-1 routing
        (200_000, None, {"intermediate": 768}),  # an expert larger than a chip: split by intermediate rows
    ],
    ids=["min-chips", "tp-8experts", "top1", "split-experts"],
)
def test_executor_on_compiled_mixtral_matches_transformers(tmp_path, sram_bytes, chips, kwargs):
    model = make_tiny_mixtral(tmp_path, **kwargs)
    spec = checkpoint_spec(tmp_path)
    prec = Precision(weights="bf16", activations="fp16", kv_cache="fp16")
    compiled = compile_generation(spec, tiny_chip(sram_bytes), chips=chips, batch=len(PROMPT),
                                  prompt_len=len(PROMPT[0]), max_new_tokens=NEW_TOKENS, precision=prec)
    store = WeightStore.open(tmp_path, spec)
    assert unused_weights(compiled, store) == []  # every router and expert tensor is read
    plan = compiled.plan
    expert_chips = {c for g in plan.expert_groups for c in g.chips}
    assert expert_chips and {i.chip for i in compiled.prefill.instrs if i.op == "moe_experts"} == expert_chips
    if chips:
        assert plan.tp > 1 and plan.ep > plan.tp
    if kwargs.get("intermediate"):
        assert plan.ep > spec.moe.num_experts  # each expert spread over several chips
    gen = execute_generation(compiled, store, np.array(PROMPT))
    hf_tokens, hf_logits = hf_greedy(model, PROMPT, NEW_TOKENS)
    assert greedy_margins(hf_logits).min() > MIN_MARGIN, "test model too flat to discriminate"
    assert len(set(hf_tokens.reshape(-1).tolist())) > 3, "greedy output collapsed"
    diffs = [np.abs(a - b).max() for a, b in zip(gen.logits, hf_logits, strict=True)]
    print(f"max |logit diff| vs transformers: {max(diffs):.2e}")
    assert max(diffs) < LOGIT_ATOL, diffs
    assert np.array_equal(gen.tokens, hf_tokens)


@pytest.mark.parametrize(("sram_bytes", "chips", "interleave"), [(600_000, None, True), (200_000, 24, False)],
                         ids=["min-chips", "head-split-rotate-half"])
def test_executor_on_compiled_deepseek_v3_matches_transformers(tmp_path, sram_bytes, chips, interleave):
    model = make_tiny_deepseek_v3(tmp_path, rope_interleave=interleave)
    spec = checkpoint_spec(tmp_path)
    assert spec.mla is not None and spec.mla.rope_interleave == interleave
    prec = Precision(weights="bf16", activations="fp16", kv_cache="fp16")
    compiled = compile_generation(spec, tiny_chip(sram_bytes), chips=chips, batch=len(PROMPT),
                                  prompt_len=len(PROMPT[0]), max_new_tokens=NEW_TOKENS, precision=prec)
    store = WeightStore.open(tmp_path, spec)
    assert unused_weights(compiled, store) == []
    if chips:
        assert compiled.plan.tp > 1
    gen = execute_generation(compiled, store, np.array(PROMPT))
    hf_tokens, hf_logits = hf_greedy(model, PROMPT, NEW_TOKENS)
    assert greedy_margins(hf_logits).min() > MIN_MARGIN, "test model too flat to discriminate"
    assert len(set(hf_tokens.reshape(-1).tolist())) > 3, "greedy output collapsed"
    diffs = [np.abs(a - b).max() for a, b in zip(gen.logits, hf_logits, strict=True)]
    print(f"max |logit diff| vs transformers: {max(diffs):.2e}")
    assert max(diffs) < LOGIT_ATOL, diffs
    assert np.array_equal(gen.tokens, hf_tokens)


@pytest.mark.parametrize("family", ["mixtral", "deepseek_v3"])
def test_reference_forward_matches_transformers_at_every_position(tmp_path, family):
    """The plain reference forward (used by ``twinfer serve``) on MoE and MLA models, prefill then decode."""
    torch = pytest.importorskip("torch")
    model = make_tiny_mixtral(tmp_path) if family == "mixtral" else make_tiny_deepseek_v3(tmp_path)
    spec = checkpoint_spec(tmp_path)
    ref = ReferenceModel(spec, WeightStore.open(tmp_path, spec), dtype="bf16")
    ours = ref.forward(np.array(PROMPT))
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(PROMPT)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=LOGIT_ATOL)
    fresh = ReferenceModel(spec, ref.store, dtype="bf16")  # empty cache: prefill, then decode steps
    gen = greedy_generate(lambda ids: fresh.forward(ids)[:, -1], np.array(PROMPT), NEW_TOKENS)
    hf_tokens, hf_logits = hf_greedy(model, PROMPT, NEW_TOKENS)
    assert max(np.abs(a - b).max() for a, b in zip(gen.logits, hf_logits, strict=True)) < LOGIT_ATOL
    assert np.array_equal(gen.tokens, hf_tokens)


#: YaRN as DeepSeek-V3 ships it (mscale, mscale_all_dim), shrunk to a tiny context; mscale_all_dim != mscale so
#: both the softmax scale and the cos/sin attention factor differ from 1.
DEEPSEEK_YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 32,
                 "beta_fast": 8.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 0.8}


def test_executor_on_deepseek_v3_with_yarn_rope_matches_transformers(tmp_path):
    model = make_tiny_deepseek_v3(tmp_path, rope_parameters=DEEPSEEK_YARN)
    spec = checkpoint_spec(tmp_path)
    assert dict(spec.rope_scaling)["rope_type"] == "yarn"
    prec = Precision(weights="bf16", activations="fp16", kv_cache="fp16")
    compiled = compile_generation(spec, tiny_chip(600_000), chips=None, batch=len(PROMPT),
                                  prompt_len=len(PROMPT[0]), max_new_tokens=NEW_TOKENS, precision=prec)
    gen = execute_generation(compiled, WeightStore.open(tmp_path, spec), np.array(PROMPT))
    hf_tokens, hf_logits = hf_greedy(model, PROMPT, NEW_TOKENS)
    assert greedy_margins(hf_logits).min() > MIN_MARGIN
    assert max(np.abs(a - b).max() for a, b in zip(gen.logits, hf_logits, strict=True)) < LOGIT_ATOL
    assert np.array_equal(gen.tokens, hf_tokens)
