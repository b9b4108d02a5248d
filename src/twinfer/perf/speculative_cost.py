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

A draft model's weights and its KV (one token of the drafter's per token of
the target's) come out of the instance's KV memory (:func:`draft_kv_capacity`).
Left out: the memory of MTP / EAGLE heads (about one layer), and a drafter
on other devices (it would overlap with the verify step).
"""

from __future__ import annotations

from dataclasses import replace

from twinfer.errors import ConfigError
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

    def __init__(self, target: StepCostModel, cfg: SpeculativeConfig, draft: StepCostModel | float,
                 kv_capacity_tokens: int | None = None) -> None:
        self.target = target
        self.cfg = cfg
        self.draft = draft
        self._target_time = target.step_time_s
        res = target.resources()
        self._resources = res if kv_capacity_tokens is None else replace(res, kv_capacity_tokens=kv_capacity_tokens)

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
        """The target's resources, with the KV capacity left beside a draft model (see the module docstring)."""
        return self._resources

    def __getattr__(self, name: str):  # plans, explanations etc. of the target backend
        return getattr(self.target, name)


def draft_kv_capacity(kv_capacity_tokens: int, target_kv_bytes_per_token: float, draft_weight_bytes: float,
                      draft_kv_bytes_per_token: float, where: str = "speculative.draft_model") -> int:
    """Tokens of KV an instance holds beside a draft model: its weights and its KV share the target's KV memory.

    The target's KV memory is ``kv_capacity_tokens x target_kv_bytes_per_token``
    (whole instance); the drafter's weights come off it, and each token then
    needs the target's KV and the drafter's.
    """
    free = kv_capacity_tokens * target_kv_bytes_per_token - draft_weight_bytes
    tokens = int(free // (target_kv_bytes_per_token + draft_kv_bytes_per_token)) if free > 0 else 0
    if tokens < 1:
        raise ConfigError(f"{where}: the draft model's weights ({draft_weight_bytes / 1e9:.1f} GB) do not fit in the "
                          f"{kv_capacity_tokens * target_kv_bytes_per_token / 1e9:.1f} GB of KV memory left beside the "
                          "target on this pool's devices; use a smaller drafter, mtp/eagle heads, or more devices")
    return tokens
