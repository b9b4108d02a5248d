"""Speculative decoding on Llama-70B, on GPU and LPU terms: the direction and size of Groq's published speed-up.

Run:  .venv/bin/python benchmarks/speculative_groq.py        (~1 min on a 2-core machine)

Published: Groq's API added a speculative-decoding endpoint for Llama-3.1-70B
(``llama-3.1-70b-specdec``, October 2024) on its first-generation 14 nm LPU,
"software only": 250 -> 1,660 tokens/s per user by Groq's figures, 1,665
output tokens/s measured by Artificial Analysis, "over 6x" (Groq's
announcement as reported at https://www.theaiobserver.com/?p=321 and
https://colinmcnamara.com/speculative-decoding-ai-inference; the draft model,
k and acceptance rate were not disclosed; shared/reference/factory-2026.md).

So this prints a grid over the unknowns rather than one number, three ways:

1. closed form (twinfer.perf.speculative): drafter = EAGLE-like heads costing
   one target layer per proposal, or Llama-3.1-8B as a draft model on its own
   chips/GPUs run one after the other; acceptance 0.6 / 0.7 / 0.8; k = 4;
   batch 1; 600 cached tokens. Backends: 8x H100 (bf16, TP 8) and 576 TSP v1
   chips (int8, the deployment of benchmarks/lpu_validation.py);
2. the simulator: one 576-chip TSP v1 instance serving a light Poisson load
   (a user at a time, 600 prompt / 400 output tokens) with and without a
   speculative pool (heads, k = 4, acceptance 0.8), measured tokens/s per user
   and tokens per verify step, from the seeded per-request draws;
3. what the published 6.6x would need: the per-token acceptance at which
   heads reach it for k = 4, 8, 12, 16 on the TSP system.

Llama-3.3-70B stands in for Llama-3.1-70B (same architecture). Assumptions
(twinfer.perf.speculative, twinfer.perf.speculative_cost): the verify step
is a decode step of k + 1 query rows per sequence (closed form: a prefill
chunk of k + 1 positions); the drafter's weights and KV are not charged;
every proposal position has the same acceptance rate.
"""

from __future__ import annotations

import time

K, CACHED, RATES = 4, 600, (0.6, 0.7, 0.8)
PUBLISHED_PLAIN, PUBLISHED_SPEC = 250.0, 1660.0  # tokens/s per user, Groq, Oct 2024 (module docstring)
SCENARIO = {
    "name": "specdec-tsp",
    "model": "llama-3.3-70b",
    "workload": {"num_requests": 30, "arrivals": {"kind": "poisson", "rate_per_s": 0.5},
                 "prompt_tokens": {"kind": "fixed", "value": 600}, "output_tokens": {"kind": "fixed", "value": 400}},
    "fleets": [
        {"name": "plain", "pools": {"mixed": {"hardware": "groq-tsp-v1", "chips": 576, "precision": "int8"}}},
        {"name": "eagle k=4 p=0.8", "pools": {"mixed": {
            "hardware": "groq-tsp-v1", "chips": 576, "precision": "int8",
            "speculative": {"method": "eagle", "k": K, "acceptance": 0.8}}}},
    ],
}


def closed_form_table() -> tuple[object, object, object]:
    """The grid of part 1; returns the TSP backend, its drafter fraction and the table."""
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
    table = Table(title=f"1. closed form: Llama-70B, batch 1, k = {K}: tokens/s per user (speed-up)")
    for col in ("backend", "plain", "verify / plain step", *(f"heads p={p}" for p in RATES),
                *(f"8B draft p={p}" for p in RATES)):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for name, (cost, draft_cost) in backends.items():
        cells = []
        verify_ratio, plain = 0.0, 0.0
        for draft in (1.0 / target.num_layers, draft_cost):
            for p in RATES:
                heads = isinstance(draft, float)
                cfg = SpeculativeConfig.build("eagle", K, p) if heads else SpeculativeConfig.build("draft", K, p,
                                                                                                   "llama-3.1-8b")
                t = speculative_timing(cfg, cost, [CACHED], draft)
                cells.append(f"{1 / t.time_per_token_s:,.0f} ({t.speedup:.1f}x)")
                verify_ratio, plain = t.verify_step_s / t.plain_step_s, 1 / t.plain_step_s
        table.add_row(name, f"{plain:,.0f}", f"{verify_ratio:.2f}", *cells)
    return backends["576x TSP v1 int8"][0], 1.0 / target.num_layers, table


