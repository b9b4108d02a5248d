"""Numpy definitions of the LPU program's semantic ops: the living definition of each op.

The executor runs compiled programs by calling these functions, and the plain
reference forward is built from them too, so one set of numerics backs both.
Activations are fp32. Weights are held in a storage dtype (fp32, bf16, fp16,
int8 or fp8 e4m3) as a :class:`QuantWeight`; matmuls widen them and
accumulate in fp32, applying per-output-channel scales after accumulation as
an int8/fp8 MXM with fp32 accumulators would (Abts et al., ISCA 2020, MXM
"int8 or fp16 inputs, int32 or fp32 accumulation").

Rounding is emulated bit-exactly: bf16 and fp8 e4m3 round to nearest, ties to
even, like PyTorch's ``.to(torch.bfloat16)`` / ``.to(torch.float8_e4m3fn)``.
Shapes in comments: T tokens, H query heads, K KV heads, D head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twinfer.errors import ConfigError

#: Storage dtypes a weight may have in a program.
WEIGHT_DTYPES = ("fp32", "bf16", "fp16", "int8", "fp8")

# fp8 e4m3 "fn" format (OCP 8-bit floating point spec v1.0, 2023; PyTorch float8_e4m3fn):
# 4 exponent bits with bias 7, 3 mantissa bits, no infinities, largest finite value 448,
# smallest normal 2**-6, subnormal spacing 2**-9.
FP8_E4M3_MAX = 448.0
_FP8_MIN_NORMAL_EXP = -6
_FP8_MANTISSA_BITS = 3
#: Largest int8 code used by symmetric quantisation (-127..127, keeping the range symmetric).
INT8_MAX = 127.0


# ---- number formats -----------------------------------------------------------------
def bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round fp32 values to bf16 (nearest, ties to even) and return the 16-bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    # Add 0x7FFF plus the lowest kept bit, then truncate: round-to-nearest-even on bit 16.
    rounded = (u + (np.uint32(0x7FFF) + ((u >> 16) & 1))) >> 16
    rounded = np.where(nan, (u >> 16) | 0x0040, rounded)  # keep NaNs quiet NaNs
    return rounded.astype(np.uint16)


def bf16_to_fp32(bits: np.ndarray) -> np.ndarray:
    """Widen 16-bit bf16 patterns to fp32 values (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(x: np.ndarray) -> np.ndarray:
    """fp32 values rounded to the nearest bf16 value, returned as fp32."""
    return bf16_to_fp32(bf16_bits(x))


def round_fp8_e4m3(x: np.ndarray) -> np.ndarray:
    """fp32 values rounded to the nearest fp8 e4m3 value (ties to even), saturating at +-448.

    Saturation (rather than NaN on overflow) is what quantisers want; values
    inside the range round exactly as ``torch.float8_e4m3fn`` does.
    """
    x = np.asarray(x, dtype=np.float32)
    _, exp = np.frexp(x)  # x = m * 2**exp with 0.5 <= |m| < 1, so floor(log2|x|) = exp - 1
    exp = np.maximum(exp.astype(np.int32) - 1, _FP8_MIN_NORMAL_EXP)
    quantum = np.ldexp(np.float32(1.0), exp - _FP8_MANTISSA_BITS).astype(np.float32)
    # Division and multiplication by a power of two are exact; np.rint rounds half to even.
    out = (np.rint(x / quantum) * quantum).astype(np.float32)
    return np.clip(out, -FP8_E4M3_MAX, FP8_E4M3_MAX)


def _fp8_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp = (codes >> 3) & 0xF
    man = codes & 0x7
    normal = (1.0 + man / 8.0) * np.exp2(exp - 7.0)
    subnormal = (man / 8.0) * np.exp2(-6.0)
    value = sign * np.where(exp == 0, subnormal, normal)
    value[(codes & 0x7F) == 0x7F] = np.nan  # S.1111.111 is NaN in e4m3fn
    return value.astype(np.float32)


#: fp8 e4m3 code (0..255) -> fp32 value.
FP8_E4M3_VALUES = _fp8_table()


def fp8_e4m3_codes(x: np.ndarray) -> np.ndarray:
    """Encode fp32 values as fp8 e4m3 byte codes (rounded to nearest even, saturating)."""
    v = round_fp8_e4m3(x)
    finite = FP8_E4M3_VALUES[:0x7F]  # the 127 non-negative finite codes, ascending
    mag = np.searchsorted(finite, np.abs(v)).astype(np.uint8)  # exact match after rounding
    return np.where(np.signbit(v), mag | np.uint8(0x80), mag).astype(np.uint8)


def fp8_e4m3_to_fp32(codes: np.ndarray) -> np.ndarray:
    """Decode fp8 e4m3 byte codes to fp32 values."""
    return FP8_E4M3_VALUES[np.asarray(codes, dtype=np.uint8)]


# ---- weights ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class QuantWeight:
    """A weight matrix [out_features, in_features] in its storage dtype.

    ``data`` holds the stored elements (fp32; bf16 as uint16 bit patterns;
    fp16; int8; fp8 as uint8 codes). ``scale_per_row`` holds fp32 per-output-
    channel scales for int8 and fp8, and is None otherwise.
    """

    dtype: str
    data: np.ndarray
    scale_per_row: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(out_features, in_features)."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Bytes of storage, scales included."""
        extra = 0 if self.scale_per_row is None else self.scale_per_row.nbytes
        return int(self.data.nbytes + extra)

    def unscaled_fp32(self) -> np.ndarray:
        """Stored elements widened to fp32, before the per-row scale."""
        if self.dtype == "bf16":
            return bf16_to_fp32(self.data)
        if self.dtype == "fp8":
            return fp8_e4m3_to_fp32(self.data)
        return np.asarray(self.data, dtype=np.float32)  # no copy when already fp32

    def dequantize(self) -> np.ndarray:
        """The fp32 values this weight stands for (scale applied)."""
        w = self.unscaled_fp32()
        if self.scale_per_row is not None:
            w = w * self.scale_per_row[:, None]
        return w

    def widened(self) -> QuantWeight:
        """The same weight with its elements held as fp32 (scales kept): equal values, faster matmuls."""
        if self.dtype == "fp32":
            return self
        data = np.ascontiguousarray(self.unscaled_fp32())
        return QuantWeight(dtype="fp32", data=data, scale_per_row=self.scale_per_row)

    def slice(self, rows: tuple[int, int], cols: tuple[int, int]) -> QuantWeight:
        """The shard W[r0:r1, c0:c1] (scales follow their rows)."""
        data = self.data[rows[0] : rows[1], cols[0] : cols[1]]
        scale = None if self.scale_per_row is None else self.scale_per_row[rows[0] : rows[1]]
        return QuantWeight(dtype=self.dtype, data=data, scale_per_row=scale)


def quantize(w: np.ndarray, dtype: str) -> QuantWeight:
    """Store an fp32 matrix [out, in] in ``dtype``.

    int8 and fp8 use symmetric per-output-channel scales: scale = max|row| / 127
    (int8) or / 448 (fp8 e4m3 max), the usual weight-only scheme. A zero row
    gets scale 1 so it stays exactly zero.
    """
    w = np.asarray(w, dtype=np.float32)
    if dtype == "fp32":
        return QuantWeight(dtype=dtype, data=np.ascontiguousarray(w))
    if dtype == "bf16":
        return QuantWeight(dtype=dtype, data=bf16_bits(w))
    if dtype == "fp16":
        return QuantWeight(dtype=dtype, data=w.astype(np.float16))
    if dtype in ("int8", "fp8"):
        top = INT8_MAX if dtype == "int8" else FP8_E4M3_MAX
        amax = np.max(np.abs(w), axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
        scale = np.where(amax > 0, amax / np.float32(top), np.float32(1.0)).astype(np.float32)
        scaled = w / scale[:, None]
        if dtype == "int8":
            data = np.clip(np.rint(scaled), -INT8_MAX, INT8_MAX).astype(np.int8)
        else:
            data = fp8_e4m3_codes(scaled)
        return QuantWeight(dtype=dtype, data=data, scale_per_row=scale)
    raise ConfigError(f"unsupported weight dtype {dtype!r}; use one of: {', '.join(WEIGHT_DTYPES)}")


# ---- semantic ops -------------------------------------------------------------------
def embed(token_ids: np.ndarray, table: QuantWeight) -> np.ndarray:
    """Rows of the embedding table for each token id: [T] -> [T, hidden]."""
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    rows = QuantWeight(
        dtype=table.dtype,
        data=table.data[ids],
        scale_per_row=None if table.scale_per_row is None else table.scale_per_row[ids],
    )
    return rows.dequantize()


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """Root-mean-square norm over the last axis, times a learned gain (Llama's RMSNorm)."""
    x = np.asarray(x, dtype=np.float32)
    var = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(var + np.float32(eps))).astype(np.float32, copy=False) * weight.astype(
        np.float32, copy=False
    )


def matmul(x: np.ndarray, w: QuantWeight, bias: np.ndarray | None = None) -> np.ndarray:
    """x [T, in] @ W[out, in].T -> [T, out], fp32 accumulation, per-row scale after it."""
    y = np.asarray(x, dtype=np.float32) @ w.unscaled_fp32().T
    if w.scale_per_row is not None:
        y = y * w.scale_per_row
    if bias is not None:
        y = y + bias.astype(np.float32, copy=False)
    return y.astype(np.float32, copy=False)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise sum (residuals; partial products of a split matmul)."""
    return (np.asarray(a, np.float32) + np.asarray(b, np.float32)).astype(np.float32, copy=False)


def concat(parts: list[np.ndarray], axis: int) -> np.ndarray:
    """Concatenate shards along ``axis``."""
    return np.concatenate(parts, axis=axis)


def split(x: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """The slice [start:stop] of ``x`` along ``axis``."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def silu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """silu(gate) * up, the SwiGLU activation; sigmoid written with tanh so it never overflows."""
    g = np.asarray(gate, dtype=np.float32)
    sigmoid = np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * g))
    return (g * sigmoid * up).astype(np.float32, copy=False)


def argmax(logits: np.ndarray) -> np.ndarray:
    """Greedy token id per row (first index among ties, like torch.argmax)."""
    return np.argmax(logits, axis=-1).astype(np.int64)


# ---- rotary position embedding -------------------------------------------------------
def rope_inv_freq(head_dim: int, theta: float, rope_scaling: dict | None = None) -> np.ndarray:
    """Inverse frequencies [D/2] of rotary embedding, with optional Llama-3.1 / linear scaling.

    Default: 1 / theta**(2i/D) (Su et al., RoFormer, 2021). "llama3": the
    wavelength-banded rescaling of Llama 3.1 (Meta, llama-models
    ``apply_scaling``; HF ``_compute_llama3_parameters``). "linear": divide by factor.
    """
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
    inv = inv.astype(np.float32)
    kind = (rope_scaling or {}).get("rope_type") or (rope_scaling or {}).get("type") or "default"
    if kind == "default":
        return inv
    factor = float(rope_scaling["factor"])  # type: ignore[index]
    if kind == "linear":
        return (inv / factor).astype(np.float32)
    if kind == "llama3":
        low = float(rope_scaling["low_freq_factor"])  # type: ignore[index]
        high = float(rope_scaling["high_freq_factor"])  # type: ignore[index]
        old_len = float(rope_scaling["original_max_position_embeddings"])  # type: ignore[index]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old_len / low, inv / factor, inv)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        return np.where(medium, smoothed, scaled).astype(np.float32)
    if kind == "yarn":
        return _yarn_inv_freq(head_dim, theta, rope_scaling)  # type: ignore[arg-type]
    raise ConfigError(
        f"rope_scaling type {kind!r} is not supported by the executor; "
        "supported: default, linear, llama3, yarn"
    )


def _yarn_inv_freq(head_dim: int, theta: float, scaling: dict) -> np.ndarray:
    """YaRN (Peng et al., 2023; HF ``_compute_yarn_parameters``): interpolate low frequencies by ``factor``,
    keep high ones, with a linear ramp between the dims that rotate ``beta_fast`` and ``beta_slow`` times
    over the original context."""
    missing = [k for k in ("factor", "original_max_position_embeddings") if not scaling.get(k)]
    if missing:
        raise ConfigError(f"yarn rope_scaling needs {' and '.join(missing)} (HF config keys); add them to config.json")
    factor = float(scaling["factor"])
    old_len = float(scaling["original_max_position_embeddings"])
    beta_fast, beta_slow = float(scaling.get("beta_fast") or 32), float(scaling.get("beta_slow") or 1)

    def correction_dim(rotations: float) -> float:
        return head_dim * math.log(old_len / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # as HF: avoid a zero-width ramp
    ramp = np.clip((np.arange(head_dim // 2, dtype=np.float32) - low) / (high - low), 0, 1).astype(np.float32)
    pos = (np.float32(theta) ** (np.arange(0, head_dim, 2).astype(np.float32) / np.float32(head_dim)))
    extrapolate = (1.0 - ramp).astype(np.float32)
    inv = (1.0 / (factor * pos)) * (1 - extrapolate) + (1.0 / pos) * extrapolate
    return inv.astype(np.float32)


def rope_attention_factor(rope_scaling: dict | None) -> float:
    """The factor YaRN multiplies cos and sin by (1 for other rope types), as HF's rotary embeddings do.

    ``attention_factor`` when given, else 0.1 ln(factor) + 1, or with ``mscale`` and ``mscale_all_dim`` the
    ratio of the two such terms (DeepSeek-V3: 1).
    """
    s = rope_scaling or {}
    if (s.get("rope_type") or s.get("type")) != "yarn":
        return 1.0
    if s.get("attention_factor") is not None:
        return float(s["attention_factor"])
    factor = float(s["factor"])

    def mscale(m: float) -> float:
        return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0

    if s.get("mscale") and s.get("mscale_all_dim"):
        return mscale(float(s["mscale"])) / mscale(float(s["mscale_all_dim"]))
    return mscale(1.0)


def rope(
    x: np.ndarray, positions: np.ndarray, heads: int, head_dim: int, inv_freq: np.ndarray
) -> np.ndarray:
    """Rotate each head of x [T, heads*D] by its token's position (HF "rotate_half" layout).

    Pairs are (i, i + D/2), as in HF Llama: out = x*cos + rotate_half(x)*sin.
    """
    t = x.shape[0]
    xh = np.asarray(x, np.float32).reshape(t, heads, head_dim)
    freqs = np.asarray(positions, np.float32).reshape(t, 1) * inv_freq.reshape(1, -1)  # [T, D/2]
    cos = np.cos(freqs)[:, None, :]
    sin = np.sin(freqs)[:, None, :]
    half = head_dim // 2
    x1, x2 = xh[..., :half], xh[..., half:]
    out = np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.reshape(t, heads * head_dim).astype(np.float32, copy=False)


# ---- attention ----------------------------------------------------------------------
def attention(
    q: np.ndarray,
    k_all: np.ndarray,
    v_all: np.ndarray,
    *,
    heads: int,
    kv_heads: int,
    head_dim: int,
    past_len: int,
) -> np.ndarray:
    """Causal grouped-query attention of new queries over cached + new keys/values.

    q: [B, T, H*D] for T new tokens per sequence at positions past_len..past_len+T-1;
    k_all, v_all: [B, K, past_len+T, D] (cache with the new keys appended).
    Query head h uses KV head h // (H/K), as HF ``repeat_kv``. Scores are
    scaled by D**-0.5 and soft-maxed in fp32. Returns [B, T, H*D].
    """
    b, t, _ = q.shape
    group = heads // kv_heads
    s = k_all.shape[2]
    qh = q.reshape(b, t, kv_heads, group, head_dim).transpose(0, 2, 3, 1, 4)  # [B, K, G, T, D]
    scores = qh @ k_all[:, :, None].swapaxes(-1, -2)  # [B, K, G, T, S]
    scores *= np.float32(1.0 / math.sqrt(head_dim))
    q_pos = past_len + np.arange(t)[:, None]
    mask = np.arange(s)[None, :] > q_pos  # key after query: masked
    scores = np.where(mask, np.float32(-np.inf), scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    out = p.astype(np.float32) @ v_all[:, :, None]  # [B, K, G, T, D]
    return (
        out.transpose(0, 3, 1, 2, 4).reshape(b, t, heads * head_dim).astype(np.float32, copy=False)
    )
