"""Speculative decoding on Llama-70B, on GPU and LPU terms: the direction and size of Groq's published speed-up.

Run:  .venv/bin/python benchmarks/speculative_groq.py

Published (shared/reference/factory-2026.md): Groq's API offered a
speculative-decoding endpoint for Llama-3.1-70B (October 2024) that ran
several times faster per user than the plain one; its draft model and
acceptance rate were not disclosed. So this prints a grid over the unknowns
rather than one number: drafter (EAGLE-like heads costing one target layer
per proposal, or Llama-3.1-8B as a draft model on its own chips/GPUs, run
one after the other), acceptance 0.6 / 0.7 / 0.8, k = 4, batch 1, 600
cached tokens. Llama-3.3-70B stands in for Llama-3.1-70B (same
architecture). Backends: 8x H100 (bf16, TP 8) and 576 TSP v1 chips (int8,
the deployment of benchmarks/lpu_validation.py).

Assumptions (see twinfer.perf.speculative): the verify step is a prefill
chunk of k + 1 positions; the LM head runs once per sequence; the drafter's
catch-up on accepted tokens and its memory are not charged.
"""

from __future__ import annotations

K, CACHED, RATES = 4, 600, (0.6, 0.7, 0.8)


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from twinfer.models import load_model
    from twinfer.models.ops import Precision
    from twinfer.perf import make_step_cost
    from twinfer.perf.speculative import SpeculativeConfig, speculative_timing

    target, drafter = load_model("llama-3.3-70b"), load_model("llama-3.1-8b")
    backends = {
        "8x H100 bf16": (make_step_cost(target, "h100", tp=8), make_step_cost(drafter, "h100", tp=8)),
        "576x TSP v1 int8": (make_step_cost(target, "groq-tsp-v1", chips=576, precision=Precision(weights="int8")),
                             make_step_cost(drafter, "groq-tsp-v1", precision=Precision(weights="int8"))),
    }
    table = Table(title=f"Llama-70B speculative decoding, batch 1, k = {K}: tokens/s per user (speed-up)")
    for col in ("backend", "plain", "verify / plain step", *(f"heads p={p}" for p in RATES), *(f"8B draft p={p}" for p in RATES)):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for name, (cost, draft_cost) in backends.items():
        cells = []
        verify_ratio, plain = 0.0, 0.0
        for draft in (1.0 / target.num_layers, draft_cost):
            for p in RATES:
                method = "eagle" if isinstance(draft, float) else "draft"
                t = speculative_timing(SpeculativeConfig.build(method, K, p, "llama-3.1-8b"), cost, [CACHED], draft)
                cells.append(f"{1 / t.time_per_token_s:,.0f} ({t.speedup:.1f}x)")
                verify_ratio, plain = t.verify_step_s / t.plain_step_s, 1 / t.plain_step_s
        table.add_row(name, f"{plain:,.0f}", f"{verify_ratio:.2f}", *cells)
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
