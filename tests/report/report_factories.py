"""Factories for report tests (used by conftest.py fixtures and the browser test): results folders in the shapes the simulator and the planner write.

The simulation fixture plays the simulator: it draws per-request latencies
with a seeded generator, writes them as Parquet with a ``fleet`` column, and
writes ``summary.json`` whose statistics are computed from those same arrays
with numpy (so the files agree with each other, as the simulator's do). The
report must show the summary's numbers as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FLEETS = ("colocated-h100", "h100-prefill-tsp-decode")


def _stats(prefix: str, values: np.ndarray) -> dict[str, float]:
    v = values[np.isfinite(values)]
    out = {f"{prefix}_mean_s": float(v.mean())}
    for q in (50, 90, 99):
        out[f"{prefix}_p{q}_s"] = float(np.percentile(v, q))
    return out


def _fleet(name: str, i: int, rng: np.random.Generator, n: int) -> tuple[dict[str, Any], dict[str, np.ndarray],
                                                                        dict[str, dict[str, list[float]]]]:
    """One fleet: (flat summary as twinfer.sim.metrics writes it, per-request columns, pool series)."""
    arrival = np.sort(rng.uniform(0.0, 60.0, n))
    ttft = rng.lognormal(np.log(0.2 + 0.1 * i), 0.5, n)
    out_tok = rng.integers(1, 300, n)
    tpot = np.where(out_tok > 1, rng.lognormal(np.log(0.03 - 0.01 * i), 0.3, n), np.nan)
    e2e = ttft + np.nan_to_num(tpot) * (out_tok - 1)
    disagg = i == 1
    kv_start = arrival + ttft if disagg else np.full(n, np.nan)
    kv_end = kv_start + rng.uniform(0.005, 0.02, n) if disagg else np.full(n, np.nan)
    cols = {
        "fleet": np.array([name] * n), "request_id": np.arange(n), "arrival_s": arrival,
        "prompt_tokens": rng.integers(10, 2000, n), "output_tokens": out_tok, "ttft_s": ttft,
        "tpot_s": tpot, "e2e_s": e2e, "kv_transfer_start_s": kv_start, "kv_transfer_end_s": kv_end,
    }
    duration = float((arrival + e2e).max())
    out_total = int(out_tok.sum())
    t = np.linspace(0.0, duration, 50).tolist()
    roles = {"prefill": ("h100", 2), "decode": ("groq-tsp-v1", 1)} if disagg else {"mixed": ("h100", 4)}
    series = {role: {"t_s": t, "waiting": rng.integers(0, 5, 50).tolist(), "running": rng.integers(0, 32, 50).tolist()}
              for role in roles}
    pool_keys: dict[str, Any] = {}
    for role, (hw, count) in roles.items():
        pool_keys.update({f"pool.{role}.hardware": hw, f"pool.{role}.instances": count,
                          f"pool.{role}.utilisation": float(rng.uniform(0.2, 0.9)),
                          f"pool.{role}.kv_blocked_frac": 0.0, f"pool.{role}.queue_mean": float(rng.uniform(0, 3)),
                          f"pool.{role}.kv_capacity_tokens": 219616 if hw == "groq-tsp-v1" else 426478})
    price = 4 * 3.0 if not disagg else 2 * 3.0 + 8 * 1.0
    energy = 1e6 * (1 + i)
    met = (ttft <= 0.5) & ~(tpot > 0.05)
    summary: dict[str, Any] = {
        "fleet": name, "mode": "disaggregated" if disagg else "aggregated", "requests": n, "completed": n,
        "rejected": 0, "duration_s": duration,
        **_stats("ttft", ttft), **_stats("tpot", tpot), **_stats("e2e", e2e),
        "tbt_max_s": None,  # the simulator writes NaN statistics as null
        "throughput_output_tok_s": out_total / duration, "throughput_rps": n / duration,
        "goodput_rps": float(met.sum()) / duration, "slo_attainment": float(met.mean()),
        "slo_ttft_s": 0.5, "slo_tpot_s": 0.05,
        **pool_keys,
        "instances": 4 if not disagg else 3, "devices": 32 if not disagg else 24, "price_per_hour_usd": price,
        "cost_per_m_output_tok_usd": price * duration / 3600 / out_total * 1e6, "energy_j": energy,
        "energy_per_output_tok_j": energy / out_total, "avg_power_w": energy / duration,
        "tokens_per_s_per_mw": out_total / duration / (energy / duration / 1e6),
        "kv_bytes_transferred": int(cols["prompt_tokens"].sum()) * 327680 if disagg else 0,
        "kv_link_utilisation": 0.12 if disagg else 0.0,
    }
    return summary, cols, series


def _tsp_partition() -> dict[str, Any]:
    """Llama-2-7B's partition over 72 TSP v1 chips, as :func:`twinfer.report.html_inputs_doc.partition_dict` records it."""
    from twinfer.lpu.chip import make_chip
    from twinfer.lpu.plan import make_plan
    from twinfer.lpu.step_cost import LPU_DEFAULT_PRECISION
    from twinfer.models import load_model
    from twinfer.report.html_inputs_doc import partition_dict

    plan = make_plan(load_model("llama-2-7b"), make_chip("groq-tsp-v1"), LPU_DEFAULT_PRECISION, chips=72, batch=1,
                     ctx=2048, tokens=1)
    return json.loads(json.dumps(partition_dict(plan)))


