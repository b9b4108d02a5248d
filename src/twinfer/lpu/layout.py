"""Layout search: for a chip count, the tensor split x pipeline depth with the lowest per-token latency.

Every tensor split that divides the model's heads (wider than a node only in
whole nodes, reduced hierarchically over the global ports) and fits the
chips' SRAM is a candidate; each is costed with the closed-form step model
(:class:`~twinfer.lpu.step_cost.AnalyticLpu`, per-token loop costs included)
at a decode of ``batch`` sequences of ``ctx`` tokens. Wider splits cut each
layer's weight-install time and the number of pipeline stages but pay more
all-reduce steps and cross-node hops; the search reports every layout it
tried so the trade-off is visible.

Instructions grow with the square of the split (every all-reduce step is an
explicit send, receive and add per chip pair), so the search only chooses
layouts whose estimated program stays within ``max_instructions`` (default
:data:`MAX_INSTRUCTIONS`, which keeps a 70B model on 576 chips compiling in
seconds); wider ones are still costed and listed, marked over the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from twinfer.errors import CapacityError, ConfigError
from twinfer.lpu.analytic import AnalyticLpu
from twinfer.lpu.chip import Chip
from twinfer.lpu.experts import ep_candidates
from twinfer.lpu.plan import MoePlan, Plan, make_plan, tp_candidates
from twinfer.lpu.system import System
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape

#: Default instruction budget per program for the layouts the search may choose.
MAX_INSTRUCTIONS = 200_000


def _allreduce_instructions(tp: int, n: int) -> int:
    """Instructions of one all-reduce over ``tp`` chips (flat inside a node, hierarchical across nodes)."""
    def flat(g: int) -> int:  # splits + (send, recv) pairs + adds for the reduce-scatter, then the all-gather
        return g * g + 3 * g * (g - 1) + 2 * g * (g - 1) + g

    if tp <= 1:
        return 0
    if n < 2 or tp <= n or tp % n:
        return flat(tp)
    k = tp // n
    return k * flat(n) + n * k * (k - 1) * 3


def estimated_instructions(layers: int, tp: int, stages: int, chips_per_node: int) -> int:
    """Rough instruction count of a decode program: two all-reduces and ~12 ops per chip per layer, plus hand-offs."""
    per_layer = 2 * _allreduce_instructions(tp, chips_per_node) + 12 * tp
    return layers * per_layer + stages * 4 * tp


@dataclass(frozen=True)
class LayoutTrial:
    """One layout the search costed."""

    tp: int
    stages: int
    chips_used: int
    per_token_latency_s: float  # analytic decode step + per-token loop costs
    instructions_est: int  # estimated instructions of one decode program
    within_budget: bool  # the search may choose it (instructions_est <= the budget)
    ep: int = 0  # chips per expert group of a MoE layout (0: a dense model)

    @property
    def tokens_per_s_per_user(self) -> float:
        """1 / per-token latency."""
        return 1.0 / self.per_token_latency_s


def candidate_plans(model: ModelSpec, chip: Chip, precision: Precision, *, chips: int, batch: int, ctx: int,
                    tokens: int) -> list[tuple[Plan, int]]:
    """Every layout that fits ``chips`` chips, with its estimated decode-program instructions.

    Dense models: one plan per tensor split. MoE models: one per tensor split
    inside a node and expert-group width (wider groups split each expert over
    more chips: less work on the busiest chip, more dispatch traffic).
    """
    out = []
    n = chip.spec.chips_per_node
    moe = model.moe
    for tp in tp_candidates(model, min(chips, n) if moe is not None else chips, n):
        widths: list[int | None] = [None]
        if moe is not None:
            widths = list(ep_candidates(moe.num_experts, tp, max(moe.num_experts * 8, tp)))
        for ep in widths:
            try:
                plan = make_plan(model, chip, precision, chips=chips, batch=batch, ctx=ctx, tokens=tokens, tp=tp, ep=ep)
            except (CapacityError, ConfigError):
                continue
            est = estimated_instructions(model.num_layers, tp, len(plan.stages), n)
            if moe is not None and ep is not None:  # per MoE layer and expert chip: send, recv, router, experts, send, recv
                est += (model.num_layers - moe.first_dense_layers) * 6 * ep
            out.append((plan, est))
    return out


def search_layouts(model: ModelSpec, chip: Chip, precision: Precision, *, chips: int, batch: int, ctx: int,
                   tokens: int, max_instructions: int = MAX_INSTRUCTIONS) -> tuple[Plan, tuple[LayoutTrial, ...]]:
    """The fastest plan within the instruction budget on ``chips`` chips, and every layout tried (fastest first)."""
    best: tuple[float, int, int, Plan] | None = None
    trials = []
    shape = StepShape.decode([max(1, ctx)] * batch)
    for plan, est in candidate_plans(model, chip, precision, chips=chips, batch=batch, ctx=ctx, tokens=tokens):
        t = AnalyticLpu(model, System(chip, chips), plan, precision).step_seconds(shape)
        ok = est <= max_instructions
        ep = plan.ep if isinstance(plan, MoePlan) else 0
        trials.append(LayoutTrial(tp=plan.tp, stages=len(plan.stages), chips_used=plan.chips_used,
                                  per_token_latency_s=t, instructions_est=est, within_budget=ok, ep=ep))
        if ok and (best is None or (t, plan.tp, ep) < best[:3]):
            best = (t, plan.tp, ep, plan)
    if best is None:  # nothing fits: make_plan's error names the chips needed
        return make_plan(model, chip, precision, chips=chips, batch=batch, ctx=ctx, tokens=tokens), tuple(trials)
    return best[3], tuple(sorted(trials, key=lambda x: (x.per_token_latency_s, x.tp, x.ep)))
