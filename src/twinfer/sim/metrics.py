"""Turn a finished :class:`FleetSim` into per-request columns and a flat summary.

Definitions of every column and summary key are in :mod:`twinfer.sim.results`.
Cost and power: each instance costs ``price_per_hour_usd`` for the whole run
and draws ``idle_w + (max_w - idle_w) * busy_fraction`` (a linear
utilisation model, as used by Splitwise's and DistServe's cost studies and by
common data-centre power models; the idle and max figures come from the
hardware presets, see ``twinfer/hardware/presets.toml`` for each source, or
from the scenario's overrides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from twinfer.sim.cluster import FleetSim
from twinfer.sim.prefix_stats import prefix_summary
from twinfer.sim.request import RequestState
from twinfer.sim.results import FleetResult, PoolStats
from twinfer.sim.scheduler import TBT_BIN_BASE, TBT_BIN_LOG_STEP
from twinfer.sim.speculative_batch import speculative_summary


@dataclass(frozen=True)
class PoolPricing:
    """Price and power of one instance of a pool (after scenario overrides)."""

    hardware: str
    devices: int
    price_per_hour_usd: float
    power_idle_w: float
    power_max_w: float


def request_columns(sim: FleetSim, slo_ttft_s: float, slo_tpot_s: float) -> dict[str, np.ndarray]:
    """The per-request columns of :data:`twinfer.sim.results.REQUEST_COLUMNS` (workload order)."""
    reqs = sim.requests
    n = len(reqs)
    f8 = np.float64

    def col(attr: str, dtype: Any = f8) -> np.ndarray:
        return np.fromiter(map(attrgetter(attr), reqs), dtype=dtype, count=n)

    cols: dict[str, np.ndarray] = {
        "request_id": col("rid", np.int64),
        "arrival_s": col("arrival_s"),
        "prompt_tokens": col("prompt_tokens", np.int64),
        "output_tokens": col("output_tokens", np.int64),
    }
    state = col("state", np.int8)
    rejected = state == RequestState.REJECTED
    cols["status"] = np.where(rejected, 1, np.where(state == RequestState.DONE, 0, 2)).astype(np.int8)
    cols["reject_reason"] = rejected.astype(np.int8)
    cols["prefill_instance"] = col("prefill_instance", np.int32)
    cols["decode_instance"] = col("decode_instance", np.int32)
    for name, attr in (("prefill_start_s", "prefill_start_s"), ("prefill_end_s", "prefill_end_s"),
                       ("first_token_s", "first_token_s"), ("kv_transfer_start_s", "kv_start_s"),
                       ("kv_transfer_end_s", "kv_end_s"), ("decode_start_s", "decode_start_s"),
                       ("finish_s", "finish_s")):
        cols[name] = col(attr)
    arrival, first, finish = cols["arrival_s"], cols["first_token_s"], cols["finish_s"]
    out = cols["output_tokens"]
    cols["ttft_s"] = first - arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["tpot_s"] = np.where(out > 1, (finish - first) / np.maximum(out - 1, 1), np.nan)
    cols["e2e_s"] = finish - arrival
    mt = col("max_tbt_s")
    cols["max_tbt_s"] = np.where(out > 1, mt, np.nan)
    cols["queue_s"] = cols["prefill_start_s"] - arrival
    cols["preemptions"] = col("preemptions", np.int32)
    done = cols["status"] == 0
    tpot_ok = np.where(out > 1, cols["tpot_s"] <= slo_tpot_s, True)
    cols["slo_met"] = done & (cols["ttft_s"] <= slo_ttft_s) & tpot_ok
    return cols


def _stats(prefix: str, x: np.ndarray, out: dict[str, Any], pcts: tuple[int, ...] = (50, 90, 99)) -> None:
    x = x[~np.isnan(x)]
    out[f"{prefix}_mean_s"] = float(x.mean()) if x.size else math.nan
    for p in pcts:
        out[f"{prefix}_p{p}_s"] = float(np.percentile(x, p)) if x.size else math.nan


def tbt_histogram(sim: FleetSim) -> tuple[np.ndarray, np.ndarray]:
    """All token gaps of the run as (bin lower edges in s, token counts), merged over instances."""
    merged: dict[int, int] = {}
    for inst in sim.instances:
        for b, w in inst.sched.tbt_hist.items():
            merged[b] = merged.get(b, 0) + w
    if not merged:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    bins = np.array(sorted(merged), dtype=np.int64)
    weights = np.array([merged[b] for b in bins], dtype=np.int64)
    edges = np.where(bins > 0, TBT_BIN_BASE * np.exp((bins - 1) * TBT_BIN_LOG_STEP), 0.0)
    return edges, weights


def _hist_percentile(edges: np.ndarray, weights: np.ndarray, p: float) -> float:
    """Percentile of a log-binned histogram: geometric middle of the bin holding it."""
    if not weights.size:
        return math.nan
    cum = np.cumsum(weights)
    i = int(np.searchsorted(cum, p / 100.0 * cum[-1], side="left"))
    lo = edges[i]
    return float(lo * math.sqrt(math.exp(TBT_BIN_LOG_STEP))) if lo > 0 else 0.0


def summarize(name: str, sim: FleetSim, cols: dict[str, np.ndarray], pricing: dict[str, PoolPricing],
              slo_ttft_s: float, slo_tpot_s: float, slo_attainment: float = 0.9) -> tuple[dict[str, Any], list[PoolStats]]:
    """The flat summary dict and per-pool stats of a finished run."""
    s: dict[str, Any] = {"fleet": name, "mode": sim.mode}
    n = int(cols["request_id"].size)
    done = cols["status"] == 0
    s["requests"] = n
    s["completed"] = int(done.sum())
    s["rejected"] = int((cols["status"] == 1).sum())
    duration = float(np.nanmax(cols["finish_s"])) if done.any() else 0.0
    s["duration_s"] = duration
    _stats("ttft", cols["ttft_s"][done], s)
    _stats("tpot", cols["tpot_s"][done], s)
    _stats("e2e", cols["e2e_s"][done], s)
    q = cols["queue_s"][done]
    s["queue_mean_s"] = float(np.nanmean(q)) if q.size else math.nan
    s["queue_p99_s"] = float(np.nanpercentile(q, 99)) if q.size else math.nan
    out_tok = cols["output_tokens"][done]
    multi = done & (cols["output_tokens"] > 1)
    gaps = float((cols["output_tokens"][multi] - 1).sum())
    s["tbt_mean_s"] = float((cols["finish_s"][multi] - cols["first_token_s"][multi]).sum() / gaps) if gaps else math.nan
    edges, weights = tbt_histogram(sim)
    for p in (50, 90, 99):
        s[f"tbt_p{p}_s"] = _hist_percentile(edges, weights, p)
    s["tbt_max_s"] = float(np.nanmax(cols["max_tbt_s"][multi])) if multi.any() else math.nan
    total_out = float(out_tok.sum())
    total_in = float(cols["prompt_tokens"][done].sum())
    per_s = 1.0 / duration if duration > 0 else math.nan
    s["output_tokens"] = int(total_out)
    s["throughput_output_tok_s"] = total_out * per_s
    s["throughput_total_tok_s"] = (total_out + total_in) * per_s
    s["throughput_rps"] = float(done.sum()) * per_s
    tp = cols["tpot_s"][multi]
    s["tokens_per_s_per_user_mean"] = float(np.mean(1.0 / tp[tp > 0])) if (tp > 0).any() else math.nan
    met = int(cols["slo_met"].sum())
    s["slo_ttft_s"], s["slo_tpot_s"] = slo_ttft_s, slo_tpot_s
    s["slo_attainment"] = met / n if n else math.nan
    # Goodput is a rate of requests served within SLO: the offered rate (requests over
    # the arrival window) times the fraction that met both SLOs. Dividing by the run's
    # makespan instead would charge a fleet for draining its slowest request after the
    # last arrival, which says nothing about the rate it sustains.
    arrivals = cols["arrival_s"]
    window = float(arrivals.max() - arrivals.min()) if n > 1 else 0.0
    s["offered_rps"] = (n - 1) / window if window > 0 else math.nan
    s["goodput_rps"] = s["offered_rps"] * s["slo_attainment"] if window > 0 else met * per_s
    # Below the attainment target the fleet does not sustain the offered rate, so offered x attainment
    # would claim SLO-meeting requests it never delivered (an absurd rate gave 6.4e11 req/s against 16.5
    # served): goodput is then at most the SLO-meeting requests per second of the run (first arrival to
    # last finish), never more than was served.
    busy_s = duration - float(arrivals.min()) if n else 0.0
    if n and met / n < slo_attainment and busy_s > 0:
        s["goodput_rps"] = min(s["goodput_rps"], met / busy_s)
    price = energy = 0.0
    instances = devices = 0
    pools: list[PoolStats] = []
    for role, pool in sim.pools.items():
        pr = pricing[role]
        insts = pool.instances
        busy = sum(i.busy_s for i in insts)
        steps = sum(i.steps for i in insts)
        seqs = sum(i.seqs_sum for i in insts)
        # the queue integrals up to the end of the run, read without touching the simulator
        pool_q, pool_h, wait_kv, wait_batch = pool.totals_at(duration)
        areas = [i.areas_at(duration) for i in insts]
        q_area = pool_q + sum(a[0] for a in areas)
        h_area = pool_h + sum(a[1] for a in areas)
        kv_blocked = sum(i.kv_blocked_s for i in insts) + wait_kv
        batch_full = sum(i.batch_full_s for i in insts) + wait_batch
        price += pr.price_per_hour_usd * len(insts)
        energy += len(insts) * pr.power_idle_w * duration + (pr.power_max_w - pr.power_idle_w) * busy
        instances += len(insts)
        devices += pr.devices * len(insts)
        util = busy / (duration * len(insts)) if duration > 0 else math.nan
        key = f"pool.{role}"
        s[f"{key}.hardware"] = pr.hardware
        s[f"{key}.instances"] = len(insts)
        s[f"{key}.utilisation"] = util
        s[f"{key}.kv_blocked_frac"] = kv_blocked / (duration * len(insts)) if duration > 0 else math.nan
        s[f"{key}.batch_full_frac"] = batch_full / (duration * len(insts)) if duration > 0 else math.nan
        s[f"{key}.queue_mean"] = q_area / duration if duration > 0 else math.nan
        s[f"{key}.in_system_mean"] = h_area / duration if duration > 0 else math.nan
        s[f"{key}.kv_capacity_tokens"] = pool.kv_tokens
        s[f"{key}.max_batch_seqs"] = pool.max_seqs
        s[f"{key}.steps"] = steps
        s[f"{key}.mean_batch_seqs"] = seqs / steps if steps else 0.0
        s.update(speculative_summary(key, pool.setup.speculative, [i.sched for i in insts]))
        pools.append(PoolStats(
            role=role, hardware=pr.hardware, instances=len(insts), devices_per_instance=pr.devices,
            price_per_hour_usd=pr.price_per_hour_usd, power_idle_w=pr.power_idle_w, power_max_w=pr.power_max_w,
            kv_capacity_tokens=pool.kv_tokens, max_batch_seqs=pool.max_seqs, busy_s=busy, steps=steps,
            batch_seqs_sum=seqs, kv_blocked_s=kv_blocked, batch_full_s=batch_full, queue_area=q_area,
            in_system_area=h_area, series_t_s=pool.series_t, series_waiting=pool.series_waiting,
            series_running=pool.series_running,
        ))
    s["instances"] = instances
    s["devices"] = devices
    s["price_per_hour_usd"] = price
    s["cost_per_m_output_tok_usd"] = price * duration / 3600.0 / total_out * 1e6 if total_out else math.nan
    s["energy_j"] = energy
    s["energy_per_output_tok_j"] = energy / total_out if total_out else math.nan
    s["avg_power_w"] = energy / duration if duration > 0 else math.nan
    s["tokens_per_s_per_mw"] = s["throughput_output_tok_s"] / (s["avg_power_w"] / 1e6) if energy else math.nan
    s["kv_bytes_transferred"] = sim.kv_bytes
    s["kv_link_utilisation"] = (sum(lk.busy_s for lk in sim.links) / (duration * len(sim.links))
                                if sim.links and duration > 0 else 0.0)
    s["preemptions"] = int(cols["preemptions"].sum())
    s.update(prefix_summary(sim))  # nothing without a prefix cache
    return s, pools


def fleet_result(name: str, sim: FleetSim, pricing: dict[str, PoolPricing], slo_ttft_s: float,
                 slo_tpot_s: float, slo_attainment: float = 0.9) -> FleetResult:
    """Collect a finished simulation into a :class:`FleetResult`."""
    cols = request_columns(sim, slo_ttft_s, slo_tpot_s)
    summary, pools = summarize(name, sim, cols, pricing, slo_ttft_s, slo_tpot_s, slo_attainment)
    return FleetResult(name=name, summary=summary, requests=cols, pools=pools, tbt_hist=tbt_histogram(sim),
                       timeline=sim.timeline)
