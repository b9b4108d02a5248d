"""A stand-in for the simulator in sweep-engine tests: a closed-form function of the scenario.

It appends the id of every scenario it computes to the file named by the
TWINFER_TEST_MARKER environment variable (test code only), so a test can
tell which scenarios a run recomputed.
"""

from __future__ import annotations

import os
import time
from typing import Any

from twinfer.plan.grid import scenario_id

#: How sweep tests name this runner (worker processes import it by module name).
FAKE_RUNNER = "fake_runner:run"


def base_scenario() -> dict[str, Any]:
    """A tiny scenario mapping in the shape :func:`run` reads."""
    return {"workload": {"rate": 1.0}, "fleet": {"pools": [{"hardware": "h100", "count": 1}]}}


def run(scenario: dict[str, Any], seed: int, base_dir: str | None = None) -> dict[str, Any]:
    """Throughput = rate x count; raises when the scenario says ``fail: true``; sleeps ``sleep_s``.

    ``gate: {file, above_rate}`` holds scenarios whose rate is above ``above_rate``
    until ``file`` exists (up to 60 s), so a test can stop a sweep midway without racing it.
    """
    marker = os.environ.get("TWINFER_TEST_MARKER")
    if marker:
        with open(marker, "a", encoding="utf-8") as fh:
            fh.write(scenario_id(scenario, seed) + "\n")
    time.sleep(float(scenario.get("sleep_s", 0.0)))
    gate = scenario.get("gate")
    if gate and scenario["workload"]["rate"] > gate["above_rate"]:  # hold until the test opens the gate
        deadline = time.monotonic() + 60
        while not os.path.exists(gate["file"]) and time.monotonic() < deadline:
            time.sleep(0.02)
    if scenario.get("fail"):
        raise ValueError("this scenario was asked to fail")
    rate = scenario["workload"]["rate"]
    count = scenario["fleet"]["pools"][0]["count"]
    return {"throughput": rate * count, "seed_echo": seed, "pool": {"count": count}}


def fail(scenario: dict[str, Any], seed: int, base_dir: str | None = None) -> dict[str, Any]:
    """A runner whose every scenario fails (for the exit status of a run where nothing worked)."""
    raise RuntimeError("this runner always fails")
