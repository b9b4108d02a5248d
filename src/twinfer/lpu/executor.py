"""Numeric execution of compiled LPU programs.

:class:`ProgramExecutor` runs a :class:`~twinfer.lpu.ir.Program` instruction
by instruction in schedule order, each chip in its own tensor namespace,
copying tensors only through ``send``/``recv`` pairs, and calling the op
definitions in :mod:`twinfer.lpu.kernels`. Its KV cache lives across
programs, so a generation is one prefill program followed by decode
programs. The plain reference forward it is checked against lives in
:mod:`twinfer.lpu.reference` (re-exported here for callers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinfer.lpu import kernels as K
from twinfer.lpu.executor_moe import MOE_HANDLERS, weight_keys
from twinfer.lpu.reference import (  # noqa: F401  (re-exported)
    Generation,
    KVCache,
    ReferenceModel,
    _heads_first,
    _InvFreqCache,
    _scaling_dict,
    greedy_generate,
)
from twinfer.lpu.weights import LM_HEAD_NAME, WeightStore
from twinfer.models.spec import ModelSpec


class ProgramError(RuntimeError):
    """A compiled program is inconsistent (a compiler bug, not a user mistake)."""


# ---- program executor -------------------------------------------------------------------
@dataclass(frozen=True)
class StepOutput:
    """What one program run produced: logits [B, vocab] and greedy tokens [B]."""

    logits: np.ndarray
    tokens: np.ndarray


class ProgramExecutor:
    """Runs compiled programs numerically, chip by chip, keeping the KV cache between them.

    Each chip has its own namespace of tensors; a tensor reaches another chip
    only through a ``send``/``recv`` pair. Weight shards are fetched from the
    store in the dtype the instruction names and widened to fp32 once
    (``keep_widened``), which changes speed, not values.

    By default activations stay fp32 (the program contract), so results match
    an fp32 reference tightly. ``round_activations=True`` instead stores every
    float tensor an instruction writes (and so the KV cache) in the program's
    ``activation_dtype`` (fp16 or bf16, rounded to nearest even), while each
    op still computes internally in fp32, as the chip's VXM and MXM
    accumulators do: the numerics of the chip as compiled.
    """

    def __init__(
        self, store: WeightStore, keep_widened: bool = True, round_activations: bool = False
    ) -> None:
        self.store = store
        self.round_activations = round_activations
        self.cache = KVCache()
        self.keep_widened = keep_widened
        self._weights: dict[tuple[Any, ...], K.QuantWeight] = {}
        self._inv_freq = _InvFreqCache()
        self._prepared: dict[int, tuple[Any, list[Any]]] = {}  # id(program) -> (program, steps)

    # -- weights --
    def _shard(
        self, name: str, rows: tuple[int, int], cols: tuple[int, int], dtype: str
    ) -> K.QuantWeight:
        key = (name, tuple(rows), tuple(cols), dtype)
        w = self._weights.get(key)
        if w is None:
            w = self.store.shard(name, rows, cols, dtype)
            if self.keep_widened:
                w = w.widened()  # same values; matmul then only scales after accumulation
            self._weights[key] = w
        return w

    # -- one program --
    def _prepare(self, program: Any) -> list[tuple[Any, ...]]:
        """Instrs in schedule order with handler, attrs dict, chip, inputs, output; once per program."""
        cached = self._prepared.get(id(program))
        if cached is not None and cached[0] is program:
            return cached[1]
        steps = []
        placed = {(p.tensor, p.chip) for p in program.placements if p.kind == "weight"}
        for instr in sorted(program.instrs, key=lambda i: (i.start_cycle, i.index)):
            handler = _HANDLERS.get(instr.op)
            if handler is None:
                raise ProgramError(f"instr {instr.index}: unknown op {instr.op!r}")
            attrs = dict(instr.attrs)
            if placed and instr.op in ("matmul", "embed"):
                _check_placed(instr, attrs, placed)
            if placed and instr.op in ("router", "moe_experts", "mla_attention"):
                for key in weight_keys(instr.op, attrs):
                    if (key, instr.chip) not in placed:
                        raise ProgramError(f"instr {instr.index} ({instr.op} on chip {instr.chip}) reads weight "
                                           f"shard {key}, which is not placed in that chip's SRAM")
            if len(instr.outputs) != (0 if instr.op == "send" else 1):
                raise ProgramError(
                    f"instr {instr.index} ({instr.op}) names {len(instr.outputs)} outputs"
                )
            out = instr.outputs[0] if instr.outputs else None
            steps.append((instr, handler, attrs, instr.chip, instr.inputs, out))
        self._prepared[id(program)] = (program, steps)
        return steps

    def run(self, program: Any, token_ids: np.ndarray) -> StepOutput:
        """Run one prefill, decode or verify program on token ids [B, T] (decode: T = 1; verify: T = k + 1).

        A verify program's logits hold a row per position checked ([B * T, vocab]).
        """
        ids = np.asarray(token_ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[0] != program.batch:
            raise ProgramError(
                f"token ids of shape {ids.shape} do not fit a program of batch {program.batch}"
            )
        if program.phase == "prefill" and ids.shape[1] != program.seq_len:
            raise ProgramError(
                f"prefill program expects {program.seq_len} tokens per sequence, got {ids.shape[1]}"
            )
        if program.phase == "decode" and ids.shape[1] != 1:
            raise ProgramError("decode programs take one token per sequence")
        verify = int(program.get_meta("verify_tokens", 1)) if program.phase == "verify" else 1
        if program.phase == "verify" and ids.shape[1] != verify:
            raise ProgramError(f"verify program checks {verify} tokens per sequence, got {ids.shape[1]}")
        spaces: dict[int, dict[str, np.ndarray]] = {c: {} for c in range(program.chips)}
        mailbox: dict[tuple[int, int, str], np.ndarray] = {}
        appended: set[tuple[Any, ...]] = set()
        embed_chips = {i.chip for i in program.instrs if i.op == "embed"}
        for chip in embed_chips:
            spaces[chip]["token_ids"] = ids.reshape(-1)
        lengths = {self.cache.length(k) for k in self.cache.entries}
        if len(lengths) > 1:
            raise ProgramError(f"KV cache shards disagree on length: {sorted(lengths)}")
        past = lengths.pop() if lengths else 0
        # The schedule (so the latency) was compiled for one context: hold the run to it.
        expected = 0 if program.phase == "prefill" else program.seq_len - verify
        if past != expected:
            raise ProgramError(
                f"{program.phase} program compiled for seq_len {program.seq_len} needs {expected} "
                f"cached tokens, but the KV cache holds {past}"
            )
        ctx = _StepContext(
            program=program, ids=ids, mailbox=mailbox, appended=appended, past_len=past
        )
        rounding = program.activation_dtype if self.round_activations else None
        for instr, handler, attrs, chip, inputs, out in self._prepare(program):
            space = spaces[chip]
            try:
                args = [space[name] for name in inputs]
            except KeyError as exc:
                raise ProgramError(
                    f"instr {instr.index} ({instr.op} on chip {chip}) reads {exc.args[0]!r}, "
                    "which that chip does not hold"
                ) from None
            result = handler(self, ctx, instr, attrs, args)
            if out is not None:
                space[out] = result if rounding is None else _store_as(result, rounding)
        holders = [c for c, sp in spaces.items() if "logits" in sp]
        if len(holders) != 1:
            raise ProgramError(
                f"program must leave 'logits' on exactly one chip, found on {holders}"
            )
        logits = spaces[holders[0]]["logits"]
        return StepOutput(logits=logits, tokens=K.argmax(logits))


def _check_placed(instr: Any, attrs: dict[str, Any], placed: set[tuple[str, int]]) -> None:
    """A chip reads only weight shards placed in its own SRAM (names from ``ir.weight_key``)."""
    from twinfer.lpu.ir import weight_key

    if "cols" not in attrs or not (attrs.get("rows") or attrs.get("vocab")):
        return  # shard bounds not stated: nothing to check against
    rows = attrs.get("rows") or (0, attrs.get("vocab"))
    key = weight_key(str(attrs["weight"]), tuple(rows), tuple(attrs["cols"]))
    if (key, instr.chip) not in placed:
        raise ProgramError(
            f"instr {instr.index} ({instr.op} on chip {instr.chip}) reads weight shard {key}, "
            "which is not placed in that chip's SRAM"
        )


def _store_as(value: np.ndarray, dtype: str) -> np.ndarray:
    """A float tensor as held in SRAM in ``dtype`` (returned as fp32 values); ints untouched."""
    if value.dtype != np.float32 or dtype == "fp32":
        return value
    if dtype == "fp16":
        return value.astype(np.float16).astype(np.float32)
    if dtype == "bf16":
        return K.round_bf16(value)
    raise ProgramError(f"activation dtype {dtype!r} cannot be emulated (use fp32, fp16 or bf16)")


@dataclass
class _StepContext:
    """Per-run state shared by the op handlers."""

    program: Any
    ids: np.ndarray
    mailbox: dict[tuple[int, int, str], np.ndarray]
    appended: set[tuple[Any, ...]]
    past_len: int  # tokens cached before this step (the same for every KV shard)


def _op_embed(ex, ctx, instr, a, args):
    name, dtype = a.get("weight"), a.get("dtype", ctx.program.weight_dtype)
    table = ex.store.matrix(name, dtype)
    cols = tuple(a.get("cols", (0, table.shape[1])))  # a hidden-column shard of the table
    return K.embed(args[0], ex._shard(name, (0, table.shape[0]), cols, dtype))


def _op_rmsnorm(ex, ctx, instr, a, args):
    return K.rmsnorm(args[0], ex.store.vector(a.get("weight")), float(a.get("eps")))


def _op_matmul(ex, ctx, instr, a, args):
    rows, cols = tuple(a.get("rows")), tuple(a.get("cols"))
    w = ex._shard(a.get("weight"), rows, cols, a.get("dtype", ctx.program.weight_dtype))
    bias_name = a.get("bias")
    bias = ex.store.vector(bias_name)[rows[0] : rows[1]] if bias_name and cols[0] == 0 else None
    return K.matmul(args[0], w, bias)


def _op_rope(ex, ctx, instr, a, args):
    past = ctx.past_len
    t = ctx.ids.shape[1]
    positions = np.tile(past + np.arange(t), ctx.ids.shape[0])
    head_dim = int(a.get("head_dim"))
    scaling = _scaling_dict(a.get("rope_scaling"))
    inv = ex._inv_freq.get(head_dim, float(a.get("theta")), scaling)
    out = K.rope(args[0], positions, int(a.get("heads")), head_dim, inv)
    factor = K.rope_attention_factor(scaling)  # YaRN scales cos and sin
    return out if factor == 1.0 else (out * np.float32(factor)).astype(np.float32)


def _op_attention(ex, ctx, instr, a, args):
    q, k, v = args
    b = ctx.program.batch
    heads, kv_heads, d = (int(a.get(n)) for n in ("heads", "kv_heads", "head_dim"))
    key = (instr.chip, int(a.get("layer")), int(a.get("kv_head_offset", 0)), kv_heads)
    past = ctx.past_len
    new_k, new_v = _heads_first(k, b, kv_heads, d), _heads_first(v, b, kv_heads, d)
    if key in ctx.appended:  # a replicated KV shard on the same chip: reuse, do not append twice
        k_all, v_all = ex.cache.entries[key]
        if not np.array_equal(k_all[:, :, past:], new_k):
            raise ProgramError(f"instr {instr.index}: two attention shards {key} disagree on keys")
    else:
        if ex.cache.length(key) != past:
            raise ProgramError(
                f"instr {instr.index}: KV shard (chip, layer, kv_head_offset, kv_heads)={key} holds "
                f"{ex.cache.length(key)} tokens, expected {past}: prefill and decode programs must be "
                "compiled with the same partition plan"
            )
        k_all, v_all = ex.cache.append(key, new_k, new_v)
        ctx.appended.add(key)
    out = K.attention(
        q.reshape(b, -1, heads * d),
        k_all,
        v_all,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=d,
        past_len=past,
    )
    return out.reshape(-1, heads * d)


def _op_send(ex, ctx, instr, a, args):
    ctx.mailbox[(instr.chip, int(a.get("peer")), a.get("tensor", instr.inputs[0]))] = args[0]
    return None


def _op_recv(ex, ctx, instr, a, args):
    key = (int(a.get("peer")), instr.chip, a.get("tensor"))
    if key not in ctx.mailbox:
        raise ProgramError(
            f"instr {instr.index}: recv of {key[2]!r} from chip {key[0]} before its send"
        )
    return ctx.mailbox.pop(key).copy()


def _op_last_rows(ex, ctx, instr, a, args):
    x = args[0]
    return x.reshape(int(a.get("batch")), int(a.get("seq_len")), -1)[:, -1]


_HANDLERS: dict[str, Callable[..., Any]] = {
    "embed": _op_embed,
    "rmsnorm": _op_rmsnorm,
    "matmul": _op_matmul,
    "add": lambda ex, ctx, instr, a, args: K.add(args[0], args[1]),
    "concat": lambda ex, ctx, instr, a, args: K.concat(list(args), int(a.get("axis", -1))),
    "split": lambda ex, ctx, instr, a, args: K.split(
        args[0], int(a.get("axis")), int(a.get("start")), int(a.get("stop"))
    ),
    "rope": _op_rope,
    "attention": _op_attention,
    "silu_mul": lambda ex, ctx, instr, a, args: K.silu_mul(args[0], args[1]),
    "send": _op_send,
    "recv": _op_recv,
    "last_rows": _op_last_rows,
    "argmax": lambda ex, ctx, instr, a, args: K.argmax(args[0]),
    **MOE_HANDLERS,
}


@dataclass(frozen=True)
class CompiledGeneration:
    """The programs of one greedy generation: a prefill and one decode per further token.

    All share one partition ``plan`` (made for the final context), so every KV
    shard stays on the chip that wrote it. ``decodes[i]`` runs at context
    ``prompt_len + i + 1``; its schedule, and so its latency, depends on it.
    """

    prefill: Any  # twinfer.lpu.ir.Program
    decodes: tuple[Any, ...]
    plan: Any  # twinfer.lpu.plan.Plan
    compile_s: float  # wall time spent compiling, for benchmarks

    @property
    def programs(self) -> tuple[Any, ...]:
        """Prefill then decodes, in execution order."""
        return (self.prefill, *self.decodes)

    @property
    def prefill_latency_s(self) -> float:
        """Modelled time to first token: the prefill schedule's length."""
        return float(self.prefill.latency_s)

    @property
    def decode_latencies_s(self) -> tuple[float, ...]:
        """Modelled time of each decode step."""
        return tuple(float(p.latency_s) for p in self.decodes)

    @property
    def total_latency_s(self) -> float:
        """Modelled wall time of the whole generation on the LPU system."""
        return self.prefill_latency_s + sum(self.decode_latencies_s)


