"""``twinfer hardware``: list the GPU, LPU, link and rack presets (and a user's own file) with sources."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from twinfer.cli.console import out_console

HardwareFileOption = Annotated[
    Path | None,
    typer.Option("--hardware-file", help="TOML/YAML file adding your own chips and links (same layout as presets.toml)."),
]


def load_extra(path: Path | None) -> Any:
    """The user's hardware file as a HardwareSet, or None (shared by the commands that take --hardware-file).

    Each preset the file replaces is said on stderr, with the names that now mean the user's entry.
    """
    if path is None:
        return None
    from twinfer.hardware import load_hardware_file, replacement_notes

    extra = load_hardware_file(path)
    for note in replacement_notes(extra):
        typer.echo(f"note: {note}", err=True)
    return extra


def _spec_dict(spec: Any) -> dict[str, Any]:
    import dataclasses

    out = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    out["sources"] = dict(spec.sources)
    out["uncertain"] = list(spec.uncertain)
    if "ranges" in out:
        out["ranges"] = {k: list(v) for k, v in spec.ranges.items()}
    for key in ("peak_flops_per_s", "peak_ops_per_s"):
        if key in out:
            out[key] = dict(out[key])
    return out


def _fmt(spec: Any, key: str, text: str) -> str:
    """Mark values whose source is a guess with [U]."""
    unc = any(u == key or u.startswith(key + ".") for u in spec.uncertain)
    return f"{text} [U]" if unc else text


def hardware_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (all fields, sources, uncertain flags).")] = False,
    sources: Annotated[bool, typer.Option("--sources", help="Print the source of every value.")] = False,
    hardware_file: HardwareFileOption = None,
) -> None:
    """List hardware presets: memory, bandwidth, dense peaks, power, assumed price; [U] marks a guess."""
    import json

    from rich.table import Table

    from twinfer.hardware import (
        get_hardware,
        get_link,
        get_rack,
        hardware_names,
        link_names,
        rack_names,
    )

    extra = load_extra(hardware_file)
    chips = [get_hardware(n, extra) for n in hardware_names(extra)]
    links = [get_link(n, extra) for n in link_names(extra)]
    racks = [get_rack(n, extra) for n in rack_names(extra)]
    if as_json:
        typer.echo(json.dumps({"chips": [_spec_dict(s) for s in chips], "links": [_spec_dict(s) for s in links],
                               "racks": [_spec_dict(s) for s in racks]}, indent=2))
        return

    # Piped output has no terminal width: print full lines rather than rich's 80 columns with "..." cuts.
    console = out_console(240)
    table = Table(title="Chips (dense peaks; price is an assumption: override it)")
    for col in ("name", "kind", "memory", "mem BW", "peak", "power idle/max", "$/h (assumed)", "scale-up"):
        table.add_column(col, no_wrap=col == "name", overflow="fold")
    from twinfer.hardware import GpuSpec

    for s in chips:
        if isinstance(s, GpuSpec):
            mem, bw = f"{s.memory_bytes / 1e9:.0f} GB HBM", f"{s.mem_bw_bytes_per_s / 1e12:.2f} TB/s"
            rates, up = s.peak_flops_per_s, f"{s.scale_up_link} x{s.scale_up_gpus}"
        else:
            mem, bw = f"{s.sram_bytes / 1e6:.0f} MB SRAM", f"{s.sram_bw_bytes_per_s / 1e12:.0f} TB/s"
            rates, up = s.peak_ops_per_s, f"{s.c2c_links} x {s.c2c_link}"
        peak = ", ".join(f"{k} {v / 1e12:,.0f}T" for k, v in rates.items())
        key_mem = "memory_bytes" if s.kind == "gpu" else "sram_bytes"
        key_bw = "mem_bw_bytes_per_s" if s.kind == "gpu" else "sram_bw_bytes_per_s"
        key_rate = "peak_flops_per_s" if s.kind == "gpu" else "peak_ops_per_s"
        table.add_row(
            s.name, s.kind, _fmt(s, key_mem, mem), _fmt(s, key_bw, bw), _fmt(s, key_rate, peak),
            _fmt(s, "power_idle_w", f"{s.power_idle_w:.0f}") + " / " + _fmt(s, "power_max_w", f"{s.power_max_w:.0f} W"),
            _fmt(s, "price_per_hour_usd", f"{s.price_per_hour_usd:.2f}"), up,
        )
    console.print(table)
    ltable = Table(title="Links (per direction)")
    for col in ("name", "bandwidth", "latency", "per node"):
        ltable.add_column(col, overflow="fold")
    for link in links:
        ltable.add_row(link.name, _fmt(link, "bw_bytes_per_s", f"{link.bw_bytes_per_s / 1e9:.0f} GB/s"),
                       _fmt(link, "latency_s", f"{link.latency_s * 1e6:.1f} us"), str(link.links_per_node))
    console.print(ltable)
    _print_racks(console, racks)
    if sources:
        stable = Table(title="Sources ([U] = uncertain / guess, with its range where one is given)")
        for col in ("entry", "field", "source"):
            stable.add_column(col, overflow="fold")
        for entry in (*chips, *links, *racks):
            spans = getattr(entry, "ranges", {})
            for key, src in entry.sources.items():
                span = f" range {spans[key][0]:g}..{spans[key][1]:g}" if key in spans else ""
                stable.add_row(entry.name, key + (" [U]" if key in entry.uncertain else "") + span, src)
        console.print(stable)
    else:
        console.print("[U] marks a guessed or weakly sourced value; --sources shows every source.")


def _print_racks(console: Any, racks: list[Any]) -> None:
    """One row per rack: its devices, fabric and power."""
    from rich.table import Table

    table = Table(title="Racks (system facts)")
    for col in ("name", "devices", "scale-up", "attach link", "rack power"):
        table.add_column(col, no_wrap=col == "name")
    for r in racks:
        power = "not public" if r.power_max_w is None else _fmt(r, "power_max_w", f"{r.power_max_w / 1e3:.0f} kW")
        table.add_row(r.name, _fmt(r, "devices", f"{r.devices} x {r.device}"),
                      _fmt(r, "scale_up_bw_bytes_per_s", f"{r.scale_up_link}, {r.scale_up_bw_bytes_per_s / 1e12:.0f} TB/s"),
                      r.attach_link or "-", power)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``twinfer hardware`` to ``app``."""
    app.command("hardware")(hardware_command)
