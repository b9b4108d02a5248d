"""From simulated rows to a plan: feasibility, goodput, Pareto frontier, recommendation, and the plan JSON.

Definitions:

* **feasible** at a rate: the run finished (status ok) and ``slo_attainment >=
  percentile / 100``, i.e. at least that fraction of requests met both TTFT and
  TPOT (rejected requests count as missed).
* **goodput** of a fleet: DistServe's definition (the highest request rate it
  serves within the SLO attainment) on the plan's rate grid: the largest grid
  rate at which the fleet was found feasible, below the first rate at which it
  was shown infeasible (simulated or pruned); rates the staircase search did not
  simulate count as neither (feasibility is assumed to fall as the rate grows).
  0 if none. It is capped by the grid's highest rate.
* **objectives**: ``min_cost`` (lowest $/h among fleets feasible at the target
  rate), ``max_goodput_per_usd`` (goodput / $/h), ``max_goodput_per_watt``
  (goodput / provisioned peak power, the figure a power limit constrains).
* **latency** columns use the simulator's percentile at or above the SLO's
  (p50 for <= 50, p90 for 51-90, p99 above: the highest the simulator reports).

The plan JSON (``plan.json``, schema ``twinfer.plan/1``) read by ``twinfer report``::

    {
      "schema": "twinfer.plan/1",
      "name": str, "model": str, "objective": str,
      "slo": {"ttft_s": float, "tpot_s": float, "percentile": float, "latency_percentile": "p90"},
      "target_rate_per_s": float, "rates_per_s": [float], "arrival_pattern": "poisson"|"trace",
      "limits": {"budget_per_hour_usd": float|null, "power_w": float|null, "racks": int|null},
      "workload": {...the plan's workload section...},
      "search": {"candidates": int, "pairs": int, "pruned": int, "simulated": int, "failed": int,
                 "pruned_by": {"memory"|"budget"|"power"|"racks"|"kv_fit"|"idle_latency"|
                               "prefill_throughput"|"decode_throughput": int}},
      "candidates": [{                            # those simulated at one rate or more
          "key": str, "mode": "aggregated"|"disaggregated",
          "pools": [{"role", "hardware", "count", "tp", "chips", "max_batch_seqs", "batching": {...}}],
          "devices": int|null, "price_per_hour_usd": float|null, "power_max_w": float|null, "racks": int|null,
          "goodput_rps": float, "pareto": bool,
          "by_rate": {"<rate>": {"feasible": bool, "pruned": str|null, "error": str|null,
                                 "slo_attainment", "ttft_s", "tpot_s", "e2e_s", "throughput_output_tok_s",
                                 "cost_per_m_output_tok_usd", "avg_power_w", "energy_per_output_tok_j",
                                 "goodput_rps_run": float|null}}   # metrics null when not simulated
      }],
      "recommended": {"key": str, "why": str} | null,
      "pareto": [key, ...],                       # at the target rate: price, TTFT, TPOT, power
      "by_rate": [{"rate_per_s", "recommended": key|null, "price_per_hour_usd", "devices",
                   "feasible": int, "simulated": int}],
      "hardware_file": str                        # only when the plan has one (absolute path)
    }
"""

from __future__ import annotations

import math
from typing import Any

from twinfer.plan.pareto import pareto_front
from twinfer.plan.pruning import PruneReport
from twinfer.plan.space import Candidate, PlanSpec

SCHEMA = "twinfer.plan/1"


def latency_percentile(percentile: float) -> str:
    """The simulator's percentile key at or above ``percentile`` (p50, p90 or p99)."""
    return "p50" if percentile <= 50 else "p90" if percentile <= 90 else "p99"


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _score(spec: PlanSpec, cand: dict[str, Any]) -> float:
    price, power = cand["price_per_hour_usd"], cand["power_max_w"]
    if spec.objective == "min_cost":
        return -price
    if spec.objective == "max_goodput_per_usd":
        return cand["goodput_rps"] / price if price else math.inf
    return cand["goodput_rps"] / power if power else math.inf


def _rank(spec: PlanSpec, cands: list[dict[str, Any]], rate_key: str) -> list[dict[str, Any]]:
    """Best first by the objective; ties by price, then TTFT at this rate, then key."""
    return sorted(cands, key=lambda c: (-_score(spec, c), c["price_per_hour_usd"],
                                        c["by_rate"][rate_key]["ttft_s"] or math.inf, c["key"]))


