"""The partition plan: how many chips split each layer (tensor split) and which layers each chip group holds.

A model is a chain of blocks — the embedding, each decoder layer, the LM head
(final norm + output projection). A *stage* is a group of ``tp`` chips
holding a contiguous run of blocks, every weight matrix split ``tp`` ways
(Megatron-style: heads and FFN width over chips); stages form a pipeline.
Per-chip bytes of a block are its weight shard + its KV-cache shard for the
compiled batch and context + an activation workspace. The plan is the
smallest (or, with a chip count given, the most balanced) packing in which
every chip fits its usable SRAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twinfer.errors import CapacityError, ConfigError
from twinfer.lpu.chip import Chip
from twinfer.lpu.experts import ExpertGroup, choose_expert_layout
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.units import dtype_bytes


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``tp`` chips holding blocks ``first_block`` .. ``last_block`` (inclusive)."""

    index: int
    chips: tuple[int, ...]
    first_block: int  # 0 = embedding, 1..L = layers 0..L-1, L+1 = LM head
    last_block: int
    bytes_per_chip: int  # planned SRAM use of each chip of the stage


@dataclass(frozen=True)
class Plan:
    """Tensor split ``tp`` and the pipeline stages over a system of ``num_chips`` chips."""

    tp: int
    stages: tuple[Stage, ...]
    num_chips: int  # chips in the system (some may stay idle)
    capacity_bytes: int  # usable SRAM per chip

    @property
    def chips_used(self) -> int:
        """Chips that hold part of the model."""
        return self.tp * len(self.stages)

    def stage_of_block(self, block: int) -> Stage:
        """The stage holding ``block``."""
        for st in self.stages:
            if st.first_block <= block <= st.last_block:
                return st
        raise KeyError(block)


def split_bounds(n: int, parts: int, i: int) -> tuple[int, int]:
    """The ``i``-th of ``parts`` near-equal contiguous ranges of ``range(n)``."""
    return n * i // parts, n * (i + 1) // parts


def tp_candidates(model: ModelSpec, max_tp: int, chips_per_node: int | None = None) -> list[int]:
    """Tensor splits (largest first) that divide the heads and map KV heads cleanly, up to ``max_tp``.

    With ``chips_per_node`` given, splits wider than a node must span whole nodes.
    """
    out = []
    for t in range(max(1, max_tp), 0, -1):
        if model.num_attention_heads % t:
            continue
        if chips_per_node and t > chips_per_node and t % chips_per_node:
            continue
        kv = model.num_kv_heads
        if kv % t and t % kv:
            continue
        out.append(t)
    return out


