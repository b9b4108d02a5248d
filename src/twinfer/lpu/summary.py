"""Compile a model's prefill and decode steps onto an LPU system and summarise what users look at.

One partition plan serves both programs (sized for ``batch`` sequences of
``context`` tokens of KV cache); the summary holds the plan, SRAM use,
prefill time for a prompt, decode time per token, tokens/s per user, MXM
utilisation and where the per-token time goes. Used by ``twinfer compile``
and the validation benchmark.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from twinfer.lpu.chip import Chip, make_chip
from twinfer.lpu.cycles import CycleReport, report
from twinfer.lpu.ir import Program
from twinfer.lpu.layout import LayoutTrial, search_layouts
from twinfer.lpu.passes import compile_step
from twinfer.lpu.plan import Plan, kv_capacity_tokens, make_plan
from twinfer.lpu.step_cost import native_precision
from twinfer.lpu.system import System
from twinfer.lpu.token_loop import TokenLoopCosts, token_loop_costs
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec


@dataclass(frozen=True)
class CompiledModel:
    """Both compiled programs of a model on one LPU system, with their cycle reports."""

    model: ModelSpec
    chip: Chip
    plan: Plan
    prefill: Program
    decode: Program
    prefill_report: CycleReport
    decode_report: CycleReport
    compile_seconds: float
    layouts: tuple[LayoutTrial, ...] = ()  # every tensor split x stages the layout search costed (chips given)

    @property
    def host_overhead_s(self) -> float:
        """Per-step host I/O the groqflow estimator adds (2 x 10 us PCIe), outside the chip schedule."""
        return self.chip.params.host_overhead_s

    def loop_costs(self, phase: str) -> TokenLoopCosts:
        """Sampling, token return, sync and host costs around the ``phase`` program (:mod:`twinfer.lpu.token_loop`)."""
        prog = self.decode if phase == "decode" else self.prefill
        tokens = prog.batch if phase == "decode" else prog.batch * prog.seq_len
        return token_loop_costs(self.chip, System(self.chip, self.plan.num_chips), self.plan,
                                vocab=self.model.vocab_size, seqs=prog.batch, tokens_in=tokens,
                                decode=phase == "decode")

    @property
    def per_token_latency_s(self) -> float:
        """Decode time per token: the compiled step plus its loop costs."""
        return self.decode_report.latency_s + self.loop_costs("decode").seconds(self.chip.spec.clock_hz)

    @property
    def ttft_s(self) -> float:
        """Time to the first token of a prompt: the compiled prefill plus its loop costs (no network)."""
        return self.prefill_report.latency_s + self.loop_costs("prefill").seconds(self.chip.spec.clock_hz)

    def to_dict(self) -> dict[str, Any]:
        """Everything the CLI prints, as plain JSON values."""
        d = self.decode_report
        p = self.prefill_report
        per_token = self.per_token_latency_s
        clock = self.chip.spec.clock_hz
        used = [b for b in self.decode.sram_bytes_per_chip if b > 0]
        return {
            "model": self.model.name,
            "hardware": self.chip.spec.name,
            "weight_dtype": self.decode.weight_dtype,
            "chips": self.plan.num_chips,
            "chips_used": self.plan.chips_used,
            "tensor_split": self.plan.tp,
            "pipeline_stages": len(self.plan.stages),
            "stages": [
                {"stage": s.index, "chips": [s.chips[0], s.chips[-1]], "blocks": self._blocks(s.first_block, s.last_block)}
                for s in self.plan.stages
            ],
            "sram_bytes_per_chip": {"min": min(used), "mean": sum(used) / len(used), "max": max(used),
                                    "usable": self.chip.usable_sram_bytes},
            "kv_capacity_tokens": kv_capacity_tokens(
                self.model, self.chip, self.plan,
                Precision(weights=self.decode.weight_dtype, activations=self.decode.activation_dtype,
                          kv_cache=self.decode.activation_dtype)),
            "ttft_s": self.ttft_s,
            "batch": self.decode.batch,
            "context": self.decode.seq_len,
            "prompt": self.prefill.seq_len,
            "decode_step_s": d.latency_s,
            "decode_step_cycles": d.cycles,
            "per_token_latency_s": per_token,
            "tokens_per_s_per_user": 1.0 / per_token,
            "tokens_per_s_system": self.decode.batch / per_token,
            "prefill_s": self.ttft_s,
            "prefill_cycles": p.cycles,
            "prefill_chunk": self.prefill.get_meta("prefill_chunk", 0),
            "host_overhead_s": self.host_overhead_s,
            "decode_loop_s": self.loop_costs("decode").as_dict(clock),
            "mxm_utilisation_decode": d.mxm_utilisation,
            "mxm_utilisation_prefill": p.mxm_utilisation,
            "decode_attribution_cycles": dict(d.attribution_cycles),
            "decode_c2c_hops_on_critical_path": d.c2c_hops_on_path,
            "instructions": {"prefill": len(self.prefill.instrs), "decode": len(self.decode.instrs)},
            "compile_seconds": self.compile_seconds,
            "layouts_tried": [{"tensor_split": t.tp, "pipeline_stages": t.stages, "chips_used": t.chips_used,
                               "per_token_latency_s": t.per_token_latency_s,
                               "tokens_per_s_per_user": t.tokens_per_s_per_user,
                               "instructions_est": t.instructions_est, "within_budget": t.within_budget,
                               "expert_group_chips": t.ep}
                              for t in self.layouts],
            "chip_params": {k: v for k, v in asdict(self.chip.params).items() if k != "sources"},
            "activation_dtype": self.decode.activation_dtype,
        }

    def _blocks(self, a: int, b: int) -> str:
        n = self.model.num_layers

        def name(x: int) -> str:
            return "embed" if x == 0 else ("head" if x == n + 1 else f"L{x - 1}")

        return name(a) if a == b else f"{name(a)}..{name(b)}"


def compile_model(model: ModelSpec, hardware: str | Any, *, chips: int | None, batch: int = 1,
                  context: int | None = None, prompt: int | None = None, weights: str | None = None,
                  chip: Chip | None = None, prefill_chunk: int | None = None) -> CompiledModel:
    """Compile prefill (``batch`` prompts of ``prompt`` tokens) and decode (``batch`` at ``context``) onto one system.

    ``weights`` defaults to the chip's native precision (activations and KV
    cache too); a given weight dtype keeps the chip's native activations.
    ``prefill_chunk`` cuts a batch-1 prompt into chunks pipelined across the stages.
    With ``chips`` given the layout (tensor split x stages) is the one with the
    lowest per-token latency (:func:`twinfer.lpu.layout.search_layouts`).
    """
    import time

    t0 = time.perf_counter()
    ch = chip or make_chip(hardware)
    ctx = context or min(model.max_position_embeddings, 4096)
    pr = min(prompt or min(550, ctx), ctx)
    native = native_precision(ch.spec)
    prec = native if weights is None else Precision(weights=weights, activations=native.activations,
                                                    kv_cache=native.kv_cache)
    layouts: tuple[LayoutTrial, ...] = ()
    if chips is None:
        plan = make_plan(model, ch, prec, chips=chips, batch=batch, ctx=ctx, tokens=batch)
    else:
        plan, layouts = search_layouts(model, ch, prec, chips=chips, batch=batch, ctx=ctx, tokens=batch)
    system = System(ch, plan.num_chips)
    dec = compile_step(model, system, phase="decode", batch=batch, seq_len=ctx, precision=prec, plan=plan).program
    pre = compile_step(model, system, phase="prefill", batch=batch, seq_len=pr, precision=prec, plan=plan,
                       prefill_chunk=prefill_chunk).program
    secs = time.perf_counter() - t0
    return CompiledModel(model=model, chip=ch, plan=plan, prefill=pre, decode=dec, prefill_report=report(pre, ch),
                         decode_report=report(dec, ch), compile_seconds=secs, layouts=layouts)