def compile_generation(
    spec: ModelSpec,
    chip: Any,
    *,
    chips: int | None,
    batch: int,
    prompt_len: int,
    max_new_tokens: int,
    precision: Any,
) -> CompiledGeneration:
    """Compile the prefill and decode programs of a greedy generation with the LPU compiler.

    ``chip`` is a :class:`twinfer.lpu.chip.Chip`; ``chips`` None picks the
    fewest chips that hold the weights and the KV cache of the final context.
    """
    import time

    from twinfer.lpu.passes import compile_step
    from twinfer.lpu.plan import make_plan
    from twinfer.lpu.system import System

    t0 = time.perf_counter()
    final_ctx = prompt_len + max(max_new_tokens - 1, 0)
    plan = make_plan(
        spec, chip, precision, chips=chips, batch=batch, ctx=final_ctx, tokens=batch * prompt_len
    )
    system = System(chip=chip, num_chips=plan.num_chips)
    kw = dict(batch=batch, precision=precision, plan=plan)
    prefill = compile_step(spec, system, phase="prefill", seq_len=prompt_len, **kw).program
    decodes = tuple(
        compile_step(spec, system, phase="decode", seq_len=ctx, **kw).program
        for ctx in range(prompt_len + 1, final_ctx + 1)
    )
    return CompiledGeneration(
        prefill=prefill, decodes=decodes, plan=plan, compile_s=time.perf_counter() - t0
    )


