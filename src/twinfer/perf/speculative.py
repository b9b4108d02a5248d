"""Speculative decoding: tokens per verify step (closed form and seeded draws) and the time per output token.

A drafter proposes ``k`` tokens; the target model checks all of them in one
*verify* step over ``k + 1`` positions and keeps the longest accepted prefix
plus one token of its own (the correction, or the bonus token when all ``k``
pass). With ``a_i`` the probability that proposal ``i`` is accepted given
that proposals ``1 .. i-1`` were, a verify step yields

    E[tokens] = 1 + a_1 + a_1 a_2 + ... + a_1 ... a_k

tokens, which for one acceptance rate ``a`` at every position is
``(1 - a^(k+1)) / (1 - a)`` (Leviathan et al., "Fast Inference from
Transformers via Speculative Decoding", ICML 2023, eq. 1). Drafters:
``draft`` (a smaller model run ``k`` times), ``mtp`` (DeepSeek-V3's
multi-token-prediction module) and ``eagle`` (EAGLE heads); the last two are
about one decoder layer of the target per proposed token.

Time per output token = (draft time + verify time) / E[tokens]. The verify
step is priced by a backend's ``step_time_s`` on the existing
:class:`~twinfer.models.step.StepShape` as a decode step of ``k + 1`` query
rows on top of each sequence's cache (:func:`verify_shape`, the shape the
simulator runs), so GPU and LPU price it with their own models. What this closed form leaves out: the drafter's
catch-up on accepted tokens, its memory, and logits at every verified
position (a step prices the LM head once per sequence). A drafter on devices
of its own (:class:`DraftDevices`) adds the hand-off of token ids over the
link between them (:class:`SeparateDrafter`).

In the simulator a mixed or decode pool with ``speculative:`` (parsed by
:meth:`SpeculativeConfig.from_dict`) runs one verify step of ``k + 1``
query rows per sequence per iteration
(:mod:`twinfer.sim.speculative_batch`), adds the drafter
(:mod:`twinfer.perf.speculative_cost`), and advances each request by tokens
drawn with :func:`draw_tokens_per_step` from its own seeded stream, so TPOT,
TBT and throughput count accepted tokens and runs stay deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinfer.errors import ConfigError
from twinfer.hardware.specs import LinkSpec
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape
from twinfer.perf.base import InstanceResources, StepCostModel

METHODS = ("draft", "mtp", "eagle")
#: Most drafts per verify step: a guard against absurd values (each is a query row per sequence), not a published limit.
MAX_K = 64


@dataclass(frozen=True)
class DraftDevices:
    """Devices of their own that run a draft model beside each target instance (``speculative.draft_devices``).

    GPUs: ``tp`` GPUs of ``hardware``; LPUs: ``chips`` chips (None: the
    fewest that hold the drafter). ``link`` names the link between drafter
    and target (None: :func:`~twinfer.hardware.specs.default_link_between`).
    ``precision``: the drafter's (None: the target pool's).
    """

    hardware: str
    tp: int = 1
    chips: int | None = None
    link: str | None = None
    precision: Precision | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str,
                  parse_precision: Callable[[Any, str], Precision] | None = None) -> DraftDevices:
        """Parse ``draft_devices: {hardware, tp, chips, link, precision}`` (``precision`` read by ``parse_precision``)."""
        if not isinstance(d, Mapping) or not isinstance(d.get("hardware"), str):
            raise ConfigError(f"{where}: expected a mapping with the drafter's hardware, e.g. "
                              f"{{hardware: h100, tp: 1}} or {{hardware: groq-tsp-v1, chips: 16}}; got {d!r}")
        keys = ("hardware", "tp", "chips", "link") + (("precision",) if parse_precision else ())
        unknown = set(d) - set(keys)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed keys are {', '.join(keys)}")
        tp, chips, link = d.get("tp", 1), d.get("chips"), d.get("link")
        if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
            raise ConfigError(f"{where}.tp: GPUs per drafter must be an integer >= 1, got {tp!r}")
        if chips is not None and (isinstance(chips, bool) or not isinstance(chips, int) or chips < 1):
            raise ConfigError(f"{where}.chips: LPU chips per drafter must be an integer >= 1, got {chips!r}")
        if link is not None and not isinstance(link, str):
            raise ConfigError(f"{where}.link: a link preset name (e.g. lpx-gpu, nvlink4), got {link!r}")
        precision = None
        if parse_precision is not None and d.get("precision") is not None:
            precision = parse_precision(d["precision"], f"{where}.precision")
        return cls(hardware=d["hardware"], tp=tp, chips=chips, link=link, precision=precision)

    def check(self, where: str, extra_hardware: Any = None) -> None:
        """The chip and link exist, and the size is given the way the chip is sized (GPUs: tp; LPUs: chips)."""
        from twinfer.errors import UnknownNameError
        from twinfer.hardware import get_hardware, get_link

        try:
            chip = get_hardware(self.hardware, extra_hardware)
            if self.link is not None:
                get_link(self.link, extra_hardware)
        except UnknownNameError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if chip.kind == "lpu" and self.tp != 1:
            raise ConfigError(f"{where}.tp: {self.hardware} is an LPU; size an LPU drafter with chips (or leave "
                              "them out for the fewest that hold the draft model)")
        if chip.kind != "lpu" and self.chips is not None:
            raise ConfigError(f"{where}.chips: {self.hardware} is a GPU; size a GPU drafter with tp")


TOKEN_ID_BYTES = 4  # an int32 token id


@dataclass(frozen=True)
class SeparateDrafter:
    """A drafter on devices of its own: what they offer, and the link to the target (module docstring)."""

    resources: InstanceResources  # the drafter's devices, KV capacity in drafter tokens
    link: LinkSpec

    def handoff_s(self, decode_seqs: int, prompt_tokens: int, k: int) -> float:
        """Seconds of one step's transfers: the drafts to the target, the verified tokens and prompts to the drafter."""
        to_target = self.link.transfer_time_s(TOKEN_ID_BYTES * decode_seqs * k) if decode_seqs else 0.0
        to_drafter = TOKEN_ID_BYTES * (decode_seqs * (k + 1) + prompt_tokens)
        return to_target + (self.link.transfer_time_s(to_drafter) if to_drafter else 0.0)


