"""The step cost of a speculative pool: the target's verify step plus the drafter's proposals, on the same devices.

A speculative decode step of ``n`` sequences reaches the backend as a
:class:`~twinfer.models.step.StepShape` with ``decode_extra_tokens = n * k``
(``k + 1`` query rows per sequence: its last sampled token and ``k``
drafts), which GPU and LPU backends price as one verify step. Before it the
drafter proposes the ``k`` drafts, serially, on the same devices:

* ``draft``: ``k`` decode steps of the draft model (its own step-cost model,
  same hardware preset and parallelism), at contexts growing by one per
  proposal; the first also prefills the step's prompt chunks, so the
  drafter's KV of every prompt exists;
* ``mtp`` / ``eagle``: ``k`` passes of a head about one decoder layer of the
  target: ``1 / num_layers`` of the target's plain decode step each (the
  convention of :func:`twinfer.perf.speculative.draft_time_s`).

Left out, and said where it is reported: the drafter's weights and KV do not
come out of the pool's KV capacity, and a drafter on other devices (it
would overlap with the verify step) is not modelled.
"""

from __future__ import annotations

from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources, StepCostModel
from twinfer.perf.speculative import SpeculativeConfig


class SpeculativeStepCost:
    """A :class:`StepCostModel` adding the drafter's time to every step of a speculative pool (module docstring).

    ``draft`` is the draft model's step-cost model (method ``draft``) or, for
    MTP / EAGLE heads, the fraction of the target's plain decode step one
    proposal costs.
    """

    #: Speculative steps are priced one by one (tokens per step vary), so no closed-form decode ramp.
    decode_run_affine = None

    def __init__(self, target: StepCostModel, cfg: SpeculativeConfig, draft: StepCostModel | float) -> None:
        self.target = target
        self.cfg = cfg
        self.draft = draft
        self._target_time = target.step_time_s

    def step_time_s(self, shape: StepShape) -> float:
        """The verify (or prefill) step on the target plus the drafter's ``k`` proposals for its decode members."""
        t = self._target_time(shape)
        return t + self.draft_time_s(shape)

    def draft_time_s(self, shape: StepShape) -> float:
        """Seconds the drafter spends on ``shape``'s sequences before the target's step."""
        n = shape.decode_seqs
        plain_ctx = shape.decode_context_tokens - shape.decode_extra_tokens  # contexts up to the last sampled token
        draft = self.draft
        if isinstance(draft, int | float):
            if not n:
                return 0.0
            return self.cfg.k * draft * self._target_time(StepShape(decode_seqs=n, decode_context_tokens=plain_ctx))
        prefill = StepShape(shape.prefill_tokens, shape.prefill_seqs, shape.prefill_attn_pairs, shape.prefill_kv_tokens)
        if not n:
            return draft.step_time_s(prefill) if shape.prefill_seqs else 0.0
        total = 0.0
        for i in range(self.cfg.k):
            proposal = StepShape(decode_seqs=n, decode_context_tokens=plain_ctx + n * i)
            total += draft.step_time_s(prefill + proposal if i == 0 else proposal)
        return total

    def resources(self) -> InstanceResources:
        """The target's resources (the drafter's memory is not charged; see the module docstring)."""
        return self.target.resources()

    def __getattr__(self, name: str):  # plans, explanations etc. of the target backend
        return getattr(self.target, name)
