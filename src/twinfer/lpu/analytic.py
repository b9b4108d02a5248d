"""AnalyticLpu: closed-form step cycles of a compiled LPU plan, for the simulator and the layout search.

The simulator asks for step times millions of times, so this sums the same
closed-form chip costs the compiler uses along the chain the compiled schedule
follows: per layer the norms, the row-split and column-split matmuls on the
MXM (or DeepSeek's latent attention), the attention, a dense FFN or a MoE FFN
(dispatch to the expert chips, router, the busiest expert chip, combine; shared
experts on the stage meanwhile), and two all-reduces over the stage's direct
links; between stages the activation hand-off; then embedding and LM head.
Tests check it against full compiled schedules (tests/lpu/test_analytic.py
states the tolerance).
"""

from __future__ import annotations

import math
from dataclasses import replace

from twinfer.lpu.chip import Chip
from twinfer.lpu.experts import expert_shards
from twinfer.lpu.moe_costs import experts_cycles, mla_attention_cycles, router_cycles
from twinfer.lpu.plan import MoePlan, Plan, kv_heads_local
from twinfer.lpu.system import System
from twinfer.lpu.token_loop import TokenLoopCosts, token_loop_costs
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.units import dtype_bytes

#: a MoE layer's (expert-group chips, most hops to an expert chip, whether a dispatch leaves the stage's node)
_MoeGroup = tuple[int, int, bool]
#: layers per (tensor split, cross-node hops, MoE group or None), hand-offs per (tp, next tp), hops, first and last tp
_Structure = tuple[dict[tuple[int, int, "_MoeGroup | None"], int], dict[tuple[int, int], int], int, int, int]


