"""The 2026 factory example: how long it takes, and how its answer moves over the guessed ([U]) inputs.

Run: .venv/bin/python benchmarks/factory_2026.py [--sensitivity] [--requests N]

Speed (issue 12): `examples/factory_2026.yaml` (DeepSeek-V3, four fleets, 2,000 requests) must
simulate in under 60 s on the 2-core machine. The example is timed with the LPU bands (what
`twinfer simulate` runs by default), and as a baseline in the same process the built-in scenario
without bands, so the printed ratio says how the factory compares with the run users know.

Sensitivity (`--sensitivity`): every [U] number with a published range that the factory's fleets
rest on (vr200's HBM bandwidth, FP8/FP4/BF16 peaks and power; the lpx-gpu link's bandwidth and
latency) is set to the low and to the high end of its range, one at a time, through a user hardware
file (the same mechanism as `--hardware-file`); each fleet's TPOT p50, $/M output tokens and tok/s
per MW are printed against the preset value. The LP30's own micro-architecture guesses are the LPU
bands that `twinfer simulate` prints already; they are not repeated here. `--requests` shortens the
workload (default 600 of the 2,000) to keep this to a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from twinfer.hardware import get_hardware, get_link, spec_table
from twinfer.sim import default_scenario, load_scenario
from twinfer.sim.lpu_bands import add_lpu_bands
from twinfer.sim.run import (
    StepCostCache,
    build_scenario_workload,
    load_scenario_model,
    simulate_fleet,
)
from twinfer.sim.scenario import Scenario, with_hardware_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "factory_2026.yaml"
TARGET_S = 60.0
#: (kind, preset, field) of the [U] numbers with a range that the factory's fleets use.
UNCERTAIN = (("gpu", "vr200", "mem_bw_bytes_per_s"), ("gpu", "vr200", "peak_flops_per_s.fp8"),
             ("gpu", "vr200", "peak_flops_per_s.bf16"), ("gpu", "vr200", "power_max_w"),
             ("link", "lpx-gpu", "bw_bytes_per_s"), ("link", "lpx-gpu", "latency_s"))
METRICS = (("tpot_p50_s", "TPOT p50 ms", 1e3), ("cost_per_m_output_tok_usd", "$/M tok", 1.0),
           ("tokens_per_s_per_mw", "tok/s/MW", 1.0))


def run_scenario(scen: Scenario, bands: bool) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds and fleet summaries of one run of every fleet (with the LPU bands when ``bands``)."""
    t0 = time.perf_counter()
    workload = build_scenario_workload(scen, 0)
    model = load_scenario_model(scen)
    cache = StepCostCache()
    results = [simulate_fleet(scen, f, 0, workload=workload, model=model, cost_cache=cache) for f in scen.fleets]
    if bands:
        add_lpu_bands(scen, results, 0, workload=workload, model=model, cost_cache=cache)
    return time.perf_counter() - t0, [r.summary for r in results]


def speed() -> None:
    scen = load_scenario(EXAMPLE)
    base_s, _ = run_scenario(default_scenario()[0], bands=False)
    fact_s, summaries = run_scenario(scen, bands=True)
    print(f"baseline: built-in scenario without bands  {base_s:6.1f} s")
    print(f"factory_2026.yaml with LPU bands           {fact_s:6.1f} s  ({fact_s / base_s:.2f}x the baseline; "
          f"target < {TARGET_S:.0f} s: {'met' if fact_s < TARGET_S else 'MISSED'})")
    for s in summaries:
        print(f"  {s['fleet']:36s} TPOT p50 {s['tpot_p50_s'] * 1e3:6.2f} ms  {s['tokens_per_s_per_user_mean']:6.0f} "
              f"tok/s/user  ${s['cost_per_m_output_tok_usd']:.2f}/M  mode {s.get('mode')}")


def _spec_yaml(kind: str, spec: Any, field: str, value: float) -> dict[str, Any]:
    """The preset ``spec`` as a hardware-file table with ``field`` (``a.b`` for a rate) set to ``value``."""
    body = spec_table(spec)
    top, _, sub = field.partition(".")
    body[top] = {**body[top], sub: value} if sub else value
    return {kind: {spec.name: body}}


def sensitivity(requests: int) -> None:
    base = load_scenario(EXAMPLE)
    base = dataclasses.replace(base, workload=dataclasses.replace(base.workload, max_requests=requests))
    _, ref = run_scenario(base, bands=False)
    print(f"factory_2026.yaml, first {requests} requests; preset values:")
    for s in ref:
        print(f"  {s['fleet']:36s} " + "  ".join(f"{label} {s[key] * k:,.2f}" for key, label, k in METRICS))
    with tempfile.TemporaryDirectory() as tmp:
        for kind, name, field in UNCERTAIN:
            spec = get_hardware(name) if kind == "gpu" else get_link(name)
            low, high = spec.ranges[field]
            for end, value in (("low", low), ("high", high)):
                path = Path(tmp) / f"{name}-{field}-{end}.yaml"
                path.write_text(json.dumps(_spec_yaml(kind, spec, field, value)), encoding="utf-8")
                _, got = run_scenario(with_hardware_file(base, path), bands=False)
                print(f"{name}.{field} = {value:g} ({end} end)")
                for s, r in zip(got, ref, strict=True):
                    print(f"  {s['fleet']:36s} " + "  ".join(
                        f"{label} {s[key] * k:,.2f} ({s[key] / r[key] - 1:+.0%})" for key, label, k in METRICS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensitivity", action="store_true", help="the [U] sweep instead of the speed run")
    ap.add_argument("--requests", type=int, default=600, help="requests per sensitivity run")
    args = ap.parse_args()
    if args.sensitivity:
        sensitivity(args.requests)
    else:
        speed()


if __name__ == "__main__":
    main()