def kv_heads_local(model: ModelSpec, tp: int) -> int:
    """KV heads each chip of a ``tp``-way split holds (replicated when tp exceeds them)."""
    return max(1, model.num_kv_heads // tp)


def block_bytes(model: ModelSpec, chip: Chip, tp: int, precision: Precision, *,
                batch: int, ctx: int, tokens: int) -> list[tuple[int, int]]:
    """Per-chip SRAM of each block (embedding, layers, head) under a ``tp``-way split.

    Each entry is (resident bytes: weights + KV shard, activation workspace
    bytes); a stage needs the sum of its blocks' resident bytes plus the
    largest workspace, since its blocks run one after another and reuse it.
    """
    if model.moe is not None or model.mla is not None:
        return moe_mla_block_bytes(model, chip, tp, precision, batch=batch, ctx=ctx, tokens=tokens)
    wb, ab, kvb = dtype_bytes(precision.weights), dtype_bytes(precision.activations), dtype_bytes(precision.kv_cache)
    h, inter, hd = model.hidden_size, model.intermediate_size, model.head_dim
    # Reserve a full resident workspace whatever ``tokens`` is, so one plan serves prefill and decode.
    rows = max(min(tokens, chip.params.activation_rows_resident), chip.params.activation_rows_resident)
    q_local = model.num_attention_heads // tp * hd
    kv_local = kv_heads_local(model, tp) * hd
    i_local = math.ceil(inter / tp)
    norm = h * 2  # norm weights kept at 16 bit, replicated on every chip
    emb = (math.ceil(model.vocab_size * h / tp) * wb, rows * h * ab * 2)
    layer_w = (h * (q_local + 2 * kv_local) + q_local * h + 3 * h * i_local) * wb + 2 * norm
    if model.qkv_bias:
        layer_w += (q_local + 2 * kv_local) * 2
    layer_kv = batch * ctx * 2 * kv_local * kvb
    layer_act = rows * (4 * h + 3 * i_local + q_local + 2 * kv_local) * ab
    head = (math.ceil(model.vocab_size / tp) * h * wb + norm, rows * (2 * h + model.vocab_size) * ab)
    layer = (layer_w + layer_kv, layer_act)
    return [(int(a), int(b)) for a, b in [emb] + [layer] * model.num_layers + [head]]


def _load(loads: list[tuple[int, int]], a: int, b: int) -> int:
    """Per-chip bytes of a stage holding blocks a..b."""
    return sum(x for x, _ in loads[a:b + 1]) + max(w for _, w in loads[a:b + 1])


def _greedy(loads: list[tuple[int, int]], cap: int) -> list[tuple[int, int]] | None:
    """Pack blocks in order into as few runs as possible, each at most ``cap`` (None if a block alone exceeds it)."""
    runs: list[tuple[int, int]] = []
    start, acc, ws = 0, 0, 0
    for i, (x, w) in enumerate(loads):
        if x + w > cap:
            return None
        if acc + x + max(ws, w) > cap:
            runs.append((start, i - 1))
            start, acc, ws = i, 0, 0
        acc += x
        ws = max(ws, w)
    runs.append((start, len(loads) - 1))
    return runs


def _balanced(loads: list[tuple[int, int]], stages: int, cap: int) -> list[tuple[int, int]] | None:
    """Contiguous runs, at most ``stages`` of them, minimising the largest run (None if it exceeds ``cap``)."""
    lo, hi = max(x + w for x, w in loads), _load(loads, 0, len(loads) - 1)
    while lo < hi:  # binary search on the largest run
        mid = (lo + hi) // 2
        runs = _greedy(loads, mid)
        if runs is not None and len(runs) <= stages:
            hi = mid
        else:
            lo = mid + 1
    if lo > cap:
        return None
    runs = _greedy(loads, lo) or []
    # Use the spare stages: split the heaviest multi-block run in two until all stages are used.
    while len(runs) < stages:
        multi = [(_load(loads, a, b), -a, a, b) for a, b in runs if b > a]
        if not multi:
            break
        _, _, a, b = max(multi)
        total = sum(x for x, _ in loads[a:b + 1])
        acc, cut = 0, a
        for j in range(a, b):
            acc += loads[j][0]
            cut = j
            if acc * 2 >= total:
                break
        i = runs.index((a, b))
        runs[i:i + 1] = [(a, cut), (cut + 1, b)]
    return runs


def _make_plan(loads: list[tuple[int, int]], runs: list[tuple[int, int]], tp: int, num_chips: int,
               cap: int) -> Plan:
    stages = tuple(
        Stage(index=s, chips=tuple(range(s * tp, (s + 1) * tp)), first_block=a, last_block=b,
              bytes_per_chip=_load(loads, a, b))
        for s, (a, b) in enumerate(runs)
    )
    return Plan(tp=tp, stages=stages, num_chips=num_chips, capacity_bytes=cap)


def min_chips(model: ModelSpec, chip: Chip, precision: Precision, *, batch: int, ctx: int, tokens: int) -> Plan:
    """The plan using the fewest chips (ties: the larger tensor split, for lower latency)."""
    cap = chip.usable_sram_bytes
    best: Plan | None = None
    for tp in tp_candidates(model, chip.spec.chips_per_node):
        loads = block_bytes(model, chip, tp, precision, batch=batch, ctx=ctx, tokens=tokens)
        runs = _greedy(loads, cap)
        if runs is None:
            continue
        plan = _make_plan(loads, runs, tp, len(runs) * tp, cap)
        if best is None or plan.chips_used < best.chips_used:
            best = plan
    if best is None:
        tp = tp_candidates(model, chip.spec.chips_per_node)[0]
        need = max(x + w for x, w in block_bytes(model, chip, tp, precision, batch=batch, ctx=ctx, tokens=tokens))
        raise CapacityError(
            f"{model.name} cannot fit: one block needs {need / 2**20:.1f} MiB per chip even split {tp} ways, "
            f"but a {chip.spec.name} chip has {cap / 2**20:.1f} MiB usable SRAM; use 8-bit weights, "
            "a smaller batch or context, or a chip with more SRAM"
        )
    return best


def make_plan(model: ModelSpec, chip: Chip, precision: Precision, *, chips: int | None,
              batch: int, ctx: int, tokens: int, tp: int | None = None, ep: int | None = None) -> Plan:
    """Partition ``model`` over ``chips`` chips (the fewest that fit when None).

    Without ``tp`` the widest tensor split inside one node that fits is used;
    ``tp`` forces a split (wider than a node only in whole nodes; see
    :mod:`twinfer.lpu.layout` for the search by latency); ``ep`` forces the
    expert-group width of a MoE model. Raises CapacityError naming the
    minimum chip count when ``chips`` is too few.
    """
    if (unsupported := model.lpu_unsupported_reason()) is not None:
        raise ConfigError(unsupported)
    if chips is None and model.moe is not None:
        return make_moe_plan(model, chip, precision, chips=None, batch=batch, ctx=ctx, tokens=tokens)
    if chips is None:
        return min_chips(model, chip, precision, batch=batch, ctx=ctx, tokens=tokens)
    if chips < 1:
        raise ConfigError(f"--chips must be >= 1, got {chips}")
    if model.moe is not None:
        return make_moe_plan(model, chip, precision, chips=chips, batch=batch, ctx=ctx, tokens=tokens, tp=tp, ep=ep)
    cap = chip.usable_sram_bytes
    if tp is not None:
        if tp not in tp_candidates(model, chips, chip.spec.chips_per_node):
            raise ConfigError(f"{model.name}: a {tp}-way tensor split does not divide its heads, map its KV heads "
                              f"or span whole {chip.spec.chips_per_node}-chip nodes on {chips} chips")
        loads = block_bytes(model, chip, tp, precision, batch=batch, ctx=ctx, tokens=tokens)
        runs = _balanced(loads, chips // tp, cap)
        if runs is None:
            raise CapacityError(f"{model.name} does not fit {chips} chips as a {tp}-way tensor split")
        return _make_plan(loads, runs, tp, chips, cap)
    for tp in tp_candidates(model, min(chips, chip.spec.chips_per_node)):
        loads = block_bytes(model, chip, tp, precision, batch=batch, ctx=ctx, tokens=tokens)
        runs = _balanced(loads, chips // tp, cap)
        if runs is not None:
            return _make_plan(loads, runs, tp, chips, cap)
    need = min_chips(model, chip, precision, batch=batch, ctx=ctx, tokens=tokens)
    raise CapacityError(
        f"{model.name} at {precision.weights} weights, batch {batch}, context {ctx} does not fit on {chips} "
        f"{chip.spec.name} chips; it needs at least {need.chips_used} chips "
        f"({need.tp}-way tensor split x {len(need.stages)} pipeline stages); pass --chips {need.chips_used} or more"
    )


def kv_capacity_tokens(model: ModelSpec, chip: Chip, plan: Plan, precision: Precision) -> int:
    """KV-cache tokens (summed over sequences) the plan's tightest stage has room for.

    SRAM left on each chip after its weights and activation workspace, divided
    by the KV bytes one token costs that chip (its KV heads, its layers): on an
    SRAM-only system this, not compute, often binds concurrency and context.
    """
    cap = chip.usable_sram_bytes
    loads = block_bytes(model, chip, plan.tp, precision, batch=0, ctx=0, tokens=1)
    per_tok_layer = 2 * kv_heads_local(model, plan.tp) * model.head_dim * dtype_bytes(precision.kv_cache)
    if model.mla is not None:  # MLA caches one latent + shared rotary key per token, on every chip of the split
        per_tok_layer = (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * dtype_bytes(precision.kv_cache)
    best: int | None = None
    for st in plan.stages:
        blocks = loads[st.first_block:st.last_block + 1]
        used = sum(x for x, _ in blocks) + max(w for _, w in blocks)
        layers = sum(1 for b in range(st.first_block, st.last_block + 1) if 1 <= b <= model.num_layers)
        if layers:
            tokens = int((cap - used) // (per_tok_layer * layers))
            best = tokens if best is None else min(best, tokens)
    return max(0, best or 0)


# ---- mixture of experts and multi-head latent attention ---------------------------------
@dataclass(frozen=True)
class MoePlan(Plan):
    """A plan whose MoE layers keep their routed experts on expert groups after the stages (see lpu.experts)."""

    expert_groups: tuple[ExpertGroup, ...] = ()
    ep: int = 1  # chips per layer's expert group
    expert_shard_bytes: int = 0  # one layer's experts on one expert chip

    @property
    def chips_used(self) -> int:
        """Stage chips plus expert chips."""
        return self.tp * len(self.stages) + sum(len(g.chips) for g in self.expert_groups)

    def expert_summary(self) -> dict[str, int]:
        """What ``twinfer compile`` shows of the expert placement (plain JSON values)."""
        return {"expert_groups": len(self.expert_groups), "chips_per_group": self.ep,
                "moe_layers_per_group": max((g.last_layer - g.first_layer + 1 for g in self.expert_groups), default=0),
                "expert_chips": sum(len(g.chips) for g in self.expert_groups),
                "expert_bytes_per_chip": self.expert_shard_bytes}

    def expert_group_of_layer(self, layer: int) -> ExpertGroup:
        """The expert group holding MoE layer ``layer``'s routed experts."""
        for g in self.expert_groups:
            if g.first_layer <= layer <= g.last_layer:
                return g
        raise KeyError(layer)


def mla_attention_weights(model: ModelSpec, tp: int) -> int:
    """Weight elements of one MLA attention block per chip of a ``tp``-way head split (q_a, kv_a replicated)."""
    m, h, nh = model.mla, model.hidden_size, model.num_attention_heads // tp
    assert m is not None
    qk = m.qk_nope_head_dim + m.qk_rope_head_dim
    q = h * m.q_lora_rank + m.q_lora_rank * nh * qk if m.q_lora_rank else h * nh * qk
    kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)
    return q + kv + nh * m.v_head_dim * h


def moe_mla_block_bytes(model: ModelSpec, chip: Chip, tp: int, precision: Precision, *,
                        batch: int, ctx: int, tokens: int) -> list[tuple[int, int]]:
    """:func:`block_bytes` for models with MoE FFNs and/or MLA attention (routed experts excluded: they live
    on expert groups); a dense-FFN layer of such a model keeps its FFN split ``tp`` ways."""
    wb, ab, kvb = dtype_bytes(precision.weights), dtype_bytes(precision.activations), dtype_bytes(precision.kv_cache)
    h, hd, moe, mla = model.hidden_size, model.head_dim, model.moe, model.mla
    rows = chip.params.activation_rows_resident
    norm = h * 2
    if mla is not None:
        attn_w = mla_attention_weights(model, tp) * wb + (mla.q_lora_rank + mla.kv_lora_rank) * 2
        kv = batch * ctx * (mla.kv_lora_rank + mla.qk_rope_head_dim) * kvb
        attn_act = (mla.q_lora_rank + mla.kv_lora_rank + mla.qk_rope_head_dim
                    + model.num_attention_heads // tp * (hd + mla.v_head_dim + mla.kv_lora_rank))
    else:
        q_local, kv_local = model.num_attention_heads // tp * hd, kv_heads_local(model, tp) * hd
        attn_w = (2 * h * q_local + 2 * h * kv_local) * wb + (q_local + 2 * kv_local) * 2 * model.qkv_bias
        kv = batch * ctx * 2 * kv_local * kvb
        attn_act = q_local + 2 * kv_local
    dense_local = math.ceil(model.intermediate_size / tp)
    out = [(int(math.ceil(model.vocab_size * h / tp) * wb), int(rows * h * ab * 2))]
    for li in range(model.num_layers):
        if moe is not None and li >= moe.first_dense_layers:
            shared_local = math.ceil(moe.num_shared_experts * moe.expert_intermediate_size / tp)
            ffn_w = moe.num_experts * h * wb + moe.num_experts * 4 + 3 * h * shared_local * wb
            ffn_act = 2 * moe.num_experts + 3 * shared_local + 2 * h
        else:
            ffn_w, ffn_act = 3 * h * dense_local * wb, 3 * dense_local
        out.append((int(attn_w + 2 * norm + ffn_w + kv), int(rows * (6 * h + attn_act + ffn_act) * ab)))
    out.append((int(math.ceil(model.vocab_size / tp) * h * wb + norm), int(rows * (2 * h + model.vocab_size) * ab)))
    return out


def make_moe_plan(model: ModelSpec, chip: Chip, precision: Precision, *, chips: int | None,
                  batch: int, ctx: int, tokens: int, tp: int | None = None, ep: int | None = None) -> MoePlan:
    """Stages for attention/dense blocks plus expert groups (fewest chips when ``chips`` is None).

    ``tp`` and ``ep`` force the stages' tensor split and the expert-group width
    (:func:`twinfer.lpu.layout.search_layouts` tries them by latency).
    """
    moe = model.moe
    assert moe is not None
    cap = chip.usable_sram_bytes
    wb, ab = dtype_bytes(precision.weights), dtype_bytes(precision.activations)
    h, inter = model.hidden_size, moe.expert_intermediate_size
    moe_layers = list(range(moe.first_dense_layers, model.num_layers))
    rows = chip.params.activation_rows_resident
    workspace = int(rows * (3 * h + moe.num_experts + 3 * inter) * ab)
    best: MoePlan | None = None
    splits = [tp] if tp is not None else tp_candidates(model, min(chips or chip.spec.chips_per_node,
                                                                  chip.spec.chips_per_node))
    for tp in splits:
        loads = block_bytes(model, chip, tp, precision, batch=batch, ctx=ctx, tokens=tokens)
        try:
            layout = choose_expert_layout(ep=ep,
                num_experts=moe.num_experts, expert_bytes=int(3 * h * inter * wb), inter=inter, tp=tp,
                moe_layers=len(moe_layers), capacity_bytes=cap, workspace_bytes=workspace,
                router_bytes=int(moe.num_experts * (h * wb + 4)),
                max_chips=None if chips is None else chips - tp)
        except CapacityError:
            continue
        if chips is None:
            runs = _greedy(loads, cap)
        else:
            stage_chips = chips - layout.chips_needed(len(moe_layers))
            runs = _balanced(loads, stage_chips // tp, cap) if stage_chips >= tp else None
        if runs is None:
            continue
        base = _make_plan(loads, runs, tp, chips or len(runs) * tp + layout.chips_needed(len(moe_layers)), cap)
        plan = MoePlan(tp=tp, stages=base.stages, num_chips=base.num_chips, capacity_bytes=cap,
                       expert_groups=layout.groups(moe_layers, first_chip=tp * len(runs)), ep=layout.ep,
                       expert_shard_bytes=layout.shard_bytes)
        if chips is not None:
            return plan
        if best is None or plan.chips_used < best.chips_used:
            best = plan
    if best is None:
        if chips is not None:
            need = make_moe_plan(model, chip, precision, chips=None, batch=batch, ctx=ctx, tokens=tokens)
            raise CapacityError(
                f"{model.name} at {precision.weights} weights, batch {batch}, context {ctx} does not fit on {chips} "
                f"{chip.spec.name} chips; it needs at least {need.chips_used} ({need.tp}-way tensor split x "
                f"{len(need.stages)} stages + {len(need.expert_groups)} expert groups of {need.ep} chips); "
                f"pass --chips {need.chips_used} or more")
        raise CapacityError(
            f"{model.name} cannot fit on {chip.spec.name} chips ({cap / 2**20:.1f} MiB usable SRAM each) at "
            f"{precision.weights} weights: a block or an expert is larger than a chip; use 8-bit weights, a "
            "smaller batch or context, or a chip with more SRAM")
    return best
