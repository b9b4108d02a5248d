"""A few bad inputs through a real `twinfer` process: the exit status and stderr a shell sees."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    (["simulate", "--seed", "-1"], "--seed"),
    (["serve", "--fixed-ttft-ms", "-5"], "--fixed-ttft-ms"),
    (["workload", "--rate", "1e300"], "rate_per_s"),
    (["results", "query", "", "--dir", "{tmp}"], "{tmp}"),
    (["simulate", "--trace", "{tmp}"], "--trace"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv,mention", CASES, ids=[" ".join(a[:2]) for a, _ in CASES])
def test_real_process_exits_2_without_traceback(argv, mention, tmp_path) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from twinfer.cli import main; sys.exit(main(sys.argv[1:]))", *argv],
        capture_output=True, text=True, timeout=50)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.lower().startswith("error:")]
    assert len(errors) == 1 and mention.replace("{tmp}", str(tmp_path)) in errors[0], proc.stderr
