"""Server metrics in the Prometheus text exposition format (version 0.0.4), no dependency.

Counters of requests by endpoint and status, prompt and completion tokens,
histograms of the served (wall-clock) time to first token and inter-token
latency, and gauges read at scrape time (queue length, in-flight requests).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: Bucket bounds (s) from vLLM's Prometheus metrics (vllm/engine/metrics.py,
#: histogram_time_to_first_token_seconds and histogram_inter_token_latency_seconds).
TTFT_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS_S = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)

#: Pacing lateness buckets (s): how long after its simulated time a token was handed to its stream.
LATENESS_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Histogram:
    """A cumulative-bucket histogram."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)  # per bucket, non-cumulative; last is +Inf
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        """Exposition lines (_bucket, _sum, _count)."""
        out, cumulative = [], 0
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            out.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        out.append(f"{name}_sum {self.total!r}")
        out.append(f"{name}_count {self.n}")
        return out


class ServerMetrics:
    """Everything /metrics reports; gauges are callables read at scrape time."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None) -> None:
        self.requests: dict[tuple[str, int], int] = {}  # (endpoint, status) -> count
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cancelled = 0
        self.ttft = Histogram(TTFT_BUCKETS_S)
        self.itl = Histogram(ITL_BUCKETS_S)
        self.lateness = Histogram(LATENESS_BUCKETS_S)
        self.gauges = gauges or {}

    def count_request(self, endpoint: str, status: int) -> None:
        """Count one answered request."""
        self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1

    def render(self) -> str:
        """The whole exposition text."""
        lines = [
            "# HELP twinfer_requests_total Requests answered, by endpoint and HTTP status.",
            "# TYPE twinfer_requests_total counter",
        ]
        for (endpoint, status), count in sorted(self.requests.items()):
            lines.append(
                f'twinfer_requests_total{{endpoint="{endpoint}",status="{status}"}} {count}'
            )
        for name, help_text, value in (
            (
                "twinfer_prompt_tokens_total",
                "Prompt tokens admitted to the simulated fleet.",
                self.prompt_tokens,
            ),
            (
                "twinfer_completion_tokens_total",
                "Completion tokens sent to clients.",
                self.completion_tokens,
            ),
            (
                "twinfer_requests_cancelled_total",
                "Requests cancelled in the fleet (client gone or stop hit).",
                self.cancelled,
            ),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        for name, help_text, hist in (
            (
                "twinfer_time_to_first_token_seconds",
                "Served time to first token (wall clock).",
                self.ttft,
            ),
            (
                "twinfer_inter_token_latency_seconds",
                "Served time between tokens (wall clock).",
                self.itl,
            ),
            (
                "twinfer_pacing_lateness_seconds",
                "Wall delay of each token past its simulated time (the server keeping up).",
                self.lateness,
            ),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram", *hist.lines(name)]
        for name, (help_text, read) in self.gauges.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {read()!r}"]
        return "\n".join(lines) + "\n"