def _attention_parts(shape: StepShape) -> list[tuple[int, int, int, int]]:
    """(rows, sequences, query rows per sequence, keys per sequence) of a step's prefill and decode attention."""
    parts = []
    if shape.prefill_seqs:
        parts.append((shape.prefill_tokens, shape.prefill_seqs, max(1, shape.prefill_tokens // shape.prefill_seqs),
                      max(1, shape.prefill_kv_tokens // shape.prefill_seqs)))
    if shape.decode_seqs:
        parts.append((shape.decode_seqs + shape.decode_extra_tokens, shape.decode_seqs,
                      1 + shape.decode_extra_tokens // shape.decode_seqs,
                      max(1, shape.decode_context_tokens // shape.decode_seqs)))
    return parts


class AnalyticLpu:
    """Closed-form step cycles for a plan: the compiled schedule's critical chain, summed."""

    def __init__(self, model: ModelSpec, system: System, plan: Plan, precision: Precision) -> None:
        self.m, self.sys, self.plan, self.prec = model, system, plan, precision
        self.chip: Chip = system.chip
        self._struct: _Structure | None = None

    def with_chip(self, chip: Chip) -> AnalyticLpu:
        """The same model and plan on ``chip`` (e.g. other parameters), reusing the plan's structure."""
        out = AnalyticLpu(self.m, replace(self.sys, chip=chip), self.plan, self.prec)
        out._struct = self._structure()
        return out

    def _allreduce(self, rows: int, width: int, tp: int, cross_hops: int = 0) -> int:
        """Cycles of the all-reduce the partition pass emits (flat in a node, hierarchical across nodes)."""
        c = self.chip
        if tp == 1:
            return 0
        n = self.sys.chips_per_node
        hier = not (n < 2 or tp <= n or tp % n)
        group = n if hier else tp
        chunk = math.ceil(width / group)
        byte = dtype_bytes(self.prec.activations)
        xfer = c.c2c_cycles(int(rows * chunk * byte)) + c.hop_latency_cycles * self.sys.topology.hops_same_node
        splits = group * c.sxm_cycles(rows * chunk)
        adds = (group - 1) * c.vxm_cycles(rows * chunk, 1)
        cross = 0
        if hier:
            others = tp // n - 1
            global_ports = max(1, c.spec.c2c_links - (n - 1))
            cross = ((c.c2c_cycles(int(rows * chunk * byte)) + c.params.cross_node_sync_cycles)
                     * math.ceil(others / global_ports)
                     + c.hop_latency_cycles * cross_hops + others * c.vxm_cycles(rows * chunk, 1))
        return splits + xfer + adds + cross + xfer + c.sxm_cycles(rows * width)

    def _attention(self, shape: StepShape, heads: int, kvh: int) -> int:
        c, hd, act = self.chip, self.m.head_dim, self.prec.activations
        total = 0
        if shape.prefill_seqs:
            q = max(1, shape.prefill_tokens // shape.prefill_seqs)
            ctx = max(1, shape.prefill_kv_tokens // shape.prefill_seqs)
            total += c.attention_cycles(batch=shape.prefill_seqs, q_rows=q, ctx=ctx, heads=heads, kv_heads=kvh,
                                        head_dim=hd, act_dtype=act)
        if shape.decode_seqs:
            ctx = max(1, shape.decode_context_tokens // shape.decode_seqs)
            q = 1 + shape.decode_extra_tokens // shape.decode_seqs  # k + 1 rows when verifying k drafts
            total += c.attention_cycles(batch=shape.decode_seqs, q_rows=q, ctx=ctx, heads=heads, kv_heads=kvh,
                                        head_dim=hd, act_dtype=act)
        return total

    def layer_cycles(self, shape: StepShape, tp: int, cross_hops: int = 0, moe: _MoeGroup | None = None) -> int:
        """One decoder layer on a ``tp``-chip stage (``cross_hops``: hops between its nodes, when it spans several).

        ``moe`` = (expert-group chips, dispatch hops, whether the dispatch leaves the stage's node) for a MoE
        layer, None for a dense FFN.
        """
        m, c = self.m, self.chip
        t, h = shape.total_tokens, m.hidden_size
        norm = c.vxm_cycles(t * h, c.params.vxm_ops_rmsnorm)
        add = c.vxm_cycles(t * h, 1)
        ar = self._allreduce(t, h, tp, cross_hops)
        attn = self._mla_half(shape, tp) if m.mla is not None else self._gqa_half(shape, tp)
        ffn = self._dense_ffn(t, tp) if moe is None else self._moe_ffn(shape, tp, *moe)
        return norm + attn + ar + add + norm + ffn + ar + add

    def _gqa_half(self, shape: StepShape, tp: int) -> int:
        """q, k, v (rope on k hidden under v), attention and o of a Llama-style layer on one chip of the stage."""
        m, c, wd, ad = self.m, self.chip, self.prec.weights, self.prec.activations
        t, h, hd = shape.total_tokens, m.hidden_size, m.head_dim
        ql, kvl = m.num_attention_heads // tp * hd, kv_heads_local(m, tp) * hd
        q, k, v = c.matmul_cycles(t, h, ql, wd, ad), c.matmul_cycles(t, h, kvl, wd, ad), c.matmul_cycles(t, h, kvl, wd, ad)
        rope_k = c.vxm_cycles(t * kvl, c.params.vxm_ops_rope)
        attn = self._attention(shape, m.num_attention_heads // tp, kv_heads_local(m, tp))
        return q + k + v + max(0, rope_k - v) + attn + c.matmul_cycles(t, ql, h, wd, ad)

    def _mla_half(self, shape: StepShape, tp: int) -> int:
        """DeepSeek's latent attention on one chip: replicated q/kv down-projections, head-split q_b, attention, o."""
        m, c, wd, ad = self.m, self.chip, self.prec.weights, self.prec.activations
        mla = m.mla
        assert mla is not None
        t, h, nh = shape.total_tokens, m.hidden_size, m.num_attention_heads // tp
        qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        if mla.q_lora_rank:
            q = (c.matmul_cycles(t, h, mla.q_lora_rank, wd, ad) + c.vxm_cycles(t * mla.q_lora_rank, c.params.vxm_ops_rmsnorm)
                 + c.matmul_cycles(t, mla.q_lora_rank, nh * qk, wd, ad))
        else:
            q = c.matmul_cycles(t, h, nh * qk, wd, ad)
        kva = c.matmul_cycles(t, h, mla.kv_lora_rank + mla.qk_rope_head_dim, wd, ad)
        attn = 0
        for rows, batch, q_rows, ctx in _attention_parts(shape):
            attn += mla_attention_cycles(c, rows=rows, heads=nh, kv_lora_rank=mla.kv_lora_rank,
                                         qk_nope_head_dim=mla.qk_nope_head_dim, qk_rope_head_dim=mla.qk_rope_head_dim,
                                         v_head_dim=mla.v_head_dim, batch=batch, q_rows=q_rows, ctx=ctx, wd=wd, ad=ad)
        return q + kva + attn + c.matmul_cycles(t, nh * mla.v_head_dim, h, wd, ad)

    def _dense_ffn(self, t: int, tp: int) -> int:
        m, c, wd, ad = self.m, self.chip, self.prec.weights, self.prec.activations
        h, il = m.hidden_size, math.ceil(m.intermediate_size / tp)
        return (2 * c.matmul_cycles(t, h, il, wd, ad) + c.vxm_cycles(t * il, c.params.vxm_ops_silu_mul)
                + c.matmul_cycles(t, il, h, wd, ad))

    def _moe_ffn(self, shape: StepShape, tp: int, group_chips: int, hops: int, leaves_node: bool) -> int:
        """A MoE FFN (lpu.passes.partition_moe): dispatch to the expert chips, router and the busiest chip's
        experts there, combine back and add the parts; DeepSeek's shared experts run on the stage meanwhile.
        A dispatch and a combine that leave the node each pay ``cross_node_sync_cycles``."""
        m, c, wd, ad = self.m, self.chip, self.prec.weights, self.prec.activations
        moe = m.moe
        assert moe is not None
        t, h = shape.total_tokens, m.hidden_size
        per_chip = group_chips // tp
        (e0, e1), (i0, i1) = expert_shards(moe.num_experts, group_chips, 0, moe.expert_intermediate_size)
        move = (c.c2c_cycles(int(t * h * dtype_bytes(ad))) + hops * c.hop_latency_cycles
                + (c.params.cross_node_sync_cycles if leaves_node else 0))
        routed = (move + router_cycles(c, t, h, moe.num_experts, moe.experts_per_token, wd, ad)
                  + experts_cycles(c, t, h, moe.num_experts, moe.experts_per_token, e1 - e0, i1 - i0, wd, ad)
                  + move + (per_chip - 1) * c.vxm_cycles(t * h, 1))
        if not moe.num_shared_experts:
            return routed
        sl = math.ceil(moe.num_shared_experts * moe.expert_intermediate_size / tp)
        shared = (2 * c.matmul_cycles(t, h, sl, wd, ad) + c.vxm_cycles(t * sl, c.params.vxm_ops_silu_mul)
                  + c.matmul_cycles(t, sl, h, wd, ad))
        return max(routed, shared) + c.vxm_cycles(t * h, 1)

    def _structure(self) -> _Structure:
        """Plan facts that do not depend on the shape: layers per (tensor split, cross-node hops, MoE group),
        hand-offs, hops."""
        if self._struct is None:
            m, stages = self.m, self.plan.stages
            layers: dict[tuple[int, int, _MoeGroup | None], int] = {}
            handoffs: dict[tuple[int, int], int] = {}
            hops = 0
            for si, st in enumerate(stages):
                tp = len(st.chips)
                xh = self._cross_hops(st.chips)
                for b in range(max(1, st.first_block), min(st.last_block, m.num_layers) + 1):
                    key = (tp, xh, self._moe_group(b - 1, st.chips))
                    layers[key] = layers.get(key, 0) + 1
                if si + 1 < len(stages):
                    nxt = stages[si + 1]
                    hkey = (tp, len(nxt.chips))
                    handoffs[hkey] = handoffs.get(hkey, 0) + 1
                    hops += self.sys.hops(st.chips[0], nxt.chips[0])
            first = len(stages[0].chips)
            last = len(stages[-1].chips)
            self._struct = (layers, handoffs, hops, first, last)
        return self._struct

    def _moe_group(self, layer: int, stage_chips: tuple[int, ...]) -> _MoeGroup | None:
        """(expert-group chips, most hops from a stage chip to its expert chips, whether any of them lies in
        another node) of a MoE layer; None if dense. The chain costs the farthest expert chip's round trip
        with the cross-node sync when any leaves the node: the schedule's critical path whenever a route
        out of a node has at least as many hops as one inside it (true of every :class:`TopologyParams`
        whose ``hops_same_node`` is its smallest count)."""
        moe = self.m.moe
        if moe is None or layer < moe.first_dense_layers or not isinstance(self.plan, MoePlan):
            return None
        chips = self.plan.expert_group_of_layer(layer).chips
        tp, n = len(stage_chips), self.sys.chips_per_node
        pairs = [(stage_chips[j % tp], ec) for j, ec in enumerate(chips)]
        return len(chips), max(self.sys.hops(s, ec) for s, ec in pairs), any(s // n != ec // n for s, ec in pairs)

    def _cross_hops(self, chips: tuple[int, ...]) -> int:
        """Most hops between a chip and its counterpart in another node of the same stage (0 inside one node)."""
        n = self.sys.chips_per_node
        if n < 2 or len(chips) <= n or len(chips) % n:
            return 0
        return max(self.sys.hops(chips[j], chips[b + j]) for j in range(n) for b in range(n, len(chips), n))

    def step_cycles(self, shape: StepShape) -> int:
        """Cycles of one step of ``shape`` through every stage of the plan (same chain as the schedule)."""
        m, c, wd = self.m, self.chip, self.prec.weights
        t, h = shape.total_tokens, m.hidden_size
        byte = dtype_bytes(self.prec.activations)
        layers, handoffs, hops, tp0, tpl = self._structure()
        total = sum(n * self.layer_cycles(shape, tp, xh, moe) for (tp, xh, moe), n in layers.items())
        # Embedding on the first stage: gather a column shard, then all-gather it.
        total += c.mem_gather_cycles(t, math.ceil(h / tp0)) + self._gather(t, h, tp0)
        # LM head on the last stage: last rows (prefill), final norm, vocabulary-split matmul, gather.
        rows = shape.logit_rows
        if shape.prefill_tokens > shape.prefill_seqs:
            total += c.sxm_cycles(t * h)
        total += c.vxm_cycles(rows * h, c.params.vxm_ops_rmsnorm)
        vl = math.ceil(m.vocab_size / tpl)
        total += c.matmul_cycles(rows, h, vl, wd, self.prec.activations)
        if tpl > 1:
            total += c.c2c_cycles(int(rows * vl * byte)) + c.hop_latency_cycles + c.sxm_cycles(rows * m.vocab_size)
        # Stage hand-offs: each chip sends its 1/tp slice to its counterpart, the next stage all-gathers.
        for (tp, tp_next), n in handoffs.items():
            chunk = math.ceil(h / tp)
            total += n * (c.sxm_cycles(t * chunk) + c.c2c_cycles(int(t * chunk * byte)) + self._gather(t, h, tp_next))
        return total + hops * c.hop_latency_cycles

    def loop_costs(self, shape: StepShape) -> TokenLoopCosts:
        """Sampling, token return, sync and host costs of a step of ``shape`` (see :mod:`twinfer.lpu.token_loop`)."""
        return token_loop_costs(self.chip, self.sys, self.plan, vocab=self.m.vocab_size, seqs=shape.num_seqs,
                                tokens_in=shape.total_tokens, decode=shape.decode_seqs > 0)

    def step_seconds(self, shape: StepShape) -> float:
        """Wall time of one step: the layer chain plus the per-token loop costs."""
        return self.step_cycles(shape) / self.chip.spec.clock_hz + self.loop_costs(shape).seconds(self.chip.spec.clock_hz)

    def _gather(self, rows: int, width: int, tp: int) -> int:
        if tp == 1:
            return 0
        c = self.chip
        chunk = math.ceil(width / tp)
        byte = dtype_bytes(self.prec.activations)
        return (c.c2c_cycles(int(rows * chunk * byte)) + c.hop_latency_cycles * self.sys.topology.hops_same_node
                + c.sxm_cycles(rows * width))
