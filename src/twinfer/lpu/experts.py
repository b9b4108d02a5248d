"""Mixture-of-experts on the LPU: where routed experts live, and how many are busy in a step.

Placement rule (chosen by the planner, :func:`choose_expert_layout`): the
routed experts of a MoE layer live on an *expert group* of ``ep`` chips of
their own, numbered after the attention stages. Chip ``i`` of a group holds
the contiguous block ``split_bounds(E, ep, i)`` of experts whole; when ``ep``
exceeds ``E``, each expert is instead split over ``ep / E`` chips by its
intermediate width. ``ep`` is a multiple of the stage's tensor split ``tp``
(so every attention chip combines the same number of expert chips) that
divides ``E`` or is a multiple of it, and at most ``E`` unless one expert
does not fit a chip. The planner takes the ``ep`` that needs the fewest
chips; consecutive MoE layers share one group while their shards fit a chip;
among equal chip counts the larger ``ep`` wins, since fewer experts per chip
means fewer of them to run on the busiest chip. Each expert chip receives
the layer's normalised activations from one attention chip (dispatch, one
C2C transfer), runs the router (gate GEMM + top-k, the gate is only E x
hidden) and its experts, and sends its weighted partial sum back (combine);
the attention chips add what they received and all-reduce it. A static
schedule cannot know which experts a token will pick, so every expert chip of
the group gets the activations and a slot in the schedule, sized for the
busiest chip (below).

Load (:func:`expected_active_experts`): with ``B`` tokens each picking ``k``
of ``E`` experts uniformly, an expert is idle with probability
``(1 - k/E)^B``, so ``E[distinct experts] = E * (1 - (1 - k/E)^B)`` and a
chip holding ``n`` experts expects ``n * (1 - (1 - k/E)^B)`` of them active.
Each active expert streams ``B*k/E / (1 - (1 - k/E)^B)`` token rows on
average. Real routers are not uniform: the busiest chip is costed at an
imbalance factor >= 1 times both expectations, its active experts (capped at
``n``) and its routed rows ``B*k*n/E`` (capped at ``B*n``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twinfer.errors import CapacityError, ConfigError


def active_fraction(num_experts: int, top_k: int, tokens: int) -> float:
    """Probability that a given expert is picked by at least one of ``tokens`` tokens (uniform routing)."""
    if tokens <= 0:
        return 0.0
    return 1.0 - (1.0 - top_k / num_experts) ** tokens


def expected_active_experts(num_experts: int, top_k: int, tokens: int, *, local_experts: int | None = None,
                            imbalance: float = 1.0) -> float:
    """Expected busy experts among ``local_experts`` (default all ``num_experts``) for a step of ``tokens``.

    ``imbalance`` >= 1 scales the expectation for the hottest chip; the result
    never exceeds ``local_experts`` nor the ``tokens * top_k`` routed slots.
    """
    if imbalance < 1.0:
        raise ConfigError(f"moe_imbalance_factor (expert load imbalance) must be >= 1, 1 meaning uniform routing; "
                          f"got {imbalance} (e.g. --param moe_imbalance_factor=1.2)")
    n = num_experts if local_experts is None else local_experts
    busy = imbalance * n * active_fraction(num_experts, top_k, tokens)
    return min(float(n), float(tokens * top_k), busy)


def routed_rows(num_experts: int, top_k: int, tokens: int, *, local_experts: int, imbalance: float = 1.0) -> float:
    """Token rows routed to a chip holding ``local_experts`` experts: ``imbalance * B*k*n/E``, at most ``B*n``."""
    return min(float(tokens * local_experts), imbalance * tokens * top_k * local_experts / num_experts)


def rows_per_active_expert(num_experts: int, top_k: int, tokens: int) -> float:
    """Token rows an active expert streams on average: routed slots per expert / P(active)."""
    frac = active_fraction(num_experts, top_k, tokens)
    return tokens * top_k / num_experts / frac if frac > 0 else 0.0


@dataclass(frozen=True)
class ExpertGroup:
    """The chips that hold the routed experts of MoE layers ``first_layer`` .. ``last_layer`` (model layer ids)."""

    first_layer: int
    last_layer: int
    chips: tuple[int, ...]  # ep chips; chip i holds expert_shards(E, ep, i)


def expert_shards(num_experts: int, ep: int, i: int, inter: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(expert range, intermediate-row range) that chip ``i`` of an ``ep``-chip group holds."""
    if ep <= num_experts:
        a, b = num_experts * i // ep, num_experts * (i + 1) // ep
        return (a, b), (0, inter)
    per = ep // num_experts  # chips per expert
    e, j = divmod(i, per)
    return (e, e + 1), (inter * j // per, inter * (j + 1) // per)


def ep_candidates(num_experts: int, tp: int, limit: int) -> list[int]:
    """Expert-group widths: multiples of ``tp`` that divide ``num_experts`` or are a multiple of it, up to ``limit``."""
    out = []
    for ep in range(tp, max(tp, limit) + 1, tp):
        if num_experts % ep == 0 or ep % num_experts == 0:
            out.append(ep)
    return out


@dataclass(frozen=True)
class ExpertLayout:
    """How many chips a layer's experts spread over and how many MoE layers share those chips."""

    ep: int
    layers_per_group: int
    shard_bytes: int  # bytes of one layer's experts on one chip

    def groups(self, moe_layers: list[int], first_chip: int) -> tuple[ExpertGroup, ...]:
        """Expert groups over consecutive runs of ``moe_layers``, chips numbered from ``first_chip``."""
        out = []
        for g, start in enumerate(range(0, len(moe_layers), self.layers_per_group)):
            run = moe_layers[start:start + self.layers_per_group]
            base = first_chip + g * self.ep
            out.append(ExpertGroup(first_layer=run[0], last_layer=run[-1], chips=tuple(range(base, base + self.ep))))
        return tuple(out)

    def chips_needed(self, moe_layers: int) -> int:
        """Chips all expert groups take together."""
        return self.ep * math.ceil(moe_layers / self.layers_per_group)


def choose_expert_layout(*, num_experts: int, expert_bytes: int, inter: int, tp: int, moe_layers: int,
                         capacity_bytes: int, workspace_bytes: int, router_bytes: int = 0,
                         max_chips: int | None = None, ep: int | None = None) -> ExpertLayout:
    """The expert-group width needing the fewest chips (ties: the wider group); CapacityError if none fits.

    Every expert chip also holds each of its layers' router (``router_bytes``), since it routes itself.
    ``ep`` forces the width (it must be a candidate of :func:`ep_candidates`).
    """
    best: ExpertLayout | None = None
    limit = max(num_experts * 8, tp)
    widths = ep_candidates(num_experts, tp, limit)
    if ep is not None:
        if ep not in widths:
            raise ConfigError(f"an expert group of {ep} chips does not suit {num_experts} experts over a {tp}-way "
                              f"split; use one of {widths}")
        widths = [ep]
    for width in widths:
        if ep is None and width > num_experts and best is not None:
            break  # split experts only when whole experts do not fit (it multiplies dispatch traffic)
        if width <= num_experts:
            shard = math.ceil(num_experts / width) * expert_bytes
        else:
            shard = math.ceil(expert_bytes * math.ceil(inter / (width // num_experts)) / inter)
        shard += router_bytes
        room = capacity_bytes - workspace_bytes
        if shard > room:
            continue
        layout = ExpertLayout(ep=width, layers_per_group=max(1, min(moe_layers, room // shard)), shard_bytes=shard)
        if max_chips is not None and layout.chips_needed(moe_layers) > max_chips:
            continue
        if best is None or layout.chips_needed(moe_layers) <= best.chips_needed(moe_layers):
            best = layout
    if best is None:
        raise CapacityError(
            f"the routed experts do not fit: one expert needs {expert_bytes / 2**20:.1f} MiB and a chip has "
            f"{(capacity_bytes - workspace_bytes) / 2**20:.1f} MiB free"
            + (f" within {max_chips} expert chips" if max_chips is not None else "")
            + "; use more chips, 8-bit weights or a chip with more SRAM"
        )
    return best