def simulated_table() -> object:
    """Part 2: the simulator, a speculative pool against a plain one on the same TSP system."""
    from rich.table import Table

    from twinfer.sim.run import simulate
    from twinfer.sim.scenario import Scenario

    t0 = time.perf_counter()
    result = simulate(Scenario.from_dict(SCENARIO, "speculative_groq"), seed=0)
    secs = time.perf_counter() - t0
    table = Table(title=f"2. simulator: one 576x TSP v1 instance, 30 requests of 600 in / 400 out "
                        f"(simulated in {secs:.1f} s)")
    for col in ("fleet", "tokens/s per user (mean)", "TPOT p50 ms", "tokens per verify step", "expected (closed form)"):
        table.add_column(col, justify="left" if col == "fleet" else "right")
    plain = result.fleets[0].summary["tokens_per_s_per_user_mean"]
    for f in result.fleets:
        s = f.summary
        measured = s.get("pool.mixed.speculative.tokens_per_step")
        expected = s.get("pool.mixed.speculative.expected_tokens_per_step")
        table.add_row(f.name, f"{s['tokens_per_s_per_user_mean']:,.0f} ({s['tokens_per_s_per_user_mean'] / plain:.1f}x)",
                      f"{s['tpot_p50_s'] * 1e3:.2f}", "-" if measured is None else f"{measured:.2f}",
                      "-" if expected is None else f"{expected:.2f}")
    return table


def needed_acceptance(cost: object, head: float) -> list[tuple[int, float | None]]:
    """Part 3: per-token acceptance at which heads reach the published speed-up, for k = 4 .. 16 (None: never)."""
    from twinfer.perf.speculative import SpeculativeConfig, speculative_timing

    goal = PUBLISHED_SPEC / PUBLISHED_PLAIN
    out: list[tuple[int, float | None]] = []
    for k in (4, 8, 12, 16):
        def speedup(p: float, k: int = k) -> float:
            return speculative_timing(SpeculativeConfig.build("eagle", k, p), cost, [CACHED], head).speedup  # type: ignore[arg-type]

        if speedup(1.0) < goal:
            out.append((k, None))
            continue
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if speedup(mid) < goal else (lo, mid)
        out.append((k, hi))
    return out


def main() -> None:
    from rich.console import Console

    con = Console(width=150)
    cost, head, table = closed_form_table()
    con.print(table)
    con.print(simulated_table())
    goal = PUBLISHED_SPEC / PUBLISHED_PLAIN
    con.print(f"published (Groq, Oct 2024, Llama-3.1-70B on the 14 nm LPU): {PUBLISHED_PLAIN:,.0f} -> "
              f"{PUBLISHED_SPEC:,.0f} tokens/s per user = {goal:.1f}x faster (draft model, k, acceptance undisclosed)")
    needs = needed_acceptance(cost, head)
    for k, p in needs:
        need = "out of reach even with every draft accepted" if p is None else f"needs acceptance >= {p:.3f} per token"
        con.print(f"3. heads on 576x TSP v1, k = {k}: {goal:.1f}x {need}")
    reachable = [(k, p) for k, p in needs if p is not None]
    how = (f"k >= {reachable[0][0]} with acceptance >= {reachable[0][1]:.2f} per token" if reachable
           else f"more than k = {needs[-1][0]} proposals")
    con.print(f"reading: twinfer agrees on the direction (on a memory-bound LPU decode a verify step of k + 1 rows "
              f"costs little more than one decode step) and finds 2-3x at acceptance 0.6-0.8 with k = {K}; the "
              f"published {goal:.1f}x needs {how}, so more than speculation probably changed between the two "
              "endpoints (twinfer's plain figure is close to the published 250 tokens/s baseline)")


if __name__ == "__main__":
    main()
