"""``twinfer models``: list the shipped model presets."""

from __future__ import annotations

from typing import Annotated

import typer

from twinfer.cli.console import out_console


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List model presets with parameter counts and KV-cache bytes per token."""
    import json

    from rich.table import Table

    from twinfer.models import load_model, preset_names

    specs = [load_model(name) for name in preset_names()]
    if as_json:
        rows = [
            {
                "name": spec.name,
                "architecture": spec.architecture,
                "params": spec.param_count(),
                "active_params": spec.active_param_count(),
                "kv_bytes_per_token_bf16": spec.kv_bytes_per_token("bf16"),
                "layers": spec.num_layers,
                "attention": spec.attention,
            }
            for spec in specs
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Model presets (published Hugging Face configs)")
    for col in ("model", "arch", "layers", "params", "active/token", "KV bytes/token (bf16)"):
        table.add_column(col, justify="right" if col not in ("model", "arch") else "left")
    for spec in specs:
        table.add_row(
            spec.name, spec.architecture, str(spec.num_layers), f"{spec.param_count() / 1e9:.2f} B",
            f"{spec.active_param_count() / 1e9:.2f} B", f"{spec.kv_bytes_per_token('bf16'):,.0f}",
        )

    # Off a terminal (pipes, files) rich would wrap to 80 columns and cut model names.
    out_console(160).print(table)


def register(app: typer.Typer) -> None:
    """Add ``twinfer models`` to ``app``."""
    app.command("models")(models_command)