def _why(spec: PlanSpec, best: dict[str, Any], others: list[dict[str, Any]], rate: float, simulated: int) -> str:
    r = best["by_rate"][f"{rate:g}"]
    pct = latency_percentile(spec.percentile)
    head = (f"{best['key']} meets the SLOs at {rate:g} req/s with {r['slo_attainment']:.1%} of requests within "
            f"TTFT {spec.ttft_s:g} s and TPOT {spec.tpot_s * 1e3:g} ms (needs {spec.percentile:g} %; "
            f"{pct} TTFT {r['ttft_s']:.3g} s, TPOT {r['tpot_s'] * 1e3:.3g} ms)")
    if spec.objective == "min_cost":
        n = best["devices"]
        head += f" for ${best['price_per_hour_usd']:.2f}/h on {n} device{'' if n == 1 else 's'}"
        if not others:
            return head + f"; it is the only feasible fleet of {simulated} simulated."
        nxt = others[0]
        if math.isclose(nxt["price_per_hour_usd"], best["price_per_hour_usd"]):
            n_ttft = nxt["by_rate"][f"{rate:g}"]["ttft_s"]
            return head + (f", the cheapest of {len(others) + 1} feasible fleets; {nxt['key']} costs the same "
                           f"but its {pct} TTFT is {n_ttft:.3g} s.")
        extra = (nxt["price_per_hour_usd"] / best["price_per_hour_usd"] - 1) * 100 if best["price_per_hour_usd"] else 0
        return head + (f", the cheapest of {len(others) + 1} feasible fleets; the runner-up {nxt['key']} "
                       f"costs ${nxt['price_per_hour_usd']:.2f}/h ({extra:+.0f} %).")
    unit, per = ("$/h", "price_per_hour_usd") if spec.objective == "max_goodput_per_usd" else ("kW", "power_max_w")
    scale = 1.0 if per == "price_per_hour_usd" else 1e-3
    val = best["goodput_rps"] / (best[per] * scale)
    head += (f"; it sustains {best['goodput_rps']:g} req/s within the SLOs on "
             f"{best[per] * scale:.3g} {unit}, {val:.3g} req/s per {unit}")
    if not others:
        return head + f", the only feasible fleet of {simulated} simulated."
    nxt = others[0]
    nval = nxt["goodput_rps"] / (nxt[per] * scale)
    if math.isclose(val, nval):
        return head + (f"; {nxt['key']} ties on that ratio and loses the tie-break (price, then "
                       f"{pct} TTFT). Goodput is capped by the highest grid rate ({max(spec.rates_per_s):g} req/s): "
                       "add higher rates to separate them.")
    gain = (val / nval - 1) * 100 if nval else math.inf
    return head + f", {gain:+.0f} % over the runner-up {nxt['key']} ({nval:.3g} req/s per {unit})."


