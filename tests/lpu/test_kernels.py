"""Kernels against PyTorch / transformers and hand-counted number-format facts."""

from __future__ import annotations

import numpy as np
import pytest

from twinfer.errors import ConfigError
from twinfer.lpu import kernels as K


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _torch():
    return pytest.importorskip("torch")


# ---- number formats -------------------------------------------------------------------
def test_bf16_rounding_matches_torch_bit_for_bit(rng):
    torch = _torch()
    x = (rng.standard_normal(20000) * np.exp2(rng.integers(-20, 20, 20000))).astype(np.float32)
    # Exact ties: a finite bf16 value plus half an ulp (bit 15 set, lower bits clear).
    # NaN payloads are left out: torch canonicalises them, we keep them quiet NaNs.
    ties = ((rng.integers(0, 0x7F80, 2000, dtype=np.uint32) << 16) | 0x8000).astype(np.uint32)
    x = np.concatenate([x, ties.view(np.float32), np.float32([0.0, -0.0, 3.0e38, -1e-40])])
    ours = K.bf16_bits(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(K.round_bf16(x), torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_bf16_ties_round_to_even_by_hand():
    # 1 + 2**-8 lies halfway between bf16 neighbours 1.0 and 1 + 2**-7: ties go to even (1.0).
    # 1 + 3 * 2**-8 lies halfway between 1 + 2**-7 (odd mantissa) and 1 + 2**-6: goes up.
    x = np.float32([1 + 2**-8, 1 + 3 * 2**-8])
    assert K.round_bf16(x).tolist() == [1.0, 1 + 2**-6]


def test_fp8_table_hand_values():
    v = K.FP8_E4M3_VALUES
    assert v[0x7E] == 448.0  # S.1111.110: 1.75 * 2**8
    assert v[0x08] == 2.0**-6  # smallest normal
    assert v[0x01] == 2.0**-9  # smallest subnormal
    assert v[0x38] == 1.0  # exponent 7 = bias
    assert v[0xB8] == -1.0
    assert np.isnan(v[0x7F]) and np.isnan(v[0xFF])


def test_fp8_rounding_matches_torch_in_range(rng):
    torch = _torch()
    x = (rng.standard_normal(20000) * np.exp2(rng.integers(-12, 8, 20000))).astype(np.float32)
    x = np.clip(x, -448, 448)
    # Exact midpoints between neighbouring fp8 values exercise ties-to-even.
    finite = K.FP8_E4M3_VALUES[:0x7F]
    mids = ((finite[:-1] + finite[1:]) / 2).astype(np.float32)
    x = np.concatenate([x, mids, -mids])
    theirs = torch.from_numpy(x).to(torch.float8_e4m3fn)
    assert np.array_equal(K.round_fp8_e4m3(x), theirs.float().numpy())
    assert np.array_equal(K.fp8_e4m3_codes(x), theirs.view(torch.uint8).numpy())


def test_fp8_saturates_at_448():
    assert K.round_fp8_e4m3(np.float32([1000.0, -460.0, 449.0])).tolist() == [448.0, -448.0, 448.0]


# ---- quantisation -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_quantize_per_output_channel_scales(rng, dtype):
    w = rng.standard_normal((6, 40)).astype(np.float32) * np.float32(
        [[0.01], [1], [100], [3], [0.5], [7]]
    )
    q = K.quantize(w, dtype)
    top = 127.0 if dtype == "int8" else 448.0
    np.testing.assert_allclose(q.scale_per_row, np.abs(w).max(axis=1) / top, rtol=1e-6)
    deq = q.dequantize()
    # The largest |w| of each row is represented exactly (up to the scale's own rounding).
    rows = np.arange(6)
    cols = np.abs(w).argmax(axis=1)
    np.testing.assert_allclose(deq[rows, cols], w[rows, cols], rtol=1e-6)
    # Relative error bounds: int8 half a step of max/127; fp8 half an ulp with 3 mantissa bits.
    if dtype == "int8":
        assert np.all(np.abs(deq - w) <= q.scale_per_row[:, None] * 0.5 * (1 + 1e-5))
    else:
        big = np.abs(w) >= q.scale_per_row[:, None] * 2**-6
        assert np.all(np.abs(deq - w)[big] <= np.abs(w)[big] * 2**-4 * (1 + 1e-5))


def test_quantize_zero_row_stays_zero():
    q = K.quantize(np.zeros((2, 3), np.float32), "int8")
    assert np.array_equal(q.dequantize(), np.zeros((2, 3)))


def test_quantize_unknown_dtype():
    with pytest.raises(ConfigError, match="int4"):
        K.quantize(np.zeros((1, 1), np.float32), "int4")


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16", "int8", "fp8"])
def test_matmul_matches_torch_linear_on_dequantized_weight(rng, dtype):
    torch = _torch()
    x = rng.standard_normal((5, 48)).astype(np.float32)
    w = rng.standard_normal((24, 48)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    q = K.quantize(w, dtype)
    ours = K.matmul(x, q, b)
    theirs = torch.nn.functional.linear(
        torch.from_numpy(x), torch.from_numpy(q.dequantize()), torch.from_numpy(b)
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-4)


def test_matmul_shards_sum_to_whole(rng):
    x = rng.standard_normal((3, 32)).astype(np.float32)
    q = K.quantize(rng.standard_normal((16, 32)).astype(np.float32), "int8")
    whole = K.matmul(x, q)
    cols = K.add(
        K.matmul(x[:, :20], q.slice((0, 16), (0, 20))),
        K.matmul(x[:, 20:], q.slice((0, 16), (20, 32))),
    )
    rows = K.concat(
        [K.matmul(x, q.slice((0, 6), (0, 32))), K.matmul(x, q.slice((6, 16), (0, 32)))], axis=1
    )
    np.testing.assert_allclose(cols, whole, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rows, whole, rtol=1e-6, atol=1e-6)


# ---- elementwise and norms ----------------------------------------------------------
def test_rmsnorm_matches_transformers(rng):
    torch = _torch()
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    x = rng.standard_normal((4, 32)).astype(np.float32) * 3
    g = rng.standard_normal(32).astype(np.float32)
    norm = llama.LlamaRMSNorm(32, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.from_numpy(g))
        theirs = norm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(K.rmsnorm(x, g, 1e-6), theirs, rtol=1e-5, atol=1e-6)


def test_silu_mul_matches_torch_including_extremes(rng):
    torch = _torch()
    g = np.concatenate([rng.standard_normal(100) * 5, [-200.0, 200.0, 0.0]]).astype(np.float32)
    u = rng.standard_normal(103).astype(np.float32)
    theirs = (torch.nn.functional.silu(torch.from_numpy(g)) * torch.from_numpy(u)).numpy()
    np.testing.assert_allclose(K.silu_mul(g, u), theirs, rtol=1e-5, atol=1e-6)


def test_argmax_first_of_ties():
    assert K.argmax(np.float32([[1, 3, 3], [5, 0, 5]])).tolist() == [1, 0]


def test_split_and_concat_roundtrip(rng):
    x = rng.standard_normal((3, 10)).astype(np.float32)
    parts = [K.split(x, 1, 0, 4), K.split(x, 1, 4, 10)]
    assert np.array_equal(K.concat(parts, 1), x)


# ---- rope -------------------------------------------------------------------------
_LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


@pytest.mark.parametrize("scaling", [None, _LLAMA3, {"rope_type": "linear", "factor": 4.0}])
def test_rope_matches_transformers(rng, scaling):
    torch = _torch()
    transformers = pytest.importorskip("transformers")
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    heads, d, t = 3, 16, 7
    params = (
        {"rope_type": "default", "rope_theta": 5000.0}
        if scaling is None
        else {**scaling, "rope_theta": 5000.0}
    )
    cfg = transformers.LlamaConfig(
        hidden_size=heads * d,
        num_attention_heads=heads,
        max_position_embeddings=4096,
        rope_parameters=params,
    )
    emb = llama.LlamaRotaryEmbedding(cfg)
    x = rng.standard_normal((t, heads * d)).astype(np.float32)
    pos = np.array([0, 1, 2, 40, 300, 1000, 3000])
    xt = torch.from_numpy(x).reshape(1, t, heads, d).transpose(1, 2)  # [B, H, T, D]
    cos, sin = emb(xt, torch.from_numpy(pos)[None])
    theirs, _ = llama.apply_rotary_pos_emb(xt, xt, cos, sin)
    theirs = theirs.transpose(1, 2).reshape(t, heads * d).numpy()
    inv = K.rope_inv_freq(d, 5000.0, scaling)
    np.testing.assert_allclose(inv, emb.inv_freq.numpy(), rtol=1e-6)
    np.testing.assert_allclose(K.rope(x, pos, heads, d, inv), theirs, rtol=1e-4, atol=1e-4)


def test_rope_llama3_changes_only_low_frequencies():
    plain = K.rope_inv_freq(64, 500000.0)
    scaled = K.rope_inv_freq(64, 500000.0, {**_LLAMA3, "original_max_position_embeddings": 8192})
    assert scaled[0] == plain[0]  # highest frequency: wavelength 2*pi < 8192/4, untouched
    assert scaled[-1] == pytest.approx(plain[-1] / 8.0)  # lowest: divided by factor


def test_rope_unknown_scaling():
    with pytest.raises(ConfigError, match="dynamic"):
        K.rope_inv_freq(16, 1e4, {"rope_type": "dynamic", "factor": 2.0})
    with pytest.raises(ConfigError, match="original_max_position_embeddings"):
        K.rope_inv_freq(16, 1e4, {"rope_type": "yarn", "factor": 2.0})


# ---- attention -----------------------------------------------------------------------
def _ref_attention(torch, q, k, v, heads, kv_heads, d):
    # q [B, T, H*D], k/v [B, T, K*D] -> causal SDPA with repeated KV heads.
    b, t, _ = q.shape
    qt = torch.from_numpy(q).reshape(b, t, heads, d).transpose(1, 2)
    kt = (
        torch.from_numpy(k)
        .reshape(b, t, kv_heads, d)
        .transpose(1, 2)
        .repeat_interleave(heads // kv_heads, 1)
    )
    vt = (
        torch.from_numpy(v)
        .reshape(b, t, kv_heads, d)
        .transpose(1, 2)
        .repeat_interleave(heads // kv_heads, 1)
    )
    out = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    return out.transpose(1, 2).reshape(b, t, heads * d).numpy()


def test_attention_gqa_prefill_and_cached_decode_match_torch(rng):
    torch = _torch()
    b, t, h, kvh, d = 2, 6, 4, 2, 8
    q = rng.standard_normal((b, t, h * d)).astype(np.float32)
    k = rng.standard_normal((b, t, kvh * d)).astype(np.float32)
    v = rng.standard_normal((b, t, kvh * d)).astype(np.float32)
    theirs = _ref_attention(torch, q, k, v, h, kvh, d)

    def heads_first(a):  # [B, T, K*D] -> [B, K, T, D]
        return a.reshape(b, a.shape[1], kvh, d).transpose(0, 2, 1, 3)

    whole = K.attention(
        q, heads_first(k), heads_first(v), heads=h, kv_heads=kvh, head_dim=d, past_len=0
    )
    np.testing.assert_allclose(whole, theirs, rtol=1e-5, atol=1e-5)
    # Prefill 4 tokens, then decode the last 2 one at a time over the growing cache.
    outs = [
        K.attention(
            q[:, :4],
            heads_first(k[:, :4]),
            heads_first(v[:, :4]),
            heads=h,
            kv_heads=kvh,
            head_dim=d,
            past_len=0,
        )
    ]
    for i in (4, 5):
        outs.append(
            K.attention(
                q[:, i : i + 1],
                heads_first(k[:, : i + 1]),
                heads_first(v[:, : i + 1]),
                heads=h,
                kv_heads=kvh,
                head_dim=d,
                past_len=i,
            )
        )
    np.testing.assert_allclose(np.concatenate(outs, axis=1), theirs, rtol=1e-5, atol=1e-5)
