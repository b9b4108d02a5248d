"""A real load generator (NVIDIA aiperf) against `twinfer serve`, next to what the simulator predicts.

Run:  .venv/bin/python benchmarks/serve_aiperf.py                    # aiperf on PATH or beside python
      .venv/bin/python benchmarks/serve_aiperf.py default --fleet "a) colocated H100"   # a scenario's fleet
      .venv/bin/python benchmarks/serve_aiperf.py --aiperf /path/to/venv/bin/aiperf --concurrency 16

What it does, all on 127.0.0.1:
1. trains a small tokenizer offline (benchmarks/serve_common.py) so aiperf and the
   server count prompt tokens identically;
2. starts ``twinfer serve --model MODEL --hardware HW`` (a one-pool simulated fleet
   in real time, x --speed) with that tokenizer;
3. runs ``aiperf profile`` with streaming chat, fixed input/output lengths and
   ``--concurrency N``, server-reported token counts;
4. predicts the same load with the simulator, offline, two ways: (a) replaying
   the arrival times and sizes the server recorded (open loop), (b) N closed-loop
   users with zero client overhead and the same request sizes;
5. prints aiperf's TTFT and inter-token latency (avg, p50, p90, p99) beside both
   predictions and the % differences (target: within 10 %).

aiperf (``pip install aiperf``, 0.13) is a benchmark-only tool with heavy
dependencies (it pins rich and plotly versions older than twinfer's), so it is
best installed in its own virtual environment and passed with ``--aiperf``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import ServerProcess, pct_diff, train_tokenizer  # noqa: E402
from twinfer.serve.build import quick_plan, scenario_plan  # noqa: E402
from twinfer.serve.replay import latency_stats, replay_closed, replay_open  # noqa: E402


def find_aiperf(given: str | None) -> str | None:
    """The aiperf executable: --aiperf, then PATH, then beside this python."""
    for candidate in (given, shutil.which("aiperf"), str(Path(sys.executable).with_name("aiperf"))):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def run_aiperf(
    aiperf: str, url: str, model: str, tokenizer: Path, out: Path, args: argparse.Namespace
) -> dict:
    """Run one aiperf profile; returns its JSON summary."""
    cmd = [
        aiperf, "profile", "--model", model, "--url", url, "--endpoint-type", "chat", "--streaming",
        "--tokenizer", str(tokenizer), "--request-count", str(args.requests),
        "--concurrency", str(args.concurrency), "--warmup-request-count", str(args.warmup),
        "--prompt-input-tokens-mean", str(args.isl), "--prompt-input-tokens-stddev", "0",
        "--prompt-output-tokens-mean", str(args.osl), "--prompt-output-tokens-stddev", "0",
        "--use-server-token-count", "--random-seed", str(args.seed),
        "--output-artifact-dir", str(out), "--ui-type", "none",
    ]  # fmt: skip
    log = out.parent / "aiperf.log"
    with log.open("w") as fh:
        rc = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=args.timeout_s
        ).returncode
    if rc != 0:
        raise SystemExit(f"aiperf failed (exit {rc}); see {log}")
    found = sorted(out.rglob("profile_export_aiperf.json"))
    if not found:
        raise SystemExit(f"aiperf wrote no profile_export_aiperf.json under {out}")
    return json.loads(found[-1].read_text())


def aiperf_metric(summary: dict, tag: str) -> dict[str, float]:
    """avg/p50/p90/p99 of one aiperf metric, in seconds (aiperf exports milliseconds)."""
    m = summary[tag] if tag in summary else next(x for x in summary["records"] if x["tag"] == tag)
    scale = {"ms": 1e-3, "s": 1.0, "us": 1e-6, "ns": 1e-9}[m.get("unit", "ms")]
    return {k: float(m[k]) * scale for k in ("avg", "p50", "p90", "p99")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--aiperf", help="aiperf executable (default: PATH, then beside python)")
    parser.add_argument("scenario", nargs="?", help="scenario YAML; 'default' for the built-in one")
    parser.add_argument("--fleet", help="fleet of the scenario (default: its first)")
    parser.add_argument(
        "--model", default="llama-3-8b", help="without a scenario: one-pool fleet of this model"
    )
    parser.add_argument("--hardware", default="h100")
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="aiperf warm-up requests, excluded from both sides (default: the concurrency)",
    )
    parser.add_argument(
        "--isl", type=int, default=1024, help="input tokens (aiperf synthetic prompts)"
    )
    parser.add_argument("--osl", type=int, default=128, help="output tokens")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--approx-count",
        action="store_true",
        help="server counts prompt tokens as chars/4 instead of with the tokenizer (cheaper admission)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="server --speed (simulated s per wall s); aiperf's wall times are scaled by it to compare",
    )
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument(
        "--keep", type=Path, help="keep artifacts (tokenizer, aiperf export, logs) here"
    )
    args = parser.parse_args()

    args.warmup = args.concurrency if args.warmup is None else args.warmup
    aiperf = find_aiperf(args.aiperf)
    if aiperf is None:
        print(
            "aiperf is not installed (pip install aiperf, ideally in its own venv; then pass --aiperf PATH)"
        )
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="twinfer-serve-aiperf-"))
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(work / "tokenizer")
    if args.scenario:
        plan = scenario_plan(
            None if args.scenario == "default" else Path(args.scenario), args.fleet
        )
        serve_args = [] if args.scenario == "default" else [args.scenario]
        serve_args += ["--fleet", args.fleet] if args.fleet else []
    else:
        plan = quick_plan(model=args.model, hardware=args.hardware, tp=args.tp)
        serve_args = ["--model", args.model, "--hardware", args.hardware, "--tp", str(args.tp)]
    serve_args += ["--speed", str(args.speed)]
    if not args.approx_count:
        serve_args += ["--tokenizer", str(tokenizer)]
    print(f"twinfer serve {' '.join(serve_args)}  (127.0.0.1)")
    print(
        f"aiperf: chat, streaming, concurrency {args.concurrency}, {args.requests} requests, "
        f"ISL {args.isl}, OSL {args.osl}"
    )
    with ServerProcess(serve_args, work / "server.log") as server:
        summary = run_aiperf(aiperf, server.url, plan.model_name, tokenizer, work / "aiperf", args)
        traces = [t for t in server.traces() if t["finish_reason"] is not None]
    (work / "server_traces.json").write_text(json.dumps(traces))
    # aiperf measures wall seconds; x speed puts them on the simulator's clock
    measured = {
        name: {k: v * args.speed for k, v in aiperf_metric(summary, tag).items()}
        for name, tag in (("TTFT", "time_to_first_token"), ("ITL", "inter_token_latency"))
    }

    prompts = [t["prompt_tokens"] for t in traces]
    outputs = [t["max_tokens"] for t in traces]
    open_loop = replay_open(plan.make_sim(), [t["arrival_s"] for t in traces], prompts, outputs)
    closed = replay_closed(plan.make_sim(), prompts, outputs, args.concurrency)
    # aiperf's warm-up requests (cold connections) load the fleet but are not in its statistics:
    # they are the first ``warmup`` requests the server admitted, so skip them here too
    open_loop, closed = open_loop[args.warmup :], closed[args.warmup :]
    predicted = {
        "replay": {
            "TTFT": latency_stats([r.ttft_s for r in open_loop]),
            "ITL": latency_stats([r.itl_s for r in open_loop]),
        },
        "closed": {
            "TTFT": latency_stats([r.ttft_s for r in closed]),
            "ITL": latency_stats([r.itl_s for r in closed]),
        },
    }

    print(
        f"\n{len(traces)} requests; prompt tokens (server count) {min(prompts)}..{max(prompts)}, "
        f"output tokens {min(outputs)}..{max(outputs)}"
    )
    header = f"{'metric':<10}{'stat':<6}{'aiperf ms*':>11}{'sim replay ms':>15}{'diff %':>8}{'sim closed ms':>15}{'diff %':>8}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name in ("TTFT", "ITL"):
        for stat in ("avg", "p50", "p90", "p99"):
            m = measured[name][stat]
            r = predicted["replay"][name][stat]
            c = predicted["closed"][name][stat]
            print(
                f"{name:<10}{stat:<6}{m * 1e3:>11.2f}{r * 1e3:>15.2f}{pct_diff(m, r):>+8.1f}"
                f"{c * 1e3:>15.2f}{pct_diff(m, c):>+8.1f}"
            )
            if stat in ("avg", "p50"):
                worst = max(worst, abs(pct_diff(m, r)))
    print(f"* aiperf's wall-clock numbers x speed {args.speed:g} (simulated ms)")
    verdict = "within" if worst <= 10 else "OUTSIDE"
    print(f"\nworst |aiperf - sim replay| on avg/p50: {worst:.1f} % ({verdict} the 10 % target)")
    admit = np.mean([t["admit_wall_s"] for t in traces])
    late = np.mean([t["first_token_late_s"] for t in traces])
    lag = np.mean([t.get("arrival_lag_wall_s", 0.0) for t in traces])
    print(
        f"server side, wall ms: admission (body read, parse, count) {admit * 1e3:.1f} avg, of which "
        f"{lag * 1e3:.1f} not backdated; first token handed "
        f"to its stream {late * 1e3:.1f} after its simulated time (the rest of a TTFT gap is transport and client)"
    )
    print(f"artifacts: {work}")


if __name__ == "__main__":
    main()