@dataclass(frozen=True)
class SpeculativeConfig:
    """How a pool speculates: drafter kind, tokens proposed per step, and their acceptance.

    ``acceptance[i]`` is the probability that proposal ``i + 1`` is accepted
    given that the ones before it were (one value per proposed position).
    """

    method: str  # draft | mtp | eagle
    k: int  # tokens proposed per verify step
    acceptance: tuple[float, ...]  # per position, length k
    draft_model: str | None = None  # the drafter's model preset (method "draft")
    draft_devices: DraftDevices | None = None  # None: the drafter runs on the target's devices

    @classmethod
    def build(cls, method: str, k: int, acceptance: float | Sequence[float], draft_model: str | None = None,
              where: str = "speculative", draft_devices: DraftDevices | None = None) -> SpeculativeConfig:
        """Validate and normalise: one acceptance rate is repeated over the ``k`` positions."""
        if method not in METHODS:
            raise ConfigError(f"{where}.method: unknown drafter {method!r}; choose one of {', '.join(METHODS)}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"{where}.k: tokens proposed per step must be an integer >= 1, got {k!r}")
        if k > MAX_K:
            raise ConfigError(f"{where}.k: {k} proposals per step is above the limit of {MAX_K}; use a smaller k")
        if draft_model is not None and not isinstance(draft_model, str):
            raise ConfigError(f"{where}.draft_model: a model preset name or config.json path, got {draft_model!r}")
        if isinstance(acceptance, str) or not isinstance(acceptance, int | float | Sequence):
            raise ConfigError(f"{where}.acceptance: give a number in [0, 1] or a list of them, one per proposed "
                              f"position ({k}), e.g. [0.9, 0.8]; got {acceptance!r}")
        rates = [acceptance] * k if isinstance(acceptance, int | float) else list(acceptance)
        if len(rates) != k:
            raise ConfigError(f"{where}.acceptance: give one rate or one per proposed position ({k}), got {len(rates)}")
        for rate in rates:
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
                raise ConfigError(f"{where}.acceptance: probabilities in [0, 1], got {rate!r}")
        if method == "draft" and not draft_model:
            raise ConfigError(f"{where}.draft_model: method draft needs the drafter's model (e.g. llama-3.1-8b)")
        if method != "draft" and draft_model is not None:
            raise ConfigError(f"{where}.draft_model: method {method} drafts with heads on the target model (priced "
                              f"as one target layer per proposal), so a draft model would be ignored; remove "
                              f"draft_model, or set method: draft to run {draft_model!r} as the drafter")
        if draft_devices is not None and method != "draft":
            raise ConfigError(f"{where}.draft_devices: {method} heads read the target's hidden states at every "
                              "proposal, so they run on the target's devices; drop draft_devices or use method: draft")
        return cls(method=method, k=k, acceptance=tuple(float(r) for r in rates), draft_model=draft_model,
                   draft_devices=draft_devices)

    @classmethod
    def from_dict(cls, d: Any, where: str = "speculative",
                  parse_precision: Callable[[Any, str], Precision] | None = None) -> SpeculativeConfig:
        """Parse a pool's ``speculative: {method, k, acceptance, draft_model, draft_devices}``.

        ``parse_precision`` reads ``draft_devices.precision`` (without it that key is refused).
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a mapping {{method, k, acceptance, draft_model}}, got {d!r}")
        keys = ("method", "k", "acceptance", "draft_model", "draft_devices")
        unknown = set(d) - set(keys)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed keys are {', '.join(keys)}")
        if "k" not in d or "acceptance" not in d:
            raise ConfigError(f"{where}: needs k (tokens proposed per step) and acceptance (a rate or one per position)")
        method = d.get("method", "draft" if d.get("draft_model") else "mtp")
        devices = d.get("draft_devices")
        if devices is not None:
            devices = DraftDevices.from_dict(devices, f"{where}.draft_devices", parse_precision)
        return cls.build(str(method), d["k"], d["acceptance"], d.get("draft_model"), where, devices)


def check_drafter(cfg: SpeculativeConfig, model: ModelSpec, where: str = "speculative") -> None:
    """Refuse ``mtp`` on a target without a multi-token-prediction module (``model.mtp_layers`` 0).

    ``k`` above the module count is allowed: serving engines run DeepSeek-V3's one
    MTP module autoregressively for several drafts (vLLM PR #13626 "support k >
    n_predict"; SGLang PR #3582; TensorRT-LLM PR #4762 measures nextn 1..7 on
    DeepSeek-R1), which is what the cost model prices (``k`` passes of about one
    layer); the falling acceptance of later drafts is the user's ``acceptance``.
    """
    if cfg.method == "mtp" and model.mtp_layers < 1:
        raise ConfigError(f"{where}.method: mtp (the default without a draft_model) drafts with the model's own "
                          f"multi-token-prediction module, and {model.name} has none (num_nextn_predict_layers is "
                          "absent or 0 in its config.json); use method: eagle, or method: draft with a draft_model")


def check_draft_model(draft: ModelSpec, target: ModelSpec, where: str = "speculative.draft_model") -> None:
    """A draft model must share the target's vocabulary and be no larger than it (else it cannot save time)."""
    if draft.vocab_size != target.vocab_size:
        raise ConfigError(f"{where}: {draft.name} has a vocabulary of {draft.vocab_size:,} tokens and {target.name} "
                          f"{target.vocab_size:,}; a drafter must use the target's tokenizer (e.g. a smaller model "
                          "of the same family)")
    if draft.param_count() > target.param_count():
        raise ConfigError(f"{where}: {draft.name} is larger than the target {target.name}; drafting with it "
                          "cannot be faster than decoding the target itself; use a smaller model of the same family")


def parse_acceptance(text: str, where: str = "--acceptance") -> float | list[float]:
    """A command line's acceptance: one probability, or a comma-separated list of them (one per position)."""
    try:
        rates = [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"{where}: a probability or a comma-separated list of them, got {text!r}") from None
    return rates[0] if len(rates) == 1 else rates


def expected_tokens_per_step(cfg: SpeculativeConfig) -> float:
    """E[tokens a verify step yields]: the sum over accepted prefixes of their probabilities, plus the target's token."""
    total, prefix = 1.0, 1.0
    for rate in cfg.acceptance:
        prefix *= rate
        total += prefix
    return total


def draw_tokens_per_step(cfg: SpeculativeConfig, rng: np.random.Generator, size: int) -> np.ndarray:
    """Tokens yielded by ``size`` verify steps (each 1 .. k + 1), drawn from ``rng``: accepted prefix + 1."""
    passed = rng.random((size, cfg.k)) < np.asarray(cfg.acceptance)
    return np.cumprod(passed, axis=1).sum(axis=1) + 1


def verify_steps_for(cfg: SpeculativeConfig, rng: np.random.Generator, output_tokens: int) -> int:
    """Verify steps one request needs to produce ``output_tokens`` tokens, drawn from ``rng``."""
    if output_tokens < 1:
        return 0
    emitted = np.cumsum(draw_tokens_per_step(cfg, rng, output_tokens))  # each step yields >= 1: enough draws
    return int(np.searchsorted(emitted, output_tokens)) + 1


def verify_shape(cached_lens: Sequence[int], k: int) -> StepShape:
    """One verify step: a decode step of ``k + 1`` query rows per sequence on top of its ``cached_lens`` tokens.

    The simulator's speculative pools run the same shape, and the backends price
    it with their decode kernels (the KV read once per sequence). As a prefill
    chunk of ``k + 1`` tokens the GPU model would charge FlashAttention's
    short-prompt ramp, made for prompts, 2-3x a decode step at long context.
    """
    return StepShape.decode([c + k + 1 for c in cached_lens], tokens_per_seq=k + 1)


def draft_time_s(cfg: SpeculativeConfig, cached_lens: Sequence[int], draft: StepCostModel | float,
                 target_decode_s: float) -> float:
    """Time the drafter takes to propose ``k`` tokens for the batch.

    ``draft`` is the drafter's step-cost model (``k`` decode steps at growing
    contexts), or, for MTP/EAGLE heads, the fraction of the target's decode
    step one proposal costs (about one layer of the target: 1 / num_layers).
    """
    if isinstance(draft, int | float):
        if not 0.0 <= draft <= 1.0:
            raise ConfigError(f"a drafter's cost as a fraction of the target's step is in [0, 1], got {draft}")
        return cfg.k * draft * target_decode_s
    return sum(draft.step_time_s(StepShape.decode([c + 1 + i for c in cached_lens])) for i in range(cfg.k))


@dataclass(frozen=True)
class SpeculativeTiming:
    """One speculative iteration of a batch against plain decoding (seconds, tokens per sequence)."""

    plain_step_s: float  # one plain decode step (one token per sequence)
    draft_s: float  # the drafter's k proposals
    verify_step_s: float  # the target's step over k + 1 positions
    tokens_per_step: float  # expected tokens per sequence per iteration
    handoff_s: float = 0.0  # drafts and verified tokens crossing to a drafter on its own devices

    @property
    def time_per_token_s(self) -> float:
        """Expected time per output token with speculation."""
        return (self.draft_s + self.handoff_s + self.verify_step_s) / self.tokens_per_step

    @property
    def speedup(self) -> float:
        """Plain time per token over speculative time per token (> 1: speculation pays)."""
        return self.plain_step_s / self.time_per_token_s


def speculative_timing(cfg: SpeculativeConfig, target: StepCostModel, cached_lens: Sequence[int],
                       draft: StepCostModel | float, separate: SeparateDrafter | None = None) -> SpeculativeTiming:
    """Price one speculative iteration of a batch whose sequences hold ``cached_lens`` tokens, against plain decoding.

    ``separate``: the drafter runs on devices of its own, across a link.
    """
    if not cached_lens or min(cached_lens) < 0:
        raise ConfigError("speculative timing needs at least one sequence with a cached length >= 0")
    plain = target.step_time_s(StepShape.decode([c + 1 for c in cached_lens]))
    verify = target.step_time_s(verify_shape(cached_lens, cfg.k))
    drafting = draft_time_s(cfg, cached_lens, draft, plain)
    tokens = expected_tokens_per_step(cfg)
    if not math.isfinite(verify) or verify <= 0:
        raise ConfigError(f"the target priced a verify step at {verify} s")
    handoff = separate.handoff_s(len(cached_lens), 0, cfg.k) if separate is not None else 0.0
    return SpeculativeTiming(plain_step_s=plain, draft_s=drafting, verify_step_s=verify, tokens_per_step=tokens,
                             handoff_s=handoff)
