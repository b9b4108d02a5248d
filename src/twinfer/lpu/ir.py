"""The one program representation of the virtual LPU: instructions, tensor placement, a program.

Every compiler pass maps a :class:`Program` to a new :class:`Program`; the
cycle model reads the schedule (``start_cycle``/``end_cycle``) and the numpy
executor reads the semantic ops. Both see exactly the same object.

Conventions shared with the executor (see the contract):

* Activations are 2-D ``[tokens, features]``. In prefill the token rows are
  sequence-major: ``batch`` sequences of ``seq_len`` tokens each. In decode
  there is one row per sequence.
* Tensor names live in a chip's namespace: the same name on two chips is two
  tensors. ``send``/``recv`` pairs copy a tensor between namespaces.
* Weights are Hugging Face tensor names, stored ``[out_features, in_features]``.

Semantic ops (``Instr.op``) and their attrs:

==========  =====================  ===========================================================
op          inputs                 attrs / meaning
==========  =====================  ===========================================================
embed       (token_ids,)           weight -> rows of the embedding table, ``[tokens, hidden]``
rmsnorm     (x,)                   weight, eps
matmul      (x,)                   weight, rows=(r0, r1), cols=(c0, c1), dtype, bias (name or
                                   None; added only by the shard whose cols start at 0, sliced
                                   to rows) -> ``x @ W[r0:r1, c0:c1].T``
add         (a, b)                 a + b (residuals, partial sums of a column-split matmul)
concat      (a, b, ...)            axis -> concatenation in input order
split       (x,)                   axis, start, stop -> slice
rope        (x,)                   heads, head_dim, theta, rope_scaling (tuple or None);
                                   positions are the step's runtime positions (HF rotate_half)
attention   (q, k, v)              layer, heads, kv_heads, head_dim, kv_head_offset; causal;
                                   appends k, v to this chip's KV cache for (layer, its KV
                                   heads) and attends over cache + new -> ``[tokens, heads*hd]``
silu_mul    (gate, up)             silu(gate) * up
send        (t,)                   peer (receiving chip), tensor (= t)
recv        ()                     peer (sending chip), tensor (name on the sender); the
                                   output is the name on this chip
last_rows   (x,)                   batch, seq_len -> the last row of each sequence
                                   (``x.reshape(batch, seq_len, -1)[:, -1]``); prefill only
argmax      (logits,)              greedy token ids (optional)
router      (x,)                   weight (gate [E, hidden]), bias (DeepSeek score correction or
                                   None), num_experts, top_k, scoring ("softmax" | "sigmoid"),
                                   n_group, topk_group, norm_topk_prob, routed_scaling_factor ->
                                   dense routing weights ``[tokens, E]`` (0 for unpicked experts)
moe_experts (x, rw)                layer, experts=(e0, e1), inter=(i0, i1), names (gate, up, down
                                   weight names with ``{e}``), num_experts, top_k, imbalance ->
                                   sum over e0<=e<e1 of rw[:, e] * down_e(silu(gate_e x) * up_e x),
                                   each expert's intermediate rows i0:i1 -> ``[tokens, hidden]``
mla_attention (q, kva)             DeepSeek multi-head latent attention (absorbed form): layer,
                                   heads, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim,
                                   v_head_dim, weight (kv_b_proj), rows (this shard's kv_b rows),
                                   norm (kv_a_layernorm), eps; caches kv_lora_rank +
                                   qk_rope_head_dim values per token -> ``[tokens, heads*v_head_dim]``
==========  =====================  ===========================================================

Program inputs: ``token_ids`` on the chip whose ``embed`` reads it, and the
runtime positions. Output: ``logits`` on the chip holding the LM head.

Units (``Instr.unit``): ``MXM`` (all matrix planes of the chip ganged on one
matmul; planes are named ``MXM0``.. in ``attrs['planes']``), ``VXM``,
``SXM_W``/``SXM_E`` (the two switch units), ``MEM``, and ``C2C<port>.tx`` /
``C2C<port>.rx`` for the two directions of a chip-to-chip link.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: Semantic ops the executor implements (see the module docstring).
SEMANTIC_OPS = (
    "embed", "rmsnorm", "matmul", "add", "concat", "split", "rope",
    "attention", "silu_mul", "send", "recv", "last_rows", "argmax",
    "router", "moe_experts", "mla_attention",
)


def _freeze(value: Any) -> Any:
    """Turn lists (e.g. from JSON) back into tuples so attrs stay hashable."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Instr:
    """One operation on one chip: what it computes, on which unit, and (once scheduled) when.

    ``cycles`` is the op's duration from the chip model's closed-form cost
    (filled by the lowering/partition passes, -1 when unknown);
    ``start_cycle``/``end_cycle`` are filled by the schedule pass.
    """

    index: int  # program order (a topological order of the dependencies)
    op: str  # semantic op name, one of SEMANTIC_OPS
    chip: int  # chip that executes it
    unit: str  # functional unit: MXM, VXM, SXM_W, SXM_E, MEM, C2C<p>.tx, C2C<p>.rx
    inputs: tuple[str, ...] = ()  # tensor names in this chip's namespace
    outputs: tuple[str, ...] = ()  # tensor names in this chip's namespace
    attrs: tuple[tuple[str, Any], ...] = ()  # hashable (key, value) pairs
    cycles: int = -1  # duration in cycles from the chip model, -1 until costed
    start_cycle: int = -1  # first cycle, -1 until scheduled
    end_cycle: int = -1  # first cycle after it finishes, -1 until scheduled
    streams: tuple[str, ...] = ()  # stream slots it uses, e.g. ("E0", "E1", "W5")

    def attr(self, name: str, default: Any = None) -> Any:
        """The value of attribute ``name`` (``default`` when absent)."""
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    def timed(self, start_cycle: int, end_cycle: int, streams: tuple[str, ...] = ()) -> Instr:
        """A copy with its schedule filled (a fast ``dataclasses.replace``)."""
        return Instr(self.index, self.op, self.chip, self.unit, self.inputs, self.outputs, self.attrs,
                     self.cycles, start_cycle, end_cycle, streams)

    def costed(self, cycles: int) -> Instr:
        """A copy with its duration filled."""
        return Instr(self.index, self.op, self.chip, self.unit, self.inputs, self.outputs, self.attrs,
                     cycles, self.start_cycle, self.end_cycle, self.streams)

    def with_attrs(self, **updates: Any) -> Instr:
        """A copy with attributes added or replaced (order kept, new keys appended)."""
        keys = [k for k, _ in self.attrs]
        merged = dict(self.attrs)
        merged.update(updates)
        keys += [k for k in updates if k not in keys]
        return replace(self, attrs=tuple((k, _freeze(merged[k])) for k in keys))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return {
            "index": self.index, "op": self.op, "chip": self.chip, "unit": self.unit,
            "inputs": list(self.inputs), "outputs": list(self.outputs),
            "attrs": [[k, v] for k, v in self.attrs], "cycles": self.cycles,
            "start_cycle": self.start_cycle, "end_cycle": self.end_cycle,
            "streams": list(self.streams),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Instr:
        """Inverse of :meth:`to_dict`."""
        return cls(
            index=int(d["index"]), op=d["op"], chip=int(d["chip"]), unit=d["unit"],
            inputs=tuple(d["inputs"]), outputs=tuple(d["outputs"]),
            attrs=tuple((k, _freeze(v)) for k, v in d["attrs"]), cycles=int(d["cycles"]),
            start_cycle=int(d["start_cycle"]), end_cycle=int(d["end_cycle"]),
            streams=tuple(d["streams"]),
        )


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one tensor lives in a chip's SRAM: its MEM slice and bank range and its size."""

    tensor: str  # name in the chip's namespace (weights: "<hf name>[r0:r1,c0:c1]")
    chip: int
    kind: str  # "weight", "kv", "activation"
    num_bytes: int
    slice_first: int = -1  # first MEM slice (0..mem_slices-1), -1 until placed
    slice_count: int = 0  # consecutive slices it is spread over
    bank: int = -1  # bank within the slices (0 or 1), -1 until placed

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "tensor": self.tensor, "chip": self.chip, "kind": self.kind,
            "num_bytes": self.num_bytes, "slice_first": self.slice_first,
            "slice_count": self.slice_count, "bank": self.bank,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Placement:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: d[k] for k in (
            "tensor", "chip", "kind", "num_bytes", "slice_first", "slice_count", "bank")})


