"""Running sweeps: results match the runner, failures are recorded, an interrupted sweep resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_runner import FAKE_RUNNER

from twinfer.cli import main
from twinfer.errors import ConfigError
from twinfer.plan.grid import expand, load_sweep
from twinfer.plan.store import ResultStore, query
from twinfer.plan.sweep import run_sweep

HERE = Path(__file__).resolve().parent


def _by_id(folder: Path) -> dict[str, tuple]:
    _, rows = query(folder, "SELECT scenario_id, status, throughput, error FROM results")
    return {r[0]: r[1:] for r in rows}


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_rows_match_the_runner_and_failures_are_recorded(make_sweep_file, tmp_path, workers) -> None:
    jobs = expand(load_sweep(make_sweep_file(
        grid={"workload.rate": [1.5, 2.0], "fleet.pools.0.count": [1, 3]},
        cases=[{"fail": False}, {"fail": True}],
    )))
    out = tmp_path / "out"
    outcome = run_sweep(jobs, ResultStore(out), runner=FAKE_RUNNER, workers=workers, batch_size=3)
    assert (outcome.total, outcome.ran, outcome.failed, outcome.skipped) == (8, 8, 4, 0)
    assert outcome.parts_written == 3  # 3 + 3 + 2 rows
    got = _by_id(out)
    for job in jobs:
        status, throughput, error = got[job.scenario_id]
        if job.scenario["fail"]:
            assert (status, throughput) == ("error", None)
            assert "ValueError: this scenario was asked to fail" in error
        else:
            rate, count = job.scenario["workload"]["rate"], job.scenario["fleet"]["pools"][0]["count"]
            assert (status, throughput, error) == ("ok", rate * count, None)
    # override values are columns of their own; nested summary keys are flattened with dots
    _, rows = query(out, 'SELECT "workload.rate", "fleet.pools.0.count", "pool.count" FROM results '
                         "WHERE status = 'ok' ORDER BY sweep_index")
    assert rows == [(1.5, 1, 1), (1.5, 3, 3), (2.0, 1, 1), (2.0, 3, 3)]


def test_rerun_skips_done_and_retry_failed_reruns_errors(make_sweep_file, tmp_path, monkeypatch) -> None:
    jobs = expand(load_sweep(make_sweep_file(grid={"workload.rate": [1, 2, 3]}, cases=[{"fail": True}, {"fail": False}])))
    store = ResultStore(tmp_path / "out")
    run_sweep(jobs, store, runner=FAKE_RUNNER)
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("TWINFER_TEST_MARKER", str(marker))
    again = run_sweep(jobs, store, runner=FAKE_RUNNER)
    assert (again.ran, again.skipped) == (0, 6) and not marker.exists()
    retried = run_sweep(jobs, store, runner=FAKE_RUNNER, retry_failed=True)
    assert (retried.ran, retried.failed, retried.skipped) == (3, 3, 3)
    assert sorted(marker.read_text().split()) == sorted(j.scenario_id for j in jobs[:3])
    _, rows = query(store.folder, "SELECT count(*), count(DISTINCT scenario_id) FROM results")
    assert rows == [(6, 6)]


def test_a_folder_of_another_sweep_is_refused(make_sweep_file, tmp_path) -> None:
    store = ResultStore(tmp_path / "out")
    run_sweep(expand(load_sweep(make_sweep_file(grid={"workload.rate": [1]}, name="a"))), store, runner=FAKE_RUNNER)
    other = expand(load_sweep(make_sweep_file(grid={"workload.rate": [2]}, name="b")))
    with pytest.raises(ConfigError, match="--extend"):
        run_sweep(other, store, runner=FAKE_RUNNER)
    assert run_sweep(other, store, runner=FAKE_RUNNER, extend=True).ran == 1


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from twinfer.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def test_killed_sweep_resumes_without_recomputing(make_sweep_file, tmp_path) -> None:
    """Kill a real CLI sweep (SIGKILL, whole process group) after some parts exist; rerun finishes it."""
    n, gate = 16, tmp_path / "gate"
    path = make_sweep_file(grid={"workload.rate": list(range(1, n + 1))}, base={
        "workload": {"rate": 1}, "fleet": {"pools": [{"hardware": "h100", "count": 2}]}, "sleep_s": 0.2,
        "gate": {"file": str(gate), "above_rate": 4}})  # rates 5.. wait until the kill has landed
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = _cli("sweep", str(path), "--out", str(out), "--workers", "2", "--batch-size", "2", "--runner", FAKE_RUNNER)
    first = subprocess.Popen(args, env={**env, "TWINFER_TEST_MARKER": str(tmp_path / "run1.txt")},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while len(list(out.glob("part-*.parquet"))) < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = ResultStore(out).done()
    assert 2 <= len(done_before) < n, "the kill must land midway for this test to mean anything"
    rows_before = query(out, "SELECT * FROM results ORDER BY scenario_id")[1]
    gate.touch()

    second = subprocess.run(args, env={**env, "TWINFER_TEST_MARKER": str(tmp_path / "run2.txt")},
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    recomputed = (tmp_path / "run2.txt").read_text().split()
    all_ids = {j.scenario_id for j in expand(load_sweep(path))}
    assert not set(recomputed) & set(done_before)  # nothing already written was run again
    assert set(recomputed) | set(done_before) == all_ids
    assert len(recomputed) == len(set(recomputed))
    _, rows = query(out, "SELECT count(*), count(DISTINCT scenario_id), min(status), max(status) FROM results")
    assert rows == [(n, n, "ok", "ok")]  # every scenario exactly once
    _, rows = query(out, "SELECT sum(throughput) FROM results")
    assert rows == [(2 * n * (n + 1) / 2,)]  # rate x count summed by hand
    kept = query(out, f"SELECT * FROM results WHERE scenario_id IN {tuple(done_before)} ORDER BY scenario_id")[1]
    assert kept == rows_before  # the first run's rows are untouched


def test_sigterm_stops_cleanly_and_writes_what_finished(make_sweep_file, tmp_path) -> None:
    """SIGTERM (like Ctrl-C) stops the workers, writes the finished rows even mid-batch, and exits 130."""
    n, gate = 16, tmp_path / "gate"
    path = make_sweep_file(grid={"workload.rate": list(range(1, n + 1))}, base={
        "workload": {"rate": 1}, "fleet": {"pools": [{"hardware": "h100", "count": 1}]}, "sleep_s": 0.3,
        "gate": {"file": str(gate), "above_rate": 6}})  # rates 7.. wait until the signal has landed
    out, marker = tmp_path / "out", tmp_path / "started.txt"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TWINFER_TEST_MARKER": str(marker)}
    args = _cli("sweep", str(path), "--out", str(out), "--workers", "2", "--batch-size", "1000", "--runner", FAKE_RUNNER)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while (not marker.exists() or len(marker.read_text().split()) < 5) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = ResultStore(out).done()
    assert 1 <= len(done) < n  # the batch of 1000 was never full: these rows were written on the way out
    gate.touch()
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    _, rows = query(out, "SELECT count(*), count(DISTINCT scenario_id) FROM results")
    assert rows == [(n, n)]


def test_cli_sweep_then_results_query(make_sweep_file, tmp_path, capsys) -> None:
    path = make_sweep_file(grid={"workload.rate": [1, 2]}, cases=[{"fleet.pools.0.count": 2}])
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--runner", FAKE_RUNNER]) == 0
    capsys.readouterr()
    sql = 'SELECT "workload.rate" AS rate, throughput FROM results ORDER BY rate'
    assert main(["results", "query", sql, "--dir", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["rate,throughput", "1,2", "2,4"]
    assert main(["results", "query", "SELECT nope FROM results", "--dir", str(out)]) == 2
    assert "query failed" in capsys.readouterr().err


def test_ray_backend_without_ray_says_how_to_install(make_sweep_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    jobs = expand(load_sweep(make_sweep_file(grid={"workload.rate": [1]})))
    with pytest.raises(ConfigError, match=r"pip install 'twinfer\[ray\]'"):
        run_sweep(jobs, ResultStore(tmp_path / "out"), runner=FAKE_RUNNER, backend="ray")


@pytest.mark.slow
def test_ray_backend_on_a_local_ray(make_sweep_file, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    jobs = expand(load_sweep(make_sweep_file(
        grid={"workload.rate": [1, 2, 3, 4]}, cases=[{"fail": False}, {"fail": True}])))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning",
             runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}})
    try:
        outcome = run_sweep(jobs, ResultStore(tmp_path / "out"), runner=FAKE_RUNNER, backend="ray", batch_size=3)
    finally:
        ray.shutdown()
    assert (outcome.ran, outcome.failed) == (8, 4)
    got = _by_id(tmp_path / "out")
    for job in jobs:
        status, throughput, _ = got[job.scenario_id]
        assert status == ("error" if job.scenario["fail"] else "ok")
        assert throughput == (None if job.scenario["fail"] else job.scenario["workload"]["rate"])


# ---- misuse: the parent killed alone, two sweeps into one folder, every scenario failing -------------


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has exited; only its parent's wait is missing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _slow_sweep(make_sweep_file, n: int = 12, sleep_s: float = 1.0, gate: Path | None = None) -> Path:
    """``n`` scenarios of ``sleep_s`` each; with ``gate``, each then waits for that file to exist."""
    base = {"workload": {"rate": 1}, "fleet": {"pools": [{"hardware": "h100", "count": 2}]}, "sleep_s": sleep_s}
    if gate is not None:
        base["gate"] = {"file": str(gate), "above_rate": 0}
    return make_sweep_file(grid={"workload.rate": list(range(1, n + 1))}, base=base)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(90)
def test_workers_die_when_the_sweep_process_is_sigkilled(make_sweep_file, tmp_path) -> None:
    """SIGKILL only the parent (not its process group): its workers must not outlive it."""
    args = _cli("sweep", str(_slow_sweep(make_sweep_file)), "--out", str(tmp_path / "out"), "--workers", "2",
                "--runner", FAKE_RUNNER)
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 40
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [pid for pid in _children(proc.pid) if _running(pid)]
            time.sleep(0.05)
        assert len(workers) >= 2, "the sweep never started its worker processes"
        time.sleep(0.5)  # let them pick up scenarios (blocked in a runner, as in the report)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _running(pid)], "worker processes outlived the killed sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.timeout(90)
def test_a_second_sweep_into_a_busy_folder_is_refused(make_sweep_file, tmp_path) -> None:
    out, gate = tmp_path / "out", tmp_path / "gate"  # the first sweep holds the folder until the gate opens
    args = _cli("sweep", str(_slow_sweep(make_sweep_file, n=6, sleep_s=0.1, gate=gate)), "--out", str(out),
                "--workers", "1", "--runner", FAKE_RUNNER)
    first = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        lock = out / ".twinfer.lock"
        deadline = time.monotonic() + 40
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"in use by pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        gate.touch()
        assert first.wait(timeout=60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
    _, rows = query(out, "SELECT count(*), count(DISTINCT scenario_id) FROM results")
    assert rows == [(6, 6)]
    assert len(ResultStore(out).done()) == 6


def test_a_stale_lock_of_a_dead_process_is_taken_over(make_sweep_file, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".twinfer.lock").write_text(f"{dead.pid}\n")
    outcome = run_sweep(expand(load_sweep(make_sweep_file(grid={"workload.rate": [1, 2]}))), ResultStore(out),
                        runner=FAKE_RUNNER)
    assert (outcome.ran, outcome.failed) == (2, 0)
    assert (out / ".twinfer.lock").read_text().strip() == str(os.getpid())


def test_a_sweep_in_which_every_scenario_fails_exits_nonzero(make_sweep_file, tmp_path, capsys) -> None:
    path = make_sweep_file(grid={"workload.rate": [1, 2]}, cases=[{"fail": True}])
    code = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--runner", FAKE_RUNNER])
    assert code == 1
    assert "every scenario that ran failed (2 of 2)" in capsys.readouterr().err
    some_ok = make_sweep_file(grid={"workload.rate": [1, 2]}, cases=[{"fail": True}, {"fail": False}], name="m")
    assert main(["sweep", str(some_ok), "--out", str(tmp_path / "out2"), "--workers", "1",
                 "--runner", FAKE_RUNNER]) == 0
