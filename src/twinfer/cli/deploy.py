"""``twinfer deploy``: launch commands, Dynamo graphs and Kubernetes manifests for a planned or simulated fleet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twinfer.cli.hardware import HardwareFileOption, load_extra


def deploy_command(
    source: Annotated[Path, typer.Argument(help="Folder (or plan.json / summary.json) from `twinfer plan` or `twinfer simulate --out`.")],
    engine: Annotated[str, typer.Option("--engine", help="vllm, sglang or dynamo.")] = "vllm",
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the artefacts into.")] = Path("deploy"),
    fleet: Annotated[str | None, typer.Option("--fleet", help="Fleet key (plan) or name (simulation); default: the "
                                              "plan's recommendation, or the only simulated fleet.")] = None,
    hardware_file: HardwareFileOption = None,
) -> None:
    """Write per-pool launch commands, worker configs and a Kubernetes manifest for the chosen fleet.

    User chips come from ``--hardware-file``, else the plan's own hardware file or the specs the
    simulation recorded; a fleet on LPU chips only is refused (the engines serve GPUs).
    """
    from twinfer.deploy import deploy_notes, load_fleet, render

    chosen = load_fleet(source, fleet, load_extra(hardware_file))
    files = render(chosen, engine)
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if rel.endswith(".sh"):
            path.chmod(0o755)
    typer.echo(f"wrote {len(files)} files for {chosen.name} ({engine}) to {out}: {', '.join(sorted(files))}")
    for note in deploy_notes(chosen, engine):
        typer.echo(f"note: {note}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``twinfer deploy`` to ``app``."""
    app.command("deploy")(deploy_command)
