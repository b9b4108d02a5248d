"""Pass 1, lower: a Llama/Mistral/Qwen2/Mixtral/DeepSeek-V3 forward step to semantic chip ops on one logical chip.

The result is the whole model as if on one unbounded chip (chip 0): every
matmul is full-size, every tensor replicated nowhere. Each instruction
carries a ``role`` (q, k, v, o, gate, up, down, attn_norm, ...) and the
``block`` it belongs to (0 = embedding, 1..L = layers, L+1 = head), which is
what the partition pass needs to split it over chips. ``shape`` is the
``(rows, features)`` of the instruction's output, from which the chip model
costs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinfer.lpu.ir import Instr, Program
from twinfer.lpu.passes.lower_moe import lower_mla_attention, lower_moe_ffn
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec


class Emitter:
    """Appends instructions with consecutive indices (program order is emission order).

    ``cost`` (optional) maps a new instruction to its cycle count, filled on emission.
    """

    def __init__(self, cost: Callable[[Instr], int] | None = None) -> None:
        self.instrs: list[Instr] = []
        self.cost = cost

    def emit(self, op: str, chip: int, unit: str, inputs: tuple[str, ...], outputs: tuple[str, ...],
             cycles: int = -1, **attrs: Any) -> Instr:
        """Append one instruction and return it."""
        ins = Instr(index=len(self.instrs), op=op, chip=chip, unit=unit, inputs=inputs, outputs=outputs,
                    attrs=tuple(attrs.items()), cycles=cycles)
        if self.cost is not None:
            ins = ins.costed(self.cost(ins))
        self.instrs.append(ins)
        return ins


def rope_scaling_attr(model: ModelSpec) -> tuple | None:
    """The model's rope_scaling as a hashable tuple (None when absent)."""
    return tuple(model.rope_scaling) if model.rope_scaling else None


def chunk_bounds(phase: str, batch: int, seq_len: int, prefill_chunk: int | None,
                 verify_tokens: int = 1) -> list[tuple[int, int]]:
    """Position ranges the prompt is cut into (one range: no chunking; only batch-1 prefill is chunked).

    A verify step's one range is its ``verify_tokens`` new positions at the end of the context.
    """
    if phase == "prefill" and prefill_chunk and batch == 1 and seq_len > prefill_chunk:
        return [(a, min(a + prefill_chunk, seq_len)) for a in range(0, seq_len, prefill_chunk)]
    if phase == "verify":
        return [(seq_len - verify_tokens, seq_len)]
    return [(0, seq_len if phase == "prefill" else 1)]


def step_tokens(phase: str, batch: int, seq_len: int, verify_tokens: int = 1) -> int:
    """Token rows that flow through the projections in one step of ``phase``."""
    return batch * (seq_len if phase == "prefill" else verify_tokens if phase == "verify" else 1)


def lower(model: ModelSpec, *, phase: str, batch: int, seq_len: int, precision: Precision,
          prefill_chunk: int | None = None, verify_tokens: int = 1) -> Program:
    """The unpartitioned program of one prefill, decode or verify step of ``model``.

    With ``prefill_chunk`` (batch-1 prefill only) the prompt is cut into
    chunks of that many positions that flow through the layers one after
    another, so the schedule pipelines them across stages; ``rope`` and
    ``attention`` of a chunk carry ``pos_offset`` (its first position
    within the step).

    A *verify* step (speculative decoding) checks ``verify_tokens`` = k + 1
    positions per sequence: its last sampled token and k drafts, at the end
    of a context of ``seq_len`` tokens (``seq_len - verify_tokens`` cached).
    It is a short prefill chunk at ``pos_offset = seq_len - verify_tokens``
    whose logits are computed at every row, since each position's token is
    checked against its draft.
    """
    from twinfer.errors import ConfigError

    if phase not in ("prefill", "decode", "verify"):
        raise ConfigError(f"phase must be 'prefill', 'decode' or 'verify', got {phase!r}")
    if batch < 1 or seq_len < 1:
        raise ConfigError(f"batch and sequence length must be >= 1, got batch={batch}, seq_len={seq_len}")
    if phase == "verify" and not 1 <= verify_tokens <= seq_len:
        raise ConfigError(f"a verify step checks 1 .. seq_len ({seq_len}) positions per sequence, "
                          f"got verify_tokens={verify_tokens}")
    tokens = step_tokens(phase, batch, seq_len, verify_tokens)
    h, wd = model.hidden_size, precision.weights
    bounds = chunk_bounds(phase, batch, seq_len, prefill_chunk, verify_tokens)
    chunked = len(bounds) > 1
    e = Emitter()
    e.emit("embed", 0, "MEM", ("token_ids",), ("x0",), weight="model.embed_tokens.weight", dtype=wd,
           cols=(0, h), vocab=model.vocab_size, role="embed", block=0, shape=(tokens, h))
    sfx = [f".c{k}" if chunked else "" for k in range(len(bounds))]
    if chunked:
        for k, (a, b) in enumerate(bounds):
            e.emit("split", 0, "SXM_W", ("x0",), ("x0" + sfx[k],), axis=0, start=a, stop=b, role="chunk",
                   block=0, shape=(b - a, h))
    # Chunk-major: a chunk runs through every layer before the next one starts, so a stage holds
    # one chunk's activations at a time, and chunk k's attention (program order) follows chunk k-1's,
    # whose keys and values it reads from the KV cache.
    for k, (a, z) in enumerate(bounds):
        rows = (z - a) * batch if phase != "decode" else batch
        for li in range(model.num_layers):
            _lower_layer(e, model, li, sfx[k], rows, a, wd)
    hb = model.num_layers + 1
    x = f"x{model.num_layers}{sfx[-1]}"
    last = bounds[-1][1] - bounds[-1][0]
    if phase == "prefill" and last > 1:
        e.emit("last_rows", 0, "SXM_W", (x,), ("xl",), batch=batch, seq_len=last, role="last_rows",
               block=hb, shape=(batch, h))
        x = "xl"
    head_rows = tokens if phase == "verify" else batch  # logits of every verified position, else the last
    e.emit("rmsnorm", 0, "VXM", (x,), ("xn",), weight="model.norm.weight", eps=model.rms_norm_eps,
           role="final_norm", block=hb, shape=(head_rows, h))
    head = "model.embed_tokens.weight" if model.tie_word_embeddings else "lm_head.weight"
    e.emit("matmul", 0, "MXM", ("xn",), ("logits",), weight=head, rows=(0, model.vocab_size), cols=(0, h),
           dtype=wd, bias=None, role="lm_head", block=hb, shape=(head_rows, model.vocab_size))
    meta = (("verify_tokens", verify_tokens),) if phase == "verify" else ()
    return Program(model=model.name, phase=phase, batch=batch, seq_len=seq_len, chips=1, instrs=tuple(e.instrs),
                   weight_dtype=wd, activation_dtype=precision.activations, meta=meta)


