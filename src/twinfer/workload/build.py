"""build_workload: turn a :class:`WorkloadConfig` and a numpy Generator into a :class:`Workload`.

Steps, in this order: (1) requests from the trace, or synthetic arrivals then
prompt lengths then output lengths (that draw order fixes the random stream, so
the same config and seed give identical arrays), or session starts then the
sessions' turns (:mod:`twinfer.workload.sessions`); (2) a trace's arrival times
replaced by ``arrivals`` when given; (2b) ``rate_profile`` stretching and
``prefix_block_tokens``; (3) ``rate_scale``; (4) only requests arriving before
``duration_s``; (5) the first ``max_requests``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from twinfer.errors import ConfigError, DataError, UnknownNameError
from twinfer.workload.arrivals import renewal_arrivals, replayed_arrivals
from twinfer.workload.config import BUILTIN_PREFIX, ArrivalConfig, LengthConfig, WorkloadConfig
from twinfer.workload.diurnal import diurnal_arrivals
from twinfer.workload.lengths import (
    empirical_lengths,
    fixed_lengths,
    lognormal_lengths,
    uniform_lengths,
)
from twinfer.workload.rate_profile import stretch_workload
from twinfer.workload.readers import read_trace
from twinfer.workload.sessions import session_workload
from twinfer.workload.types import Workload

#: Traces shipped inside the package (see workload/data/README.txt for origin and licence).
BUILTIN_TRACES = {
    "azure-conv-sample": "azure2023_conv_sample.csv",
    "mooncake-conv-sample": "mooncake_conversation_sample.jsonl",
}


def builtin_trace_names() -> list[str]:
    """Names usable as ``builtin:NAME``."""
    return sorted(BUILTIN_TRACES)


def resolve_trace(spec: str | Path) -> Path:
    """The file for a trace spec: ``builtin:NAME`` or a path."""
    text = str(spec)
    if not text.startswith(BUILTIN_PREFIX):
        return Path(text)
    name = text[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_TRACES:
        raise UnknownNameError(
            f"unknown built-in trace {text!r}; available: "
            + ", ".join(BUILTIN_PREFIX + n for n in builtin_trace_names())
        )
    return Path(str(resources.files("twinfer.workload") / "data" / BUILTIN_TRACES[name]))


def _trace_label(spec: str) -> str:
    return spec[len(BUILTIN_PREFIX) :] if spec.startswith(BUILTIN_PREFIX) else Path(spec).stem


def read_timestamps(spec: str, format: str | None = None) -> np.ndarray:
    """Arrival times for replay: a trace with timestamps, or a text file of one time (s) per line."""
    path = resolve_trace(spec)
    if not path.is_file():
        raise DataError(f"timestamps file {str(path)!r} does not exist")
    with path.open(encoding="utf-8-sig") as fh:
        lines = fh.read().splitlines()
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    try:
        float(first)
        plain = format is None
    except ValueError:
        plain = False
    if not plain:
        workload, report = read_trace(path, format)
        if not report.has_timestamps:
            raise ConfigError(
                f"{path.name}: this {report.format} trace has no timestamps to replay"
            )
        return workload.arrival_s
    times = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = float(text)
        except ValueError:
            raise DataError(
                f"{path.name} line {number}: {text.strip()!r} is not a time in seconds"
            ) from None
        if not np.isfinite(value):
            raise DataError(f"{path.name} line {number}: {text.strip()!r} is not a finite time")
        times.append(value)
    return np.asarray(times, dtype=np.float64)


def _arrivals(
    cfg: ArrivalConfig, rng: np.random.Generator, num: int | None, duration_s: float | None
) -> np.ndarray:
    if cfg.kind == "replay":
        assert cfg.timestamps_file is not None
        stamps = read_timestamps(cfg.timestamps_file, cfg.format)
        return replayed_arrivals(
            stamps, rate_per_s=cfg.rate_per_s, num_requests=num, duration_s=duration_s
        )
    assert cfg.rate_per_s is not None
    if cfg.kind == "diurnal":
        assert cfg.diurnal is not None
        return diurnal_arrivals(
            cfg.rate_per_s, cfg.diurnal, rng, num_requests=num, duration_s=duration_s
        )[0]
    return renewal_arrivals(
        cfg.kind, cfg.rate_per_s, rng, cv=cfg.cv, num_requests=num, duration_s=duration_s
    )


class _TraceCache:
    """Traces read once per build (empirical prompt and output often share one)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str | None], Workload] = {}

    def get(self, spec: str, format: str | None) -> Workload:
        key = (spec, format)
        if key not in self._seen:
            self._seen[key] = read_trace(resolve_trace(spec), format)[0]
        return self._seen[key]


def _lengths(
    cfg: LengthConfig, size: int, rng: np.random.Generator, traces: _TraceCache
) -> np.ndarray:
    if cfg.kind == "fixed":
        assert cfg.value is not None
        return fixed_lengths(cfg.value, size)
    if cfg.kind == "uniform":
        assert cfg.low is not None and cfg.high is not None
        return uniform_lengths(cfg.low, cfg.high, size, rng)
    if cfg.kind == "lognormal":
        assert cfg.sigma is not None
        return lognormal_lengths(cfg.sigma, size, rng, mean=cfg.mean, median=cfg.median)
    assert cfg.trace is not None and cfg.column is not None
    return empirical_lengths(getattr(traces.get(cfg.trace, cfg.format), cfg.column), size, rng)


