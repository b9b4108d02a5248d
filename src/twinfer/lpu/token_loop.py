"""The per-token costs outside the compiled layer chain: sampling, returning the token, sync, the host loop.

The compiled program of a step runs from the embedding on the first stage to
the logits gathered on the last stage's first chip. A served token costs
more, and each part is a named term a reader can argue with:

- sampling: picking the token from the gathered logits on the VXM
  (``sampling_ops_per_logit`` [U] ops per logit) plus a cross-lane reduction
  tree of log2(lanes) SXM shifts (P1: shift/permute on the SXM);
- token return: the sampled token travels from the last stage back to the
  first over C2C (the topology's hops x per-hop latency, plus the Deskew),
  decode only: the next step cannot start before it arrives;
- synchronisation: ``stage_sync_cycles`` [U] per pipeline stage per step,
  the program sync and Deskew P2 uses to keep chips in lockstep;
- host: the groqflow estimator's PCIe overhead and token-id transfer, plus
  ``host_loop_s`` [U], the runtime's loop per token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twinfer.lpu.chip import Chip
from twinfer.lpu.plan import Plan
from twinfer.lpu.system import System


@dataclass(frozen=True)
class TokenLoopCosts:
    """Per-step costs added to a compiled (or analytic) step, by part."""

    sampling_cycles: int
    token_return_cycles: int
    sync_cycles: int
    host_s: float  # PCIe overhead + token ids over the host link + the runtime loop

    @property
    def chip_cycles(self) -> int:
        """The on-chip part, in cycles."""
        return self.sampling_cycles + self.token_return_cycles + self.sync_cycles

    def seconds(self, clock_hz: float) -> float:
        """All parts together, in seconds."""
        return self.chip_cycles / clock_hz + self.host_s

    def as_dict(self, clock_hz: float) -> dict[str, float]:
        """Each part in seconds (for reports)."""
        return {"sampling_s": self.sampling_cycles / clock_hz, "token_return_s": self.token_return_cycles / clock_hz,
                "stage_sync_s": self.sync_cycles / clock_hz, "host_s": self.host_s}


def token_loop_costs(chip: Chip, system: System, plan: Plan, *, vocab: int, seqs: int, tokens_in: int,
                     decode: bool) -> TokenLoopCosts:
    """Costs of one step that samples ``seqs`` tokens from ``vocab`` logits after ``tokens_in`` input tokens.

    ``decode`` adds the token's return from the last stage to the first (the
    next decode step waits for it); a prefill step ends when its token is out.
    """
    p = chip.params
    seqs = max(1, seqs)
    sampling = chip.vxm_cycles(seqs * vocab, p.sampling_ops_per_logit)
    sampling += math.ceil(math.log2(max(2, chip.spec.lanes))) * chip.sxm_cycles(seqs)
    ret = 0
    if decode:
        first, last = plan.stages[0].chips[0], plan.stages[-1].chips[0]
        ret = system.hops(last, first) * chip.hop_latency_cycles + chip.c2c_cycles(4 * seqs)
    sync = p.stage_sync_cycles * len(plan.stages)
    io_bytes = 4 * (tokens_in + seqs)  # int32 token ids in, sampled ids out
    host = p.host_overhead_s + p.host_loop_s + io_bytes / p.host_bw_bytes_per_s
    return TokenLoopCosts(sampling_cycles=sampling, token_return_cycles=ret, sync_cycles=sync, host_s=host)
