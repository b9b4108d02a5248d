"""The step cost of a speculative pool: the target's verify step plus the drafter's proposals.

A speculative decode step of ``n`` sequences reaches the backend as a
:class:`~twinfer.models.step.StepShape` with ``decode_extra_tokens = n * k``
(``k + 1`` query rows per sequence: its last sampled token and ``k``
drafts), which GPU and LPU backends price as one verify step. Before it the
drafter proposes the ``k`` drafts, serially, on the same devices or on
devices of its own:

* ``draft``: ``k`` decode steps of the draft model (its own step-cost model,
  on the target's hardware preset and parallelism or on its own), at contexts growing by one per
  proposal; the first also prefills the step's prompt chunks, so the
  drafter's KV of every prompt exists;
* ``mtp`` / ``eagle``: ``k`` passes of a head about one decoder layer of the
  target: ``1 / num_layers`` of the target's plain decode step each (the
  convention of :func:`twinfer.perf.speculative.draft_time_s`).

On the same devices, a draft model's weights and its KV (one token of the
drafter's per token of the target's) come out of the instance's KV memory
(:func:`draft_kv_capacity`). On devices of its own
(:class:`~twinfer.perf.speculative.SeparateDrafter`,
``speculative.draft_devices``) the drafter keeps its memory there, so the
instance holds as many tokens as the smaller of the two caches; its devices'
price and power join the instance's; and every step pays up to two
transfers over the link between them: the ``k`` drafts of each sequence to
the target, and the ``k + 1`` verified tokens back (4-byte token ids; the
step's prompt chunks travel with the second). Drafter and target wait for each
other (the drafts need the last verified token, the verify needs the drafts),
so with one batch in flight nothing overlaps.
Left out: the memory of MTP / EAGLE heads (about one layer).
"""

from __future__ import annotations

from dataclasses import replace

from twinfer.errors import ConfigError
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources, StepCostModel
from twinfer.perf.speculative import SeparateDrafter, SpeculativeConfig


class SpeculativeStepCost:
    """A :class:`StepCostModel` adding the drafter's time to every step of a speculative pool (module docstring).

    ``draft`` is the draft model's step-cost model (method ``draft``) or, for
    MTP / EAGLE heads, the fraction of the target's plain decode step one
    proposal costs. ``separate`` describes a draft model on devices of its
    own (None: on the target's).
    """

    #: Speculative steps are priced one by one (tokens per step vary), so no closed-form decode ramp.
    decode_run_affine = None

    def __init__(self, target: StepCostModel, cfg: SpeculativeConfig, draft: StepCostModel | float,
                 kv_capacity_tokens: int | None = None, separate: SeparateDrafter | None = None) -> None:
        if separate is not None and isinstance(draft, int | float):
            raise ConfigError("speculative.draft_devices: only a draft model runs on devices of its own")
        self.target = target
        self.cfg = cfg
        self.draft = draft
        self.separate = separate
        self._target_time = target.step_time_s
        res = target.resources()
        if kv_capacity_tokens is not None:
            res = replace(res, kv_capacity_tokens=kv_capacity_tokens)
        self._resources = res if separate is None else _beside(res, separate.resources)

    def step_time_s(self, shape: StepShape) -> float:
        """The verify (or prefill) step on the target plus the drafter's ``k`` proposals for its decode members."""
        t = self._target_time(shape) + self.draft_time_s(shape)
        if self.separate is not None:
            t += self.separate.handoff_s(shape.decode_seqs, shape.prefill_tokens, self.cfg.k)
        return t

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
        """The target's resources with the KV capacity left beside a draft model, plus the drafter's own devices."""
        return self._resources

    def __getattr__(self, name: str):  # plans, explanations etc. of the target backend
        return getattr(self.target, name)


def _beside(target: InstanceResources, drafter: InstanceResources) -> InstanceResources:
    """One instance of a target and its drafter's devices: both caches must hold every token, both are paid for."""
    return replace(
        target,
        hardware=f"{target.hardware}+{drafter.hardware}",
        num_devices=target.num_devices + drafter.num_devices,
        kv_capacity_tokens=min(target.kv_capacity_tokens, drafter.kv_capacity_tokens),
        max_batch_seqs=min(target.max_batch_seqs, drafter.max_batch_seqs),
        price_per_hour_usd=target.price_per_hour_usd + drafter.price_per_hour_usd,
        power_idle_w=target.power_idle_w + drafter.power_idle_w,
        power_max_w=target.power_max_w + drafter.power_max_w,
    )


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