def _lower_layer(e: Emitter, model: ModelSpec, li: int, sfx: str, tokens: int, pos: int, wd: str) -> None:
    """One decoder layer over ``tokens`` rows whose first position is ``pos``; names end in ``sfx``."""
    h, inter = model.hidden_size, model.intermediate_size
    p, b, x = f"model.layers.{li}.", li + 1, f"x{li}{sfx}"

    def t(name: str) -> str:
        return f"L{li}.{name}{sfx}"

    def mm(role: str, src: str, dst: str, name: str, out_f: int, in_f: int) -> None:
        e.emit("matmul", 0, "MXM", (src,), (dst,), weight=p + name + ".weight", rows=(0, out_f),
               cols=(0, in_f), dtype=wd, bias=None, role=role, block=b, shape=(tokens, out_f))

    e.emit("rmsnorm", 0, "VXM", (x,), (t("n1"),), weight=p + "input_layernorm.weight",
           eps=model.rms_norm_eps, role="attn_norm", block=b, shape=(tokens, h))
    if model.mla is not None:
        lower_mla_attention(e, model, li, sfx, tokens, pos, wd)
    else:
        _lower_gqa_attention(e, model, li, sfx, tokens, pos, wd)
    e.emit("add", 0, "VXM", (x, t("o")), (t("r"),), role="residual", block=b, shape=(tokens, h))
    e.emit("rmsnorm", 0, "VXM", (t("r"),), (t("n2"),), weight=p + "post_attention_layernorm.weight",
           eps=model.rms_norm_eps, role="mlp_norm", block=b, shape=(tokens, h))
    if model.moe is not None and li >= model.moe.first_dense_layers:
        lower_moe_ffn(e, model, li, sfx, tokens, wd)
    else:
        mm("gate", t("n2"), t("g"), "mlp.gate_proj", inter, h)
        mm("up", t("n2"), t("u"), "mlp.up_proj", inter, h)
        e.emit("silu_mul", 0, "VXM", (t("g"), t("u")), (t("s"),), role="silu_mul", block=b,
               shape=(tokens, inter))
        mm("down", t("s"), t("d"), "mlp.down_proj", h, inter)
    e.emit("add", 0, "VXM", (t("r"), t("d")), (f"x{li + 1}{sfx}",), role="residual", block=b,
           shape=(tokens, h))


def _lower_gqa_attention(e: Emitter, model: ModelSpec, li: int, sfx: str, tokens: int, pos: int, wd: str) -> None:
    """Grouped-query attention from ``L{li}.n1`` to ``L{li}.o`` (q/k/v, rope, attention, o)."""
    h, hd = model.hidden_size, model.head_dim
    nh, nkv = model.num_attention_heads, model.num_kv_heads
    p, b = f"model.layers.{li}.", li + 1
    bias = model.qkv_bias

    def t(name: str) -> str:
        return f"L{li}.{name}{sfx}"

    def mm(role: str, src: str, dst: str, name: str, out_f: int, in_f: int, with_bias: bool = False) -> None:
        e.emit("matmul", 0, "MXM", (src,), (dst,), weight=p + name + ".weight", rows=(0, out_f),
               cols=(0, in_f), dtype=wd, bias=(p + name + ".bias") if with_bias else None,
               role=role, block=b, shape=(tokens, out_f))

    mm("q", t("n1"), t("q"), "self_attn.q_proj", nh * hd, h, bias)
    mm("k", t("n1"), t("k"), "self_attn.k_proj", nkv * hd, h, bias)
    mm("v", t("n1"), t("v"), "self_attn.v_proj", nkv * hd, h, bias)
    for src, heads in (("q", nh), ("k", nkv)):
        e.emit("rope", 0, "VXM", (t(src),), (t(src + "r"),), heads=heads, head_dim=hd,
               theta=model.rope_theta, rope_scaling=rope_scaling_attr(model), pos_offset=pos,
               role="rope_" + src, block=b, shape=(tokens, heads * hd))
    e.emit("attention", 0, "MXM", (t("qr"), t("kr"), t("v")), (t("a"),), layer=li, heads=nh,
           kv_heads=nkv, head_dim=hd, kv_head_offset=0, pos_offset=pos, role="attention", block=b,
           shape=(tokens, nh * hd))
    mm("o", t("a"), t("o"), "self_attn.o_proj", h, nh * hd)
