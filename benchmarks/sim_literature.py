"""Does twinfer reproduce, qualitatively, what the serving literature reports?

Run: .venv/bin/python benchmarks/sim_literature.py
Claims (from /work/shared/reference/gpu-and-serving.md):
1. DistServe: disaggregation raises goodput under tight TTFT + TPOT SLOs.
2. vLLM docs: disaggregation does not raise raw throughput (at loose SLOs).
3. Splitwise: a cheaper decode tier can cut cost.
Setup: Llama-3-70B (bf16) on the shipped Azure conv sample at several rates; 4 H100x4
instances colocated (chunked prefill) vs 2 prefill + 2 decode (and 2 H100x4 prefill +
A100x4 decode for claim 3). Prints what twinfer finds, whatever it is.
"""

from __future__ import annotations

from twinfer.sim import Scenario, simulate_fleet
from twinfer.sim.run import build_scenario_workload, load_scenario_model

H100 = {"hardware": "h100", "tp": 4}
A100 = {"hardware": "a100", "tp": 4}
FLEETS = [
    {"name": "colocated 4xH100x4", "pools": {"mixed": {**H100, "count": 4, "batching": {"policy": "chunked", "token_budget": 512}}}},
    {"name": "P/D 2+2 H100x4", "pools": {"prefill": {**H100, "count": 2, "batching": {"policy": "continuous"}},
                                        "decode": {**H100, "count": 2, "batching": {"policy": "continuous"}}},
     "kv_link": {"name": "ib-ndr", "count": 4}},
    {"name": "P/D 2 H100x4 + 2 A100x4", "pools": {"prefill": {**H100, "count": 2, "batching": {"policy": "continuous"}},
                                                  "decode": {**A100, "count": 2, "batching": {"policy": "continuous"}}},
     "kv_link": {"name": "ib-ndr", "count": 4}},
]


def main() -> None:
    print(__doc__.split("Setup:")[0].strip().splitlines()[0])
    cache: dict = {}
    for slo_name, slo in (("tight", {"ttft_s": 0.4, "tpot_s": 0.04}), ("loose", {"ttft_s": 10.0, "tpot_s": 1.0})):
        print(f"\nSLO {slo_name}: TTFT <= {slo['ttft_s']} s, TPOT <= {slo['tpot_s']} s")
        print(f"{'rate x':>7} {'fleet':<26} {'SLO met':>8} {'goodput r/s':>11} {'out tok/s':>10} {'$/M tok':>8}")
        for scale in (4.0, 8.0, 12.0):
            scen = Scenario.from_dict({"model": "llama-3-70b", "slo": slo, "fleets": FLEETS,
                                       "workload": {"trace": "builtin:azure-conv-sample", "rate_scale": scale,
                                                    "max_requests": 1000}})
            wl = build_scenario_workload(scen, 0)
            model = load_scenario_model(scen)
            for f in scen.fleets:
                s = simulate_fleet(scen, f, 0, workload=wl, model=model, cost_cache=cache).summary
                print(f"{scale:7.0f} {f.name:<26} {s['slo_attainment'] * 100:7.0f}% {s['goodput_rps']:11.2f} "
                      f"{s['throughput_output_tok_s']:10,.0f} {s['cost_per_m_output_tok_usd']:8.2f}")


if __name__ == "__main__":
    main()
