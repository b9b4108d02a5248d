"""Op-graph lowering against closed-form FLOP and byte counts."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError
from twinfer.models import StepShape, load_model
from twinfer.models.ops import Precision, expected_experts_touched, lower_step
from twinfer.models.step import causal_pairs


def _gemm_flops(graph) -> float:
    return sum(op.flops * op.repeat for op in graph.ops if op.kind == "gemm")


def test_causal_pairs_by_counting() -> None:
    # Count query-key pairs directly: query at position p sees p + 1 keys.
    for new, cached in [(1, 0), (5, 0), (3, 7), (128, 1000)]:
        counted = sum(cached + i + 1 for i in range(new))
        assert causal_pairs(new, cached) == counted


@pytest.mark.parametrize("name", ["llama-2-7b", "llama-3-70b", "qwen2.5-72b"])
def test_dense_gemm_flops_are_two_per_weight_per_token(name: str) -> None:
    # Kaplan et al. 2020: a forward pass costs 2 FLOPs per weight per token, excluding
    # embeddings. The LM head is applied once per sequence, so count it separately.
    spec = load_model(name)
    tokens = 64
    graph = lower_step(spec, StepShape.prefill([tokens]))
    body = spec.param_count() - spec.embedding_params() - spec.num_layers * 2 * spec.hidden_size - spec.hidden_size
    if spec.qkv_bias:
        body -= spec.num_layers * (spec.q_dim + 2 * spec.kv_dim)  # biases add, they do not multiply
    lm_head = 2 * spec.vocab_size * spec.hidden_size  # one output row
    assert _gemm_flops(graph) == pytest.approx(2 * body * tokens + lm_head, rel=1e-9)


def test_tensor_parallel_splits_gemm_flops_evenly() -> None:
    spec = load_model("llama-3-70b")
    shape = StepShape.decode([1024] * 8)
    one = lower_step(spec, shape, tp=1)
    eight = lower_step(spec, shape, tp=8)
    assert _gemm_flops(eight) * 8 == pytest.approx(_gemm_flops(one), rel=1e-9)


def test_tp_adds_two_all_reduces_per_layer_of_hidden_activations() -> None:
    spec = load_model("llama-3-70b")
    shape = StepShape.prefill([100, 28])
    graph = lower_step(spec, shape, tp=4)
    ar = [op for op in graph.ops if op.name == "all_reduce"]
    assert len(ar) == 1
    assert ar[0].repeat == 2 * spec.num_layers
    assert ar[0].message_bytes == 128 * spec.hidden_size * 2  # tokens x hidden x bf16
    assert ar[0].group_size == 4
    assert not [op for op in lower_step(spec, shape, tp=1).ops if op.name == "all_reduce"]


def test_decode_attention_reads_the_whole_kv_cache() -> None:
    spec = load_model("llama-3-70b")
    contexts = [100, 2000, 513]
    graph = lower_step(spec, StepShape.decode(contexts))
    attn = [op for op in graph.ops if op.name == "attention"]
    assert len(attn) == 1 and attn[0].phase == "decode"
    kv_read = sum(contexts) * spec.kv_bytes_per_token("bf16")
    q_read = len(contexts) * spec.q_dim * 2
    assert attn[0].bytes_read * attn[0].repeat == pytest.approx(kv_read + q_read * spec.num_layers)


def test_fp8_weights_halve_gemm_weight_bytes() -> None:
    spec = load_model("llama-3-8b")
    shape = StepShape.decode([10])
    bf16 = {op.name: op for op in lower_step(spec, shape).ops}
    fp8 = {op.name: op for op in lower_step(spec, shape, precision=Precision(weights="fp8")).ops}
    k, n = bf16["mlp_down_proj"].k, bf16["mlp_down_proj"].n
    assert bf16["mlp_down_proj"].bytes_read - fp8["mlp_down_proj"].bytes_read == pytest.approx(k * n * 1.0)
    assert fp8["mlp_down_proj"].dtype == "fp8"


def test_moe_active_flops_match_active_parameters() -> None:
    # One token uses exactly top-k experts, so its GEMM FLOPs are 2 x active body params.
    spec = load_model("mixtral-8x7b")
    graph = lower_step(spec, StepShape.decode([1]))
    body = spec.active_param_count() - spec.embedding_params() - spec.num_layers * 2 * spec.hidden_size - spec.hidden_size
    lm_head = 2 * spec.vocab_size * spec.hidden_size
    assert _gemm_flops(graph) == pytest.approx(2 * body + lm_head, rel=1e-9)


def test_expected_experts_touched_limits() -> None:
    assert expected_experts_touched(1, 8, 2) == pytest.approx(2.0)
    assert expected_experts_touched(10_000, 8, 2) == pytest.approx(8.0)
    # Two tokens, top-1 of 2 experts: expect 1.5 distinct experts (enumerate 4 cases).
    assert expected_experts_touched(2, 2, 1) == pytest.approx(1.5)


def test_bad_parallelism_is_a_clear_error() -> None:
    spec = load_model("llama-3-8b")
    with pytest.raises(ConfigError, match="does not divide"):
        lower_step(spec, StepShape.decode([1]), tp=3)
    with pytest.raises(ConfigError, match="at least one token"):
        lower_step(spec, StepShape())


def test_a_tp_that_does_not_divide_the_heads_suggests_only_divisors() -> None:
    import dataclasses

    import pytest

    from twinfer.errors import ConfigError
    from twinfer.models import load_model
    from twinfer.models.ops import _check_parallel

    spec = dataclasses.replace(load_model("llama-3-8b"), num_attention_heads=28, num_kv_heads=4)
    with pytest.raises(ConfigError) as info:
        _check_parallel(spec, 8, 1)
    assert "(1, 2, 4, 7, 14, 28)" in str(info.value)  # the divisors of 28, counted by hand; not 8


def test_sliding_window_shape_bounds_keys_per_query_and_sequence():
    """Window 4: a 10-token prompt has 55 causal pairs but at most 10 x 4 = 40 inside the window; two
    decodes at contexts 100 and 3 read at most 4 + 3 = 7 keys, bounded by the sum form 2 x 4 = 8."""
    from twinfer.models.ops import sliding_window_shape
    from twinfer.models.step import StepShape

    p = sliding_window_shape(StepShape.prefill([10]), 4)
    assert (p.prefill_attn_pairs, p.prefill_kv_tokens) == (40, 10)
    d = sliding_window_shape(StepShape.decode([100, 3]), 4)
    assert d.decode_context_tokens == 8 and d.decode_seqs == 2
