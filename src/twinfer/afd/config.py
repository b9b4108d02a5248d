"""The layout of an AFD decode instance: its attention group, its FFN group, the link and the micro-batches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttentionGroup:
    """GPUs that run attention and every non-FFN op, and hold the KV cache in HBM.

    ``replicas`` data-parallel attention replicas of ``tp`` GPUs each; every
    replica holds its own sequences and their KV cache.
    """

    hardware: str
    replicas: int = 1
    tp: int = 1

    @property
    def devices(self) -> int:
        """GPUs in the group."""
        return self.replicas * self.tp


@dataclass(frozen=True)
class FfnGroup:
    """Devices that run the FFN (dense models) or the routed experts (MoE models) of every layer.

    LPUs: ``chips`` chips holding the FFN weights in SRAM (None: the fewest
    that fit). GPUs: ``ep`` expert-parallel ranks of ``tp`` GPUs each.
    """

    hardware: str
    chips: int | None = None
    ep: int = 1
    tp: int = 1


@dataclass(frozen=True)
class AfdConfig:
    """An AFD decode instance: attention group + FFN group, the link between them, the micro-batches in flight.

    ``link`` names a link preset whose bandwidth is per attention GPU and
    direction (None: ``lpx-gpu`` for an LPU FFN group, the attention GPU's
    scale-up link for a GPU one).
    """

    attention: AttentionGroup
    ffn: FfnGroup
    link: str | None = None
    micro_batches: int = 2

    def label(self, ffn_devices: int | None = None) -> str:
        """Short text such as ``attention 8x vr200 tp1 + ffn 1,408x groq3-lp30 over lpx-gpu, 2 micro-batches``."""
        a, f = self.attention, self.ffn
        n = ffn_devices if ffn_devices is not None else (f.chips if f.chips is not None else f.ep * f.tp)
        split = f" ep{f.ep} tp{f.tp}" if f.ep > 1 or f.tp > 1 else ""
        link = self.link or "default link"
        return (f"attention {a.replicas}x {a.hardware} tp{a.tp} + ffn {n:,}x {f.hardware}{split} over {link}, "
                f"{self.micro_batches} micro-batches")