@dataclass(frozen=True)
class Program:
    """A compiled (or partly compiled) forward step of a model on an LPU system.

    ``seq_len`` is the prompt length in prefill and the context length (new
    token included) in decode. ``sram_bytes_per_chip`` and
    ``schedule_cycles`` are filled by the place and schedule passes.
    """

    model: str  # ModelSpec name
    phase: str  # "prefill", "decode" or "verify" (k + 1 positions per sequence: meta verify_tokens)
    batch: int  # sequences in the step
    seq_len: int  # prompt length (prefill) or context length (decode)
    chips: int  # chips in the system
    instrs: tuple[Instr, ...]
    weight_dtype: str = "int8"  # fp16, bf16, int8, fp8 (accumulation always fp32)
    activation_dtype: str = "fp16"  # activations and KV cache on the chip
    clock_hz: float = 0.0  # chip clock, to turn cycles into seconds
    placements: tuple[Placement, ...] = ()
    sram_bytes_per_chip: tuple[int, ...] = ()  # bytes used on each chip
    schedule_cycles: int = -1  # length of the schedule, -1 until scheduled
    meta: tuple[tuple[str, Any], ...] = field(default=())  # pass outputs: plan, tp, stages ...

    def get_meta(self, name: str, default: Any = None) -> Any:
        """A value recorded by a pass (``default`` when absent)."""
        for key, value in self.meta:
            if key == name:
                return value
        return default

    def with_meta(self, **updates: Any) -> Program:
        """A copy with meta entries added or replaced."""
        merged = dict(self.meta)
        merged.update({k: _freeze(v) for k, v in updates.items()})
        return replace(self, meta=tuple(merged.items()))

    @property
    def tokens(self) -> int:
        """Token rows that flow through the projections this step."""
        if self.phase == "verify":
            return self.batch * int(self.get_meta("verify_tokens", 1))
        return self.batch * self.seq_len if self.phase == "prefill" else self.batch

    @property
    def latency_s(self) -> float:
        """Wall time of the scheduled step (schedule length / clock)."""
        if self.schedule_cycles < 0 or self.clock_hz <= 0:
            raise ValueError("program is not scheduled yet")
        return self.schedule_cycles / self.clock_hz

    def chip_instrs(self, chip: int) -> Iterable[Instr]:
        """Instructions of one chip, in program order."""
        return (i for i in self.instrs if i.chip == chip)

    def to_json(self) -> str:
        """Deterministic serialisation: same program, same bytes."""
        body = {
            "model": self.model, "phase": self.phase, "batch": self.batch,
            "seq_len": self.seq_len, "chips": self.chips, "weight_dtype": self.weight_dtype,
            "activation_dtype": self.activation_dtype, "clock_hz": self.clock_hz,
            "schedule_cycles": self.schedule_cycles,
            "sram_bytes_per_chip": list(self.sram_bytes_per_chip),
            "meta": [[k, v] for k, v in self.meta],
            "placements": [p.to_dict() for p in self.placements],
            "instrs": [i.to_dict() for i in self.instrs],
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Program:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(
            model=d["model"], phase=d["phase"], batch=d["batch"], seq_len=d["seq_len"],
            chips=d["chips"], weight_dtype=d["weight_dtype"],
            activation_dtype=d["activation_dtype"], clock_hz=d["clock_hz"],
            instrs=tuple(Instr.from_dict(i) for i in d["instrs"]),
            placements=tuple(Placement.from_dict(p) for p in d["placements"]),
            sram_bytes_per_chip=tuple(d["sram_bytes_per_chip"]),
            schedule_cycles=d["schedule_cycles"],
            meta=tuple((k, _freeze(v)) for k, v in d["meta"]),
        )


def weight_key(name: str, rows: tuple[int, int], cols: tuple[int, int]) -> str:
    """Placement name of a weight shard: ``"<hf name>[r0:r1,c0:c1]"``."""
    return f"{name}[{rows[0]}:{rows[1]},{cols[0]}:{cols[1]}]"
