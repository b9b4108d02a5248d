"""Run a sweep's jobs in parallel (local processes or Ray) and stream the results to a :class:`ResultStore`.

Jobs whose id is already in the store are skipped, so rerunning an
interrupted sweep with the same arguments finishes it without recomputing
anything that was written. Results are buffered and written as one part file
per ``batch_size`` finished scenarios (or every ``flush_s`` seconds); a
scenario that raises is recorded as a row with ``status = 'error'`` and does
not stop the sweep.

The runner is any function ``run_one(scenario: dict, seed: int, base_dir=None) -> dict``
of flat (or nested, flattened with dots) JSON-like metrics (``base_dir``: the
folder relative paths in the scenario are read from), named as
``"module:function"`` so worker processes and Ray workers can import it.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from twinfer.errors import ConfigError
from twinfer.plan.grid import Job, canonical_json
from twinfer.plan.store import ResultStore, flatten

#: The runner bound to the fleet simulator (see :mod:`twinfer.plan.runner`).
DEFAULT_RUNNER = "twinfer.plan.runner:run_scenario"
RAY_HINT = "pip install 'twinfer[ray]'"

ProgressFn = Callable[[int, int, int], None]  # (finished now, to run in total, failed so far)
StopFn = Callable[[], bool]  # polled between results: True asks the sweep to stop and keep what is done
POLL_S = 0.25  # how often a waiting sweep checks its stop flag


@dataclass(frozen=True)
class SweepOutcome:
    """What one invocation of :func:`run_sweep` did."""

    total: int  # jobs in the sweep
    skipped: int  # already in the store before this run
    ran: int  # finished (ok or error) and written in this run
    failed: int  # of ``ran``, how many recorded an error
    parts_written: int
    interrupted: bool  # stopped by Ctrl-C / SIGTERM before running everything


_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {}


def resolve_runner(ref: str) -> Callable[..., dict[str, Any]]:
    """Import the ``"module:function"`` runner (cached per process)."""
    if ref not in _RUNNERS:
        module_name, _, attr = ref.partition(":")
        if not attr:
            raise ConfigError(f"runner {ref!r} must be written 'module:function'")
        try:
            _RUNNERS[ref] = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"cannot import runner {ref!r}: {exc}") from exc
    return _RUNNERS[ref]


def execute_job(runner: str, scenario: dict[str, Any], seed: int, base_dir: str | None) -> dict[str, Any]:
    """Run one scenario in a worker; never raises for a scenario's own failure.

    Returns ``{"status", "error", "wall_s", "metrics"}``. ``base_dir`` is where
    relative paths in the scenario (traces) are read from.
    """
    start = time.perf_counter()
    try:
        fn = resolve_runner(runner)
        metrics = fn(scenario, seed, base_dir=base_dir)
        if not isinstance(metrics, dict):
            raise TypeError(f"runner returned {type(metrics).__name__}, expected a dict of metrics")
        status, error = "ok", None
        metrics = flatten(metrics)
    except Exception as exc:  # recorded in the results, by design
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        status, error, metrics = "error", f"{type(exc).__name__}: {exc}{where}", {}
    return {"status": status, "error": error, "wall_s": time.perf_counter() - start, "metrics": metrics}


def make_row(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """The stored row of a finished job: bookkeeping, override values, then metrics."""
    row: dict[str, Any] = {
        "scenario_id": job.scenario_id,
        "sweep_index": job.index,
        "seed": job.seed,
        "status": result["status"],
        "error": result["error"],
        "wall_s": float(result["wall_s"]),
        "params_json": json.dumps(job.params, sort_keys=False),
        "scenario_json": canonical_json(job.scenario),
    }
    for key, value in job.params.items():
        row[key] = value
    for key, value in result["metrics"].items():
        row.setdefault(key, value)
    return row


PR_SET_PDEATHSIG = 1  # linux/prctl.h: deliver a signal to this process when its parent dies
WATCHDOG_S = 1.0  # how often a worker checks that the sweep that started it is still alive


def _die_with_parent(sweep_pid: int) -> None:
    """Make this worker process end when the sweep process ``sweep_pid`` ends, even by SIGKILL.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); a
    daemon thread also polls the parent and ``sweep_pid`` (other systems, and a parent that
    died before prctl ran) and exits the worker when either is gone.
    """
    import os
    import signal
    import sys
    import threading

    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # no prctl in this libc: the watchdog still works
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else (the pid was reused)
            return False
        return True

    def watchdog() -> None:
        while os.getppid() == parent and alive(sweep_pid):
            time.sleep(WATCHDOG_S)
        os._exit(1)

    if os.getppid() != parent or not alive(sweep_pid):
        os._exit(1)
    threading.Thread(target=watchdog, name="twinfer-parent-watchdog", daemon=True).start()


def _init_worker(sweep_pid: int) -> None:
    """Worker initializer: Ctrl-C is handled by the parent, which stops the pool; SIGTERM ends the
    worker; and the worker dies with the sweep process (see :func:`_die_with_parent`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's graceful handler, inherited by fork
    _die_with_parent(sweep_pid)


def _never() -> bool:
    return False


def _iter_serial(jobs: Sequence[Job], runner: str, stop: StopFn = _never) -> Iterator[tuple[Job, dict[str, Any]]]:
    for job in jobs:
        if stop():
            return
        yield job, execute_job(runner, job.scenario, job.seed, job.base_dir)


def _iter_local(
    jobs: Sequence[Job], runner: str, workers: int, stop: StopFn = _never
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Results in completion order from a process pool, at most 2 x workers jobs in flight."""
    import os
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),))
    todo = iter(jobs)
    pending: dict[Future[dict[str, Any]], Job] = {}
    finished = False
    try:
        while True:
            while len(pending) < 2 * workers and (job := next(todo, None)) is not None:
                pending[pool.submit(execute_job, runner, job.scenario, job.seed, job.base_dir)] = job
            if not pending:
                break
            done, _ = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            if stop():
                return
            for fut in sorted(done, key=lambda f: pending[f].index):
                job = pending.pop(fut)
                yield job, fut.result()  # a dead worker raises BrokenProcessPool: stop, flush, rerun resumes
        finished = True
    finally:
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=finished, cancel_futures=True)
        if not finished:  # interrupted: do not wait for scenarios still running
            for proc in procs:
                proc.terminate()


def _iter_ray(
    jobs: Sequence[Job], runner: str, workers: int | None, address: str | None, stop: StopFn = _never
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Results in completion order from Ray tasks (a local Ray, the one already started, or ``address``)."""
    import logging

    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--ray needs the optional Ray extra: {RAY_HINT}") from exc
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
        started = True
    try:
        task = ray.remote(num_cpus=1)(execute_job)
        window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
        todo = iter(jobs)
        pending: dict[Any, Job] = {}
        while True:
            while len(pending) < window and (job := next(todo, None)) is not None:
                pending[task.remote(runner, job.scenario, job.seed, job.base_dir)] = job
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            if stop():
                for ref in pending:
                    ray.cancel(ref, force=True)
                return
            for ref in ready:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died: record it, keep going
                    result = {"status": "error", "error": f"ray task failed: {exc}", "wall_s": 0.0, "metrics": {}}
                yield job, result
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    jobs: Sequence[Job],
    store: ResultStore,
    *,
    runner: str = DEFAULT_RUNNER,
    workers: int = 1,
    backend: str = "local",
    ray_address: str | None = None,
    batch_size: int = 32,
    flush_s: float = 10.0,
    retry_failed: bool = False,
    extend: bool = False,
    progress: ProgressFn | None = None,
    stop: StopFn | None = None,
) -> SweepOutcome:
    """Run the jobs not yet in ``store`` and append their rows to it, batch by batch.

    ``backend`` is ``"local"`` (a process pool of ``workers``; 1 runs in this
    process) or ``"ray"``. ``retry_failed`` reruns scenarios recorded with an
    error. A store holding ids that are not in ``jobs`` is refused unless
    ``extend`` (it would mix two sweeps in one ``results`` view). ``stop`` is
    polled while waiting (every ``POLL_S``): when it turns True the sweep stops
    its workers, writes what finished and returns with ``interrupted`` set.
    """
    import pyarrow.parquet  # noqa: F401  (imported now, not during the last flush of an interrupted run)

    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown sweep backend {backend!r}; use 'local' or 'ray'")
    if workers < 1 or batch_size < 1:
        raise ConfigError("--workers and --batch-size must be at least 1")
    store.folder.mkdir(parents=True, exist_ok=True)
    with store.locked():
        store.prepare()  # only under the lock: it deletes temporary files a running writer would own
        return _run_locked(jobs, store, runner=runner, workers=workers, backend=backend, ray_address=ray_address,
                           batch_size=batch_size, flush_s=flush_s, retry_failed=retry_failed, extend=extend,
                           progress=progress, stop=stop)


def _run_locked(jobs: Sequence[Job], store: ResultStore, *, runner: str, workers: int, backend: str,
                ray_address: str | None, batch_size: int, flush_s: float, retry_failed: bool, extend: bool,
                progress: ProgressFn | None, stop: StopFn | None) -> SweepOutcome:
    """:func:`run_sweep` once this process holds the store's lock."""
    if retry_failed:
        store.drop_failed()
    done = store.done()
    ids = {job.scenario_id for job in jobs}
    foreign = [sid for sid in done if sid not in ids]
    if foreign and not extend:
        raise ConfigError(
            f"{store.folder} holds {len(foreign)} results that are not scenarios of this sweep; "
            "use a new --out folder, or pass --extend to add this sweep to it"
        )
    todo = [job for job in jobs if job.scenario_id not in done]
    skipped = len(jobs) - len(todo)
    stop = stop or _never
    if backend == "ray":
        results = _iter_ray(todo, runner, workers, ray_address, stop)
    elif workers == 1 or len(todo) <= 1:
        results = _iter_serial(todo, runner, stop)
    else:
        results = _iter_local(todo, runner, min(workers, len(todo)), stop)

    buffer: list[dict[str, Any]] = []
    ran = failed = parts = 0
    last_flush = time.monotonic()
    interrupted = False

    def flush() -> None:
        nonlocal parts, last_flush
        if buffer:
            store.write_part(buffer)
            parts += 1
            buffer.clear()
        last_flush = time.monotonic()

    if progress:
        progress(0, len(todo), 0)
    try:
        for job, result in results:
            buffer.append(make_row(job, result))
            ran += 1
            failed += result["status"] != "ok"
            if progress:
                progress(ran, len(todo), failed)
            if len(buffer) >= batch_size or time.monotonic() - last_flush >= flush_s:
                flush()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        flush()
    return SweepOutcome(total=len(jobs), skipped=skipped, ran=ran, failed=failed, parts_written=parts,
                        interrupted=interrupted or ran < len(todo))
