"""What a simulation run returns: per-request columns, a flat summary, per-pool stats.

This module is the contract read by the planner (summary metrics), the HTML
report (result files) and the emulation server (timestamps). Names below are
stable; add new ones rather than renaming.

Definitions (all times in seconds of simulated time, from the first arrival at t=0
of the workload's clock):

* **TTFT** = first-token time - arrival. The first token comes from the
  instance that ran the prefill (DistServe, Splitwise), so a disaggregated
  request's TTFT does not include its KV transfer.
* **TBT** (time between tokens) = gap between two consecutive output tokens of
  one request. The simulator does not store every gap: it keeps, per request,
  the largest gap (``max_tbt_s``), and fleet-wide a log-binned histogram of all
  gaps weighted by how many tokens saw them (bins 1 % wide, so TBT percentiles
  are exact to ~1 %).
* **TPOT** (time per output token) = (finish - first token) / (output tokens - 1),
  the mean gap of one request; NaN for one-token requests.
* **e2e** = finish - arrival.
* **SLO met** = TTFT <= ``slo.ttft_s`` and TPOT <= ``slo.tpot_s`` (one-token
  requests only need TTFT). DistServe's *goodput* is the highest request rate at
  which at least ``slo.attainment`` of requests meet both: a sweep over rates (the
  planner's job). One run reports ``slo_attainment`` (fraction of requests that met
  both) and ``goodput_rps`` = ``offered_rps`` x ``slo_attainment`` (requests
  meeting both per second of offered load; ``offered_rps`` = (requests - 1) /
  arrival window). Throughput, cost per token and energy are per second of the
  whole run (to the last finish), so a run's drain after its last arrival counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Per-request columns of :attr:`FleetResult.requests` (numpy arrays, one row per
#: request in workload order). Times are NaN when the phase did not happen.
REQUEST_COLUMNS: dict[str, str] = {
    "request_id": "int64: index of the request in the workload (arrival order)",
    "arrival_s": "float64: arrival time",
    "prompt_tokens": "int64: prompt length",
    "output_tokens": "int64: output tokens wanted (and produced, when completed)",
    "status": "int8: 0 completed, 1 rejected (see reject_reason), 2 cancelled (FleetSim.cancel)",
    "reject_reason": "int8: 0 none, 1 prompt+output never fits the KV cache of one instance",
    "prefill_instance": "int32: global instance index that ran the (first) prefill, -1 none",
    "decode_instance": "int32: global instance index that ran the decode, -1 none",
    "prefill_start_s": "float64: first scheduled prefill chunk starts",
    "prefill_end_s": "float64: last prefill chunk ends (= first token time)",
    "first_token_s": "float64: first output token emitted",
    "kv_transfer_start_s": "float64: KV transfer to the decode instance starts (disaggregated)",
    "kv_transfer_end_s": "float64: KV transfer ends",
    "decode_start_s": "float64: first decode step including the request starts",
    "finish_s": "float64: last output token emitted",
    "ttft_s": "float64: first_token_s - arrival_s",
    "tpot_s": "float64: (finish_s - first_token_s) / (output_tokens - 1)",
    "e2e_s": "float64: finish_s - arrival_s",
    "max_tbt_s": "float64: largest gap between two consecutive tokens",
    "queue_s": "float64: prefill_start_s - arrival_s (waiting before the first prefill chunk)",
    "preemptions": "int32: times the request was preempted (KV recomputed)",
    "slo_met": "bool: TTFT and TPOT within the scenario's SLO",
}

#: Keys of :attr:`FleetResult.summary` (a flat JSON-serialisable dict).
SUMMARY_KEYS: dict[str, str] = {
    "fleet": "fleet name",
    "mode": "aggregated, disaggregated, or AFD (disaggregated with an attention/FFN-split decode pool)",
    "requests": "requests in the workload",
    "completed": "requests completed",
    "rejected": "requests rejected (never fit one instance's KV cache)",
    "duration_s": "simulated time from t=0 to the last finish",
    "output_tokens": "output tokens of completed requests",
    "workload, seed": "workload label and the seed used (added by simulate_fleet)",
    "ttft_{mean,p50,p90,p99}_s": "TTFT statistics over completed requests",
    "tpot_{mean,p50,p90,p99}_s": "TPOT statistics over completed requests with >1 output token",
    "tbt_{mean,p50,p90,p99,max}_s": "time between tokens over all token gaps (histogram, ~1 %)",
    "e2e_{mean,p50,p90,p99}_s": "end-to-end latency statistics",
    "queue_{mean,p99}_s": "waiting before the first prefill chunk",
    "throughput_output_tok_s": "output tokens / duration_s",
    "throughput_total_tok_s": "(prompt + output tokens) / duration_s",
    "throughput_rps": "completed requests / duration_s",
    "tokens_per_s_per_user_mean": "mean over requests of 1/TPOT (decode speed a user sees)",
    "slo_attainment": "fraction of all requests meeting TTFT and TPOT SLOs (rejected count as missed)",
    "goodput_rps": "offered_rps x slo_attainment: requests per second of offered load that met both SLOs",
    "offered_rps": "(requests - 1) / (last arrival - first arrival)",
    "slo_ttft_s, slo_tpot_s": "the thresholds used",
    "instances": "instances in the fleet",
    "devices": "GPUs or LPU chips in the fleet",
    "price_per_hour_usd": "fleet price per hour (sum over instances)",
    "cost_per_m_output_tok_usd": "price_per_hour * duration / output tokens * 1e6",
    "energy_j": "sum over instances of idle_w * duration + (max_w - idle_w) * busy_time",
    "energy_per_output_tok_j": "energy_j / output tokens",
    "avg_power_w": "energy_j / duration_s",
    "tokens_per_s_per_mw": "throughput_output_tok_s / (avg_power_w / 1e6)",
    "kv_bytes_transferred": "KV-cache bytes moved prefill -> decode",
    "kv_link_utilisation": "mean over KV links of busy-bandwidth fraction",
    "preemptions": "KV-recompute preemptions",
    "pool.<role>.hardware, pool.<role>.instances": "device preset and instance count of the pool",
    "pool.<role>.ep": "pools with wide expert parallelism only: attention replicas the experts are split over",
    "pool.<role>.afd": "AFD pools only: the attention and FFN groups, the link between them and the micro-batches",
    "pool.<role>.utilisation": "mean busy fraction of the pool's instances",
    "pool.<role>.kv_blocked_frac": "per instance, fraction of time a queued request was held back by a full KV cache "
    "(measured over the steps run while it waited, plus decode-pool time with hand-offs pending for KV room)",
    "pool.<role>.batch_full_frac": "the same for the max_batch_seqs cap (an LPU's compiled batch, for instance)",
    "pool.<role>.queue_mean": "time-average requests waiting at the pool (exact integral)",
    "pool.<role>.in_system_mean": "time-average requests held by the pool (waiting + running + transferring)",
    "pool.<role>.kv_capacity_tokens": "KV capacity of one instance",
    "pool.<role>.max_batch_seqs": "batch cap of one instance",
    "pool.<role>.steps": "forward steps run by the pool",
    "pool.<role>.mean_batch_seqs": "mean sequences per step",
    "prefix_*, pool.<role>.prefix_*": "prefix-cache figures, only with a prefix cache (twinfer.sim.prefix_stats)",
    "autoscale.*": "autoscaled fleets only: cost and SLO attainment against the static fleet at peak "
    "(twinfer.sim.autoscale_results.AUTOSCALE_KEYS)",
    "pool.<role>.speculative.{method,k,acceptance,draft_model}": "speculative pools only: the pool's settings",
    "pool.<role>.speculative.draft_hardware": "a draft model on devices of its own (speculative.draft_devices) only",
    "pool.<role>.speculative.verify_steps": "verify steps summed over decode members",
    "pool.<role>.speculative.tokens_per_step": "measured mean tokens a member emitted per verify step (capped at its "
    "output); expected_tokens_per_step: the closed form (1 - a^(k+1)) / (1 - a); drawn_tokens_per_step: the "
    "uncapped mean of the draws used",
}


@dataclass
class PoolStats:
    """Counters of one pool (role ``mixed``, ``prefill`` or ``decode``) after a run."""

    role: str
    hardware: str
    instances: int
    devices_per_instance: int
    price_per_hour_usd: float  # per instance
    power_idle_w: float  # per instance
    power_max_w: float  # per instance
    kv_capacity_tokens: int  # per instance
    max_batch_seqs: int  # per instance
    busy_s: float  # summed over instances
    steps: int
    batch_seqs_sum: int  # sum over steps of sequences in the step
    kv_blocked_s: float  # time with a request held back only by KV, summed over instances
    batch_full_s: float  # time with a request held back only by the batch cap
    queue_area: float  # integral of waiting requests over time
    in_system_area: float  # integral of requests held over time
    #: sampled series: (time_s, waiting, running) at the fleet's sample interval
    series_t_s: list[float] = field(default_factory=list)
    series_waiting: list[int] = field(default_factory=list)
    series_running: list[int] = field(default_factory=list)


@dataclass
class FleetResult:
    """Everything one fleet's run produced: summary, per-request columns, pool stats.

    ``requests`` maps each name in :data:`REQUEST_COLUMNS` to a numpy array;
    ``tbt_hist`` is ``(bin_edges_s, weights)`` of all token gaps; ``timeline``
    holds batch/transfer spans when the run recorded them (see
    :mod:`twinfer.sim.timeline`), else None.
    """

    name: str
    summary: dict[str, Any]
    requests: dict[str, np.ndarray]
    pools: list[PoolStats]
    tbt_hist: tuple[np.ndarray, np.ndarray]
    timeline: list[tuple] | None = None
    #: autoscaled fleets: instance counts per role over time and the paid-instance steps
    #: (see twinfer.sim.autoscale_results); None for a fleet that keeps its size
    autoscale: dict[str, Any] | None = None


@dataclass
class ScenarioResult:
    """Results of every fleet of a scenario, in scenario order, for one seed."""

    scenario_name: str
    seed: int
    fleets: list[FleetResult]

    def summaries(self) -> list[dict[str, Any]]:
        """The summary dict of each fleet (for tables and JSON)."""
        return [f.summary for f in self.fleets]
