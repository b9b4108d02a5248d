"""Soak: 64 concurrent streaming clients against `twinfer serve` on loopback for 60 s.

Run:  .venv/bin/python benchmarks/serve_soak.py                       # default scenario fleet, 64 x 60 s
      .venv/bin/python benchmarks/serve_soak.py --clients 16 --duration-s 20 --model llama-3-8b

Each client sends streaming chat completions back to back (prompt 50..2000
characters, max_tokens 16..256, drawn from a seeded generator); one request in
16 hangs up after a few tokens, to exercise cancellation under load. Clients
stop sending at the deadline and wait for answers in flight (bounded by
--drain-s). Then the benchmark checks, from the server's /metrics and
/twinfer/requests:

- errors: any non-200 answer, broken stream or missing [DONE] (target 0);
- leaks: requests in flight and queued after the run (target 0) and the
  server's asyncio task count when idle, before vs after (target: equal);
- ITL jitter: for every pair of consecutive tokens, |served gap - simulated
  gap / speed|, where served gaps are the client's receive times and simulated
  gaps come from the server's record of the fleet's token times; mean and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_common import ServerProcess  # noqa: E402
from twinfer.serve.text import WORDS  # noqa: E402


def scrape(url: str) -> dict[str, float]:
    """Unlabelled samples of /metrics as a dict."""
    out = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def sse_chat(host: str, port: int, body: bytes, hang_up: bool) -> dict:
    """One streaming chat over a raw asyncio connection: (id, receive time of each content token, ...).

    A bare HTTP/1.1 client (no httpx) so that the client process, which shares
    the machine with the server, stamps each token as soon as it can read it.
    """
    rec: dict = {"id": None, "times": [], "error": None, "hung_up": hang_up, "done": False}
    rec["t_send"] = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: "
            b"application/json\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            rec["error"] = f"HTTP {status}: {(head + await reader.read(400))[:400]!r}"
            return rec
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"x-twinfer-request-id:"):
                rec["id"] = line.split(b":", 1)[1].strip().decode()
        pending = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            now = time.perf_counter()
            events = (pending + data).split(b"\n\n")
            pending = events.pop()  # an incomplete event, if any
            for ev in events:
                if b'"content":"' in ev and b'"content":""' not in ev:
                    rec["times"].append(now)
                elif b"data: [DONE]" in ev:
                    rec["done"] = True
            if rec["done"] or (hang_up and len(rec["times"]) >= 3):
                break
        if not hang_up and not rec["done"]:
            rec["error"] = "stream ended without [DONE]"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return rec


async def client(
    host: str, port: int, model: str, rng: np.random.Generator, deadline: float, results: list
) -> None:
    """Send streaming chats back to back until ``deadline``; append one record per request."""
    while time.monotonic() < deadline:
        n_words = int(rng.integers(10, 400))
        prompt = " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n_words))
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": int(rng.integers(16, 257)),
            "stream": True,
        }
        hang_up = bool(rng.random() < 1 / 16)
        try:
            rec = await sse_chat(host, port, json.dumps(body).encode(), hang_up)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            rec = {
                "id": None,
                "times": [],
                "error": f"{type(exc).__name__}: {exc}",
                "hung_up": hang_up,
            }
        results.append(rec)


async def drive(
    url: str, model: str, clients: int, duration_s: float, drain_s: float, seed: int
) -> list:
    results: list = []
    deadline = time.monotonic() + duration_s
    host, port = url.removeprefix("http://").rsplit(":", 1)
    tasks = [
        asyncio.create_task(
            client(host, int(port), model, np.random.default_rng([seed, i]), deadline, results)
        )
        for i in range(clients)
    ]
    _done, pending = await asyncio.wait(tasks, timeout=duration_s + drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        results.append(
            {
                "error": f"{len(pending)} clients still busy after the drain window",
                "times": [],
                "id": None,
                "hung_up": False,
            }
        )
    return results


def run_async(coro):  # type: ignore[no-untyped-def]
    """Run ``coro`` on uvloop when installed (lighter client), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenario", nargs="?", help="scenario YAML (default: the built-in scenario)"
    )
    parser.add_argument("--fleet", help="fleet of the scenario (default: its first)")
    parser.add_argument(
        "--model", help="instead of a scenario: one-pool fleet of this model on --hardware"
    )
    parser.add_argument("--hardware", default="h100")
    parser.add_argument("--tp", type=int, default=1)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument(
        "--drain-s", type=float, default=60.0, help="most time to wait for answers in flight"
    )
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.model:
        serve_args = ["--model", args.model, "--hardware", args.hardware, "--tp", str(args.tp)]
    else:
        serve_args = [args.scenario] if args.scenario else []
        serve_args += ["--fleet", args.fleet] if args.fleet else []
    serve_args += ["--speed", str(args.speed), "--max-body-bytes", str(1 << 20)]
    log = Path(tempfile.mkdtemp(prefix="twinfer-serve-soak-")) / "server.log"
    print(
        f"twinfer serve {' '.join(serve_args)} (127.0.0.1); {args.clients} streaming clients for "
        f"{args.duration_s:g} s"
    )
    with ServerProcess(serve_args, log) as server:
        model = httpx.get(server.url + "/v1/models").json()["data"][0]["id"]
        before = scrape(server.url)
        t0 = time.monotonic()
        results = run_async(
            drive(server.url, model, args.clients, args.duration_s, args.drain_s, args.seed)
        )
        wall = time.monotonic() - t0
        time.sleep(1.0)  # let the server finish cancelling hung-up requests
        after = scrape(server.url)
        traces = {t["id"]: t for t in server.traces()}

    errors = [r["error"] for r in results if r["error"]]
    completed = [r for r in results if r["id"] and not r["error"] and not r["hung_up"]]
    gaps_served, gaps_sim, lost = [], [], 0
    ttft_served, ttft_sim = [], []
    for r in completed:
        trace = traces.get(r["id"])
        if trace is None:
            lost += 1
            continue
        sim = np.asarray(trace["token_times_s"][: len(r["times"])]) / args.speed
        served = np.asarray(r["times"])
        if len(served):
            ttft_served.append(served[0] - r["t_send"])
            ttft_sim.append(sim[0] - trace["arrival_s"] / args.speed)
        if len(sim) == len(served) and len(sim) > 1:
            gaps_served.append(np.diff(served))
            gaps_sim.append(np.diff(sim))
    served_gaps = np.concatenate(gaps_served) if gaps_served else np.zeros(0)
    sim_gaps = np.concatenate(gaps_sim) if gaps_sim else np.zeros(0)
    jitter = np.abs(served_gaps - sim_gaps)
    tokens = int(
        after.get("twinfer_completion_tokens_total", 0)
        - before.get("twinfer_completion_tokens_total", 0)
    )

    print(
        f"\nrequests: {len(results)} ({len(completed)} complete, {sum(r['hung_up'] for r in results)} hung up on "
        f"purpose), {tokens} tokens in {wall:.1f} s wall ({tokens / wall:,.0f} tokens/s)"
    )
    print(f"errors: {len(errors)}" + (f" -- first: {errors[0]}" if errors else ""))
    print(
        f"after the run: in flight {after['twinfer_requests_in_flight']:.0f}, queued "
        f"{after['twinfer_queue_length']:.0f}, asyncio tasks {before['twinfer_asyncio_tasks']:.0f} before -> "
        f"{after['twinfer_asyncio_tasks']:.0f} after, cancelled in the fleet "
        f"{after['twinfer_requests_cancelled_total']:.0f}"
    )
    if jitter.size:
        print(
            f"ITL jitter over {jitter.size:,} token gaps (|served - simulated/speed|): mean "
            f"{jitter.mean() * 1e3:.2f} ms, p50 {np.percentile(jitter, 50) * 1e3:.2f} ms, p99 "
            f"{np.percentile(jitter, 99) * 1e3:.2f} ms, max {jitter.max() * 1e3:.1f} ms"
        )
        print(
            f"mean ITL served {served_gaps.mean() * 1e3:.2f} ms vs simulated {sim_gaps.mean() * 1e3:.2f} ms "
            f"({100 * (served_gaps.mean() / sim_gaps.mean() - 1):+.1f} %)"
        )
    if ttft_served:
        ts, tm = np.asarray(ttft_served), np.asarray(ttft_sim)
        print(
            f"TTFT served (client send -> first token) vs simulated/speed: mean {ts.mean() * 1e3:.1f} vs "
            f"{tm.mean() * 1e3:.1f} ms ({100 * (ts.mean() / tm.mean() - 1):+.1f} %), p50 "
            f"{np.percentile(ts, 50) * 1e3:.1f} vs {np.percentile(tm, 50) * 1e3:.1f} ms, p99 "
            f"{np.percentile(ts, 99) * 1e3:.1f} vs {np.percentile(tm, 99) * 1e3:.1f} ms"
        )
    late_n = after.get("twinfer_pacing_lateness_seconds_count", 0) - before.get(
        "twinfer_pacing_lateness_seconds_count", 0
    )
    late_sum = after.get("twinfer_pacing_lateness_seconds_sum", 0) - before.get(
        "twinfer_pacing_lateness_seconds_sum", 0
    )
    if late_n:
        print(
            f"server-side pacing lateness (token handed to its stream after its simulated time): mean "
            f"{late_sum / late_n * 1e3:.2f} ms over {late_n:,.0f} tokens"
        )
    if lost:
        print(f"{lost} requests had fallen out of the server's trace buffer")
    ok = (
        not errors
        and after["twinfer_requests_in_flight"] == 0
        and after["twinfer_queue_length"] == 0
        and (after["twinfer_asyncio_tasks"] <= before["twinfer_asyncio_tasks"])
    )
    print("PASS" if ok else "FAIL")


if __name__ == "__main__":
    main()