def evaluate(spec: PlanSpec, report: PruneReport, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the plan JSON (see the module doc) from the prune report and the simulated rows."""
    pct = latency_percentile(spec.percentile)
    by_pair = {(r["candidate"], float(r["rate_per_s"])): r for r in rows}
    cands: list[dict[str, Any]] = []
    for cand in report.candidates:
        cost = report.costs.get(cand.key)
        entry: dict[str, Any] = {
            "key": cand.key, "mode": cand.mode,
            "pools": [{"role": p.role, "hardware": p.hardware, "count": p.count, "tp": p.tp, "chips": p.chips,
                       "max_batch_seqs": p.max_batch_seqs, "batching": dict(p.batching),
                       **({"afd": p.afd.label()} if p.afd is not None else {})} for p in cand.pools],
            "devices": cost.devices if cost else None,
            "price_per_hour_usd": cost.price_per_hour_usd if cost else None,
            "power_max_w": cost.power_max_w if cost else None,
            "racks": cost.racks if cost else None,
            "by_rate": {},
        }
        for rate in spec.rates_per_s:
            found = by_pair.get((cand.key, float(rate)))
            row: dict[str, Any] = found or {}
            pruned = report.reasons.get((cand.key, rate))
            ok = row.get("status") == "ok"
            att = _num(row.get("slo_attainment")) if ok else None
            entry["by_rate"][f"{rate:g}"] = {
                "feasible": bool(ok and att is not None and att >= spec.attainment - 1e-12),
                "pruned": pruned,
                "error": row.get("error") if found is not None and not ok else None,
                "slo_attainment": att,
                "ttft_s": _num(row.get(f"ttft_{pct}_s")) if ok else None,
                "tpot_s": _num(row.get(f"tpot_{pct}_s")) if ok else None,
                "e2e_s": _num(row.get(f"e2e_{pct}_s")) if ok else None,
                "throughput_output_tok_s": _num(row.get("throughput_output_tok_s")) if ok else None,
                "cost_per_m_output_tok_usd": _num(row.get("cost_per_m_output_tok_usd")) if ok else None,
                "avg_power_w": _num(row.get("avg_power_w")) if ok else None,
                "energy_per_output_tok_j": _num(row.get("energy_per_output_tok_j")) if ok else None,
                "goodput_rps_run": _num(row.get("goodput_rps")) if ok else None,
            }
        goodput = 0.0
        for rate in spec.rates_per_s:  # ascending
            r = entry["by_rate"][f"{rate:g}"]
            if r["feasible"]:
                goodput = float(rate)
            elif r["pruned"] or (cand.key, float(rate)) in by_pair:
                break  # shown infeasible (simulated or proved): higher rates do not count
            # not simulated at this rate (the staircase search skipped it): no evidence either way
        entry["goodput_rps"] = goodput
        entry["pareto"] = False
        cands.append(entry)

    target = f"{spec.target_rate_per_s:g}"
    feasible = [c for c in cands if c["by_rate"][target]["feasible"]]
    points = [(c["price_per_hour_usd"], c["by_rate"][target]["ttft_s"] or math.inf,
               c["by_rate"][target]["tpot_s"] or math.inf, c["power_max_w"]) for c in feasible]
    front = [feasible[i] for i in pareto_front(points)]
    for c in front:
        c["pareto"] = True
    simulated_at = {r: sum(1 for (_, rr) in by_pair if rr == r) for r in spec.rates_per_s}
    by_rate = []
    recommended = None
    for rate in spec.rates_per_s:
        key = f"{rate:g}"
        ok = _rank(spec, [c for c in cands if c["by_rate"][key]["feasible"]], key)
        best = ok[0] if ok else None
        by_rate.append({"rate_per_s": rate, "recommended": best["key"] if best else None,
                        "price_per_hour_usd": best["price_per_hour_usd"] if best else None,
                        "devices": best["devices"] if best else None,
                        "feasible": len(ok), "simulated": simulated_at[rate]})
        if rate == spec.target_rate_per_s and best is not None:
            recommended = {"key": best["key"], "why": _why(spec, best, ok[1:], rate, simulated_at[rate])}
    pruned_by: dict[str, int] = {}
    for reason in report.reasons.values():
        tag = reason.split(":", 1)[0]
        pruned_by[tag] = pruned_by.get(tag, 0) + 1
    doc = {
        "schema": SCHEMA, "name": spec.name, "model": spec.model, "objective": spec.objective,
        "slo": {"ttft_s": spec.ttft_s, "tpot_s": spec.tpot_s, "percentile": spec.percentile,
                "latency_percentile": pct},
        "target_rate_per_s": spec.target_rate_per_s, "rates_per_s": list(spec.rates_per_s),
        "arrival_pattern": spec.arrival_pattern,
        "limits": {"budget_per_hour_usd": spec.budget_per_hour_usd, "power_w": spec.power_w, "racks": spec.racks},
        "workload": spec.workload,
        "search": {"candidates": len(report.candidates), "pairs": len(report.candidates) * len(spec.rates_per_s),
                   "pruned": len(report.reasons), "simulated": len(rows),
                   "failed": sum(1 for r in rows if r.get("status") != "ok"), "pruned_by": pruned_by},
        "candidates": [c for c in cands if any((c["key"], float(r)) in by_pair for r in spec.rates_per_s)],
        "recommended": recommended,
        "pareto": [c["key"] for c in front],
        "by_rate": by_rate,
    }
    if spec.hardware_file is not None:  # user chips: `twinfer deploy` reads them from the same file
        doc["hardware_file"] = spec.hardware_file
    return doc


def candidate_by_key(report: PruneReport) -> dict[str, Candidate]:
    """Candidates of a prune report by key."""
    return {c.key: c for c in report.candidates}