def write_sim_dir(folder: Path, *, n: int = 400, seed: int = 7, inputs: bool = True) -> Path:
    """``twinfer simulate --out`` files for two fleets: requests.parquet, summary.json, series.json.

    ``inputs`` adds the ``inputs`` block (model, workload, SLO, hardware with
    sources) that the report reads when the simulator records it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    fleets, cols, series = [], [], {}
    for i, name in enumerate(FLEETS):
        s, c, ser = _fleet(name, i, rng, n)
        fleets.append(s)
        cols.append(c)
        series[name] = ser
    pq.write_table(pa.concat_tables([pa.table(c) for c in cols]), folder / "requests.parquet")
    summary: dict[str, Any] = {
        "scenario": "fixture: Llama-3-70B, two fleets", "seed": seed,
        "notes": ["GPU->LPU KV link assumed (fixture note)"], "fleets": fleets,
    }
    if inputs:
        summary["inputs"] = {
            "model": {"name": "llama-3-70b", "params": 70553706496, "layers": 80},
            "workload": {"name": "uniform-fixture", "requests": n, "rate_per_s": n / 60.0},
            "slo": {"ttft_s": 0.5, "tpot_s": 0.05},
            "hardware": {"h100": {"memory_bytes": 80e9, "mem_bw_bytes_per_s": 3.35e12,
                                  "peak_flops_per_s": {"bf16": 989e12},
                                  "sources": {"memory_bytes": "NVIDIA H100 SXM datasheet",
                                              "mem_bw_bytes_per_s": "NVIDIA H100 SXM datasheet",
                                              "peak_flops_per_s.bf16": "NVIDIA H100 datasheet, dense"},
                                  "uncertain": []}},
            # What `simulate --out` records of an LPU pool: its kind and the compiler's real partition.
            "fleets": {FLEETS[1]: {"pools": {"decode": {"hardware": "groq-tsp-v1", "kind": "lpu",
                                                        "lpu_partition": _tsp_partition()}}}},
        }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    (folder / "series.json").write_text(json.dumps(series))
    return folder


def write_sweep_dir(folder: Path, *, seed: int = 3) -> Path:
    """A sweep folder of two part files: 2 configurations x 4 rates, one failed scenario."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, decode in enumerate(("h100", "groq-tsp-v1")):
        for j, rate in enumerate((1.0, 2.0, 4.0, 8.0)):
            params = {"fleets.0.decode.hardware": decode, "workload.arrivals.rate_per_s": rate}
            rows.append({
                "scenario_id": f"{k:02d}{j:014d}", "sweep_index": 4 * k + j, "seed": 0, "status": "ok", "error": None,
                "wall_s": 0.1, "params_json": json.dumps(params, sort_keys=True), "scenario_json": "{}",
                "fleets.0.decode.hardware": decode, "workload.arrivals.rate_per_s": rate,
                "throughput_rps": rate * 0.99, "goodput_rps": rate * (0.95 - 0.1 * j + 0.05 * k),
                "ttft_p99_s": float(rng.uniform(0.1, 2.0)), "cost_per_m_output_tok_usd": float(rng.uniform(0.5, 5.0)),
                "avg_power_w": float(rng.uniform(5e3, 5e4)),
            })
    bad = {"scenario_id": "ff" + "0" * 14, "sweep_index": 8, "seed": 0, "status": "error",
           "error": "CapacityError: model does not fit", "wall_s": 0.01, "params_json": "{}", "scenario_json": "{}"}
    pq.write_table(pa.Table.from_pylist(rows[:5]), folder / "part-000000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[5:] + [bad]), folder / "part-000001.parquet")
    return folder


def write_plan(folder: Path, *, seed: int = 5) -> Path:
    """``OUT/plan.json`` (schema twinfer.plan/1, as :mod:`twinfer.plan.evaluate` documents it) and ``OUT/results/``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rates = [1.0, 2.0, 4.0]
    fleets = [("agg-h100-tp4x2", "aggregated", 8, 24.0), ("dis-h100-tp4x1+h200-tp4x1", "disaggregated", 8, 30.0),
              ("agg-h200-tp8x1", "aggregated", 8, 40.0)]
    cands, rows = [], []
    for k, (key, mode, devices, price) in enumerate(fleets):
        by_rate = {}
        for rate in rates:
            att = float(min(1.0, 1.3 - 0.1 * rate + 0.1 * k))
            m = {"feasible": att >= 0.9, "pruned": None, "error": None, "slo_attainment": att,
                 "ttft_s": float(rng.uniform(0.2, 2.0)), "tpot_s": float(rng.uniform(0.02, 0.1)),
                 "e2e_s": float(rng.uniform(2, 10)), "throughput_output_tok_s": 180.0 * rate,
                 "cost_per_m_output_tok_usd": price / (0.648 * rate), "avg_power_w": float(rng.uniform(3e3, 6e3)),
                 "energy_per_output_tok_j": float(rng.uniform(5, 20)), "goodput_rps_run": rate * att}
            by_rate[f"{rate:g}"] = m
            rows.append({"scenario_id": f"{k:02d}{int(rate):014d}", "sweep_index": len(rows), "seed": 0,
                         "status": "ok", "error": None, "wall_s": 0.5,
                         "params_json": json.dumps({"candidate": key, "mode": mode, "rate_per_s": rate}),
                         "scenario_json": "{}", "candidate": key, "mode": mode, "rate_per_s": rate,
                         "slo_attainment": att, "ttft_p90_s": m["ttft_s"], "tpot_p90_s": m["tpot_s"],
                         "throughput_rps": rate, "goodput_rps": m["goodput_rps_run"],
                         "cost_per_m_output_tok_usd": m["cost_per_m_output_tok_usd"], "avg_power_w": m["avg_power_w"]})
        goodput = 0.0
        for rate in rates:
            if not by_rate[f"{rate:g}"]["feasible"]:
                break
            goodput = rate
        cands.append({"key": key, "mode": mode,
                      "pools": [{"role": "mixed", "hardware": "h100", "count": 2, "tp": 4, "chips": None,
                                 "max_batch_seqs": 256}],
                      "devices": devices, "price_per_hour_usd": price, "power_max_w": 700.0 * devices + 100 * k,
                      "racks": 1, "goodput_rps": goodput, "pareto": k < 2, "by_rate": by_rate})
    plan = {
        "schema": "twinfer.plan/1", "name": "fixture-plan", "model": "llama-3-70b", "objective": "min_cost",
        "slo": {"ttft_s": 2.0, "tpot_s": 0.1, "percentile": 90.0, "latency_percentile": "p90"},
        "target_rate_per_s": 2.0, "rates_per_s": rates,
        "limits": {"budget_per_hour_usd": 200.0, "power_w": None, "racks": 2},
        "workload": {"trace": "builtin:azure-conv-sample", "max_requests": 300},
        "search": {"candidates": 10, "pairs": 30, "pruned": 21, "simulated": 9, "failed": 0,
                   "pruned_by": {"memory": 15, "budget": 6}},
        "candidates": cands,
        "recommended": {"key": fleets[0][0], "why": "cheapest of the feasible fleets (fixture)"},
        "pareto": [fleets[0][0], fleets[1][0]],
        "by_rate": [{"rate_per_s": r, "recommended": fleets[0][0], "price_per_hour_usd": 24.0, "devices": 8,
                     "feasible": 3, "simulated": 3} for r in rates],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows[:4]), folder / "results" / "part-000000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[4:]), folder / "results" / "part-000001.parquet")
    path = folder / "plan.json"
    path.write_text(json.dumps(plan, indent=1))
    return path