def _describe(cfg: LengthConfig) -> str:
    params = {
        k: getattr(cfg, k)
        for k in ("value", "low", "high", "mean", "median", "sigma", "trace", "column")
    }
    return f"{cfg.kind}(" + ", ".join(f"{k}={v}" for k, v in params.items() if v is not None) + ")"


def _synthetic(config: WorkloadConfig, rng: np.random.Generator) -> Workload:
    assert config.arrivals and config.prompt_tokens and config.output_tokens
    # Generate in unscaled time; rate_scale is applied afterwards like for traces.
    horizon = config.duration_s * config.rate_scale if config.duration_s is not None else None
    arrival = _arrivals(config.arrivals, rng, config.num_requests, horizon)
    n = len(arrival)
    traces = _TraceCache()
    p_cfg, o_cfg = config.prompt_tokens, config.output_tokens
    paired = (
        p_cfg.kind == o_cfg.kind == "empirical"
        and p_cfg.trace == o_cfg.trace
        and p_cfg.format == o_cfg.format
        and p_cfg.column != o_cfg.column
    )
    if paired:  # draw whole rows so the trace's prompt/output correlation is kept
        assert p_cfg.trace is not None and p_cfg.column is not None and o_cfg.column is not None
        source = traces.get(p_cfg.trace, p_cfg.format)
        rows = rng.integers(0, len(source), size=n)
        prompt = getattr(source, p_cfg.column)[rows]
        output = getattr(source, o_cfg.column)[rows]
    else:
        prompt = _lengths(p_cfg, n, rng, traces)
        output = _lengths(o_cfg, n, rng, traces)
    a = config.arrivals
    rate = f" {a.rate_per_s:g}/s" if a.rate_per_s is not None else ""
    cv = f" cv={a.cv:g}" if a.cv is not None else ""
    recipe = (
        f"synthetic: {a.kind} arrivals{rate}{cv}; prompt {_describe(p_cfg)}; output {_describe(o_cfg)}"
        + ("; rows paired" if paired else "")
    )
    return Workload(
        arrival_s=arrival,
        prompt_tokens=prompt,
        output_tokens=output,
        name=config.name or f"synthetic-{a.kind}",
        source=recipe,
    )


def _sessions(config: WorkloadConfig, rng: np.random.Generator) -> Workload:
    assert config.sessions is not None and config.arrivals is not None
    cfg = config.sessions
    horizon = config.duration_s * config.rate_scale if config.duration_s is not None else None
    starts = _arrivals(config.arrivals, rng, cfg.num_sessions, horizon)
    traces = _TraceCache()

    def sampler(length: LengthConfig) -> Callable[[int], np.ndarray]:
        return lambda n: _lengths(length, n, rng, traces)

    recipe = (
        f"synthetic sessions: {config.arrivals.kind} starts; {cfg.system_prompts} system prompt(s) "
        f"of {cfg.system_prompt_tokens} tokens; turns {_describe(cfg.turns)}; user "
        f"{_describe(cfg.user_tokens)}; reply {_describe(cfg.reply_tokens)}; think "
        f"{cfg.think_time_s:g} s; blocks of {cfg.block_tokens}"
    )
    return session_workload(
        starts,
        cfg.shape(),
        rng,
        sampler(cfg.turns),
        sampler(cfg.user_tokens),
        sampler(cfg.reply_tokens),
        name=config.name or "sessions",
        source=recipe,
    )


def _from_trace(config: WorkloadConfig, rng: np.random.Generator) -> Workload:
    assert config.trace is not None
    workload, report = read_trace(resolve_trace(config.trace), config.format, config.skip_bad_rows)
    source = config.trace if config.trace.startswith(BUILTIN_PREFIX) else workload.source
    name = config.name or _trace_label(config.trace)
    if config.arrivals is not None:
        arrival = _arrivals(config.arrivals, rng, len(workload), None)
        return Workload(
            arrival_s=arrival,
            prompt_tokens=workload.prompt_tokens,
            output_tokens=workload.output_tokens,
            name=name,
            source=f"{source} (lengths) with {config.arrivals.kind} arrivals",
            prefix_block_ids=workload.prefix_block_ids,
            prefix_block_tokens=workload.prefix_block_tokens,
            skipped_rows=workload.skipped_rows,
            notes=workload.notes,
        )
    if not report.has_timestamps:
        raise ConfigError(
            f"workload.trace {config.trace!r} is a {report.format} trace without timestamps; add "
            "arrivals: {kind: poisson, rate_per_s: R} (or gamma/fixed/replay) to the workload"
        )
    return replace(workload, name=name, source=source)


def build_workload(config: WorkloadConfig, rng: np.random.Generator) -> Workload:
    """The requests ``config`` describes; deterministic given ``rng``'s state (see module doc)."""
    config.check()
    if config.sessions is not None:
        workload = _sessions(config, rng)
    elif config.trace is not None:
        workload = _from_trace(config, rng)
    else:
        workload = _synthetic(config, rng)
    if config.rate_profile is not None:
        workload = stretch_workload(workload, config.rate_profile)
    if config.prefix_block_tokens is not None and workload.prefix_block_ids is not None:
        workload = replace(workload, prefix_block_tokens=config.prefix_block_tokens)
    if config.rate_scale != 1.0:
        workload = workload.scaled(config.rate_scale)
    if config.duration_s is not None:
        workload = workload.window(0.0, config.duration_s)
    if config.max_requests is not None:
        workload = workload.head(config.max_requests)
    if not len(workload):
        raise ConfigError(
            f"workload {workload.name!r} has no requests (duration_s={config.duration_s}, "
            f"max_requests={config.max_requests}); widen the limits"
        )
    return workload
