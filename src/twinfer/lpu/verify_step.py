"""Speculative decoding on an LPU system: a compiled verify program and the speed a user sees with it.

The verify program checks ``k + 1`` positions per sequence (the last sampled
token and ``k`` drafts) against the cached context: the ``verify`` phase of
the compiler (:func:`twinfer.lpu.passes.lower.lower`), a short prefill chunk
at the end of the context with logits at every row. It is compiled on the
decode program's plan and context, so the two read the same weights and KV.
The simulator's LPU backend prices a speculative pool's step
(``StepShape.decode(..., tokens_per_seq=k + 1)``) at exactly this program's
schedule cycles (tests/lpu/test_verify_step.py).

Per iteration the system runs the drafter's ``k`` proposals, then the verify
program and its token loop (sampling every row, returning up to ``k + 1``
tokens); a user gets ``E[tokens]`` = 1 + a_1 + a_1 a_2 + ... tokens from it
(:func:`twinfer.perf.speculative.expected_tokens_per_step`). The drafter is
an MTP / EAGLE head on the same chips: one proposal costs one decoder
layer's share (``1 / num_layers``) of the compiled decode step, the
convention of :mod:`twinfer.perf.speculative`. A separate draft model would
need its own SRAM and is priced by ``twinfer estimate --draft-model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twinfer.errors import ConfigError
from twinfer.lpu.cycles import CycleReport, report
from twinfer.lpu.ir import Program
from twinfer.lpu.passes import compile_step
from twinfer.lpu.summary import CompiledModel
from twinfer.lpu.system import System
from twinfer.lpu.token_loop import TokenLoopCosts, token_loop_costs
from twinfer.models.ops import Precision
from twinfer.perf.speculative import SpeculativeConfig, expected_tokens_per_step


@dataclass(frozen=True)
class CompiledVerify:
    """A compiled verify program of ``k + 1`` positions per sequence, its cycle report and token-loop costs."""

    program: Program
    report: CycleReport
    loop: TokenLoopCosts
    clock_hz: float

    @property
    def verify_tokens(self) -> int:
        """Positions checked per sequence (k + 1)."""
        return int(self.program.get_meta("verify_tokens", 1))

    @property
    def latency_s(self) -> float:
        """One verify step: the compiled program plus sampling every row, returning the tokens, sync and host."""
        return self.report.latency_s + self.loop.seconds(self.clock_hz)


def compile_verify(cm: CompiledModel, k: int) -> CompiledVerify:
    """Compile the verify step of ``k`` drafts on ``cm``'s plan, at its decode context and batch."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"--speculative-k: tokens proposed per step must be an integer >= 1, got {k!r}")
    dec = cm.decode
    if k + 1 > dec.seq_len:
        raise ConfigError(f"--speculative-k {k}: a verify step of {k + 1} positions does not fit a context of "
                          f"{dec.seq_len} tokens; raise --context or lower k")
    system = System(cm.chip, cm.plan.num_chips)
    prec = Precision(weights=dec.weight_dtype, activations=dec.activation_dtype, kv_cache=dec.activation_dtype)
    prog = compile_step(cm.model, system, phase="verify", batch=dec.batch, seq_len=dec.seq_len, precision=prec,
                        plan=cm.plan, verify_tokens=k + 1).program
    rows = dec.batch * (k + 1)
    loop = token_loop_costs(cm.chip, system, cm.plan, vocab=cm.model.vocab_size, seqs=rows, tokens_in=rows,
                            decode=True)
    return CompiledVerify(program=prog, report=report(prog, cm.chip), loop=loop, clock_hz=cm.chip.spec.clock_hz)


def speculative_effect(cm: CompiledModel, verify: CompiledVerify, cfg: SpeculativeConfig) -> dict[str, Any]:
    """Tokens/s per user with speculation against plain decoding, with every term (JSON values)."""
    if cfg.k + 1 != verify.verify_tokens:
        raise ConfigError(f"the verify program checks {verify.verify_tokens} positions, the config proposes k={cfg.k}")
    head_s = cm.decode_report.latency_s / cm.model.num_layers  # one decoder layer's share of the compiled step
    draft_s = cfg.k * head_s
    tokens = expected_tokens_per_step(cfg)
    iteration_s = draft_s + verify.latency_s
    plain_s = cm.per_token_latency_s
    return {
        "method": cfg.method, "k": cfg.k, "acceptance": list(cfg.acceptance),
        "verify_step_s": verify.latency_s, "verify_step_cycles": verify.report.cycles,
        "verify_instructions": len(verify.program.instrs),
        "draft_s": draft_s, "draft_assumption": f"{cfg.method} head: 1/{cm.model.num_layers} of the compiled "
                                                "decode step per proposal, on the same chips",
        "tokens_per_step": tokens, "time_per_token_s": iteration_s / tokens,
        "tokens_per_s_per_user": tokens / iteration_s, "plain_tokens_per_s_per_user": 1.0 / plain_s,
        "speedup": plain_s * tokens / iteration_s,
        "verify_over_decode_cycles": verify.report.cycles / cm.decode_report.cycles,
    }
