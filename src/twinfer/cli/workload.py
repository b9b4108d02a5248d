"""``twinfer workload``: read a trace or a scenario's workload and print what the simulator will see."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _load_config(
    source: str, fmt: str | None, skip_bad_rows: bool, rate_per_s: float | None = None
) -> Any:
    """A WorkloadConfig from a trace path/builtin name, or from a YAML file's ``workload`` section."""
    from twinfer.errors import ConfigError
    from twinfer.workload import WorkloadConfig

    path = Path(source)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        if not path.is_file():
            raise ConfigError(f"{source}: no such file")
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({exc})") from exc
        section = doc.get("workload", doc) if isinstance(doc, dict) else doc
        where = (
            f"{path.name}: workload" if isinstance(doc, dict) and "workload" in doc else path.name
        )
        if skip_bad_rows and isinstance(section, dict):
            section = {**section, "skip_bad_rows": True}
        return WorkloadConfig.from_dict(section, where=where, base_dir=path.parent)
    d: dict[str, Any] = {"trace": source, "skip_bad_rows": skip_bad_rows}
    if fmt:
        d["format"] = fmt
    if rate_per_s is not None:
        d["arrivals"] = {"kind": "poisson", "rate_per_s": rate_per_s}
    return WorkloadConfig.from_dict(d, where="command line")


def describe_workload(workload: Any) -> dict[str, Any]:
    """Counts, rate, burstiness and length percentiles of a workload (plain floats for JSON)."""
    import numpy as np

    def pct(values: Any) -> dict[str, float]:
        q = np.percentile(values, [50, 90, 99]) if len(values) else [0.0] * 3
        return {
            "mean": float(np.mean(values)) if len(values) else 0.0,
            "p50": float(q[0]),
            "p90": float(q[1]),
            "p99": float(q[2]),
            "max": float(np.max(values)) if len(values) else 0.0,
        }

    gaps = np.diff(workload.arrival_s)
    out: dict[str, Any] = {
        "name": workload.name,
        "source": workload.source,
        "requests": len(workload),
        "duration_s": workload.duration_s,
        "mean_rate_per_s": workload.mean_rate_per_s,
        "interarrival_cv": float(gaps.std() / gaps.mean())
        if len(gaps) and gaps.mean() > 0
        else None,
        "prompt_tokens": pct(workload.prompt_tokens),
        "output_tokens": pct(workload.output_tokens),
        "skipped_rows": workload.skipped_rows,
        "notes": list(workload.notes),
    }
    if workload.prefix_block_ids is not None:
        ids = (
            np.concatenate(workload.prefix_block_ids)
            if len(workload)
            else np.zeros(0, dtype=np.int64)
        )
        unique = len(np.unique(ids))
        out["prefix_blocks"] = {
            "total": int(len(ids)),
            "unique": unique,
            "reused_fraction": 1.0 - unique / len(ids) if len(ids) else 0.0,
            "block_tokens": workload.prefix_block_tokens,
        }
    return out


def workload_command(
    source: Annotated[
        str,
        typer.Argument(
            help="Trace file, builtin:NAME, or a scenario YAML with a workload: section."
        ),
    ] = "builtin:azure-conv-sample",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Trace format when not detectable: azure2023, azure2024, mooncake, sharegpt, twinfer-csv, twinfer-jsonl.",
        ),
    ] = None,
    skip_bad_rows: Annotated[
        bool,
        typer.Option(
            "--skip-bad-rows", help="Drop malformed rows and count them instead of failing."
        ),
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Replace a trace's arrivals with Poisson arrivals at this rate (req/s); needed for ShareGPT.",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Seed for synthetic arrivals/lengths (same as twinfer simulate's)."
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Read a trace or build a scenario's workload; print request count, rate, burstiness, length percentiles."""
    import json

    import numpy as np

    from twinfer.cli import checks
    from twinfer.errors import ConfigError
    from twinfer.workload import build_workload

    checks.seed(seed)
    config = _load_config(source, fmt, skip_bad_rows, rate)
    try:
        workload = build_workload(config, np.random.default_rng(seed))
    except ConfigError as exc:
        if "without timestamps" in str(exc):
            raise ConfigError(f"{exc} (on the command line: --rate R)") from exc
        raise
    info = describe_workload(workload)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"workload {info['name']} ({info['source']})")
    for col in ("", "mean", "p50", "p90", "p99", "max"):
        table.add_column(col, justify="right" if col else "left")
    for key in ("prompt_tokens", "output_tokens"):
        row = info[key]
        table.add_row(
            key,
            *(
                f"{row[k]:,.1f}" if k == "mean" else f"{row[k]:,.0f}"
                for k in ("mean", "p50", "p90", "p99", "max")
            ),
        )
    console = Console()
    cv = info["interarrival_cv"]
    console.print(
        f"{info['requests']:,} requests over {info['duration_s']:,.1f} s: {info['mean_rate_per_s']:.3f} req/s, "
        f"inter-arrival CV {cv:.2f}"
        if cv is not None
        else f"{info['requests']:,} requests"
    )
    console.print(table)
    if "prefix_blocks" in info:
        pb = info["prefix_blocks"]
        console.print(
            f"prefix blocks ({pb['block_tokens']} tokens): {pb['total']:,} total, {pb['unique']:,} unique, "
            f"{100 * pb['reused_fraction']:.1f}% reused"
        )
    for note in info["notes"]:
        console.print(f"note: {note}")


def register(app: typer.Typer) -> None:
    """Add ``twinfer workload`` to ``app``."""
    app.command("workload")(workload_command)