def unused_weights(compiled: CompiledGeneration, store: WeightStore) -> list[str]:
    """Checkpoint tensors no compiled program reads (e.g. a bias the compiler does not lower).

    A non-empty list means the programs compute a different function than the
    checkpoint defines, so their output would silently differ from the model's.
    """
    used = set()
    for prog in compiled.programs:
        for ins in prog.instrs:
            for key in ("weight", "bias", "norm"):
                name = ins.attr(key)
                if name:
                    used.add(name)
            if ins.op == "moe_experts":
                used.update(n.format(e=e) for n in ins.attr("names") for e in range(*ins.attr("experts")))
    if LM_HEAD_NAME in used and store.tie_word_embeddings:
        used.add("model.embed_tokens.weight")
    if "model.embed_tokens.weight" in used and store.tie_word_embeddings:
        used.add(LM_HEAD_NAME)  # a tied checkpoint may store the head too
    return sorted(n for n in store.checkpoint.names() if n not in used)


def execute_generation(
    compiled: CompiledGeneration,
    store: WeightStore,
    prompt: np.ndarray,
    executor: ProgramExecutor | None = None,
    round_activations: bool = False,
) -> Generation:
    """Run a compiled generation on ``prompt`` [B, T]; greedy tokens and logits.

    Pass an ``executor`` to reuse its widened weights (its KV cache is reset).
    """
    executor = executor or ProgramExecutor(store, round_activations=round_activations)
    executor.cache = KVCache()
    programs = iter(compiled.programs)
    return greedy_generate(
        lambda ids: executor.run(next(programs), ids).logits, prompt, len(compiled.programs)
    )
