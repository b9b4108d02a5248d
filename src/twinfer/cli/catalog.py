"""``twinfer models``: list the shipped model presets."""

from __future__ import annotations

from typing import Annotated

import typer


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """List model presets with parameter counts and KV-cache bytes per token."""
    import json

    from rich.console import Console
    from rich.table import Table

    from twinfer.models import load_model, preset_names

    rows = []
    for name in preset_names():
        spec = load_model(name)
        rows.append(
            {
                "name": name,
                "architecture": spec.architecture,
                "params": spec.param_count(),
                "active_params": spec.active_param_count(),
                "kv_bytes_per_token_bf16": spec.kv_bytes_per_token("bf16"),
                "layers": spec.num_layers,
                "attention": spec.attention,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Model presets (published Hugging Face configs)")
    for col in ("model", "arch", "layers", "params", "active/token", "KV bytes/token (bf16)"):
        table.add_column(col, justify="right" if col not in ("model", "arch") else "left")
    for r in rows:
        table.add_row(
            r["name"], r["architecture"], str(r["layers"]), f"{r['params'] / 1e9:.2f} B",
            f"{r['active_params'] / 1e9:.2f} B", f"{r['kv_bytes_per_token_bf16']:,.0f}",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``twinfer models`` to ``app``."""
    app.command("models")(models_command)
