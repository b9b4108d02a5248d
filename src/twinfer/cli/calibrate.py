"""``twinfer calibrate``: measure GEMM, attention and copy kernels on this machine and fit the GPU model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twinfer.cli.hardware import HardwareFileOption, load_extra


def calibrate_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Calibration JSON to write.")] = Path("calibration.json"),
    size: Annotated[str, typer.Option("--size", help="tiny (seconds, for tests/CPU) or full (minutes, for a GPU).")] = "full",
    dtype: Annotated[str, typer.Option("--dtype", help="Kernel dtype: bf16, fp16 or fp32.")] = "bf16",
    hardware: Annotated[str | None, typer.Option("--hardware", help="Preset the efficiencies are relative to (default: detected from the CUDA device name; on a CPU the best measured throughputs).")] = None,
    hardware_file: HardwareFileOption = None,
) -> None:
    """Run microbenchmarks with torch (CUDA if present, else CPU), fit efficiency curves, write a calibration file.

    Load it with ``twinfer estimate --calibration FILE`` (or GpuStepCost(efficiency=load_calibration(FILE))).
    """
    import json

    from twinfer.cli.checks import output_file
    from twinfer.errors import ConfigError
    from twinfer.gpu.calibrate import CalibrationPlan, calibrate

    output_file(out, "--out")
    from twinfer.hardware import GpuSpec, get_hardware

    plans = {"tiny": CalibrationPlan.tiny, "full": CalibrationPlan.full}
    if size not in plans:
        raise ConfigError(f"--size must be tiny or full, got {size!r}")
    spec = None
    if hardware is not None:
        found = get_hardware(hardware, load_extra(hardware_file))
        if not isinstance(found, GpuSpec):
            raise ConfigError(f"{found.name} is not a GPU; calibrate fits the GPU model")
        spec = found
    typer.echo(f"calibrating ({size}): GEMM, attention and memory-copy microbenchmarks with torch; "
               + ("this takes minutes (use --size tiny for a quick check)" if size == "full" else "a few seconds"),
               err=True)
    doc = calibrate(plans[size](), dtype=dtype, spec=spec)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    typer.echo(f"device: {doc['device_name']} ({doc['device']}), torch {doc['torch_version']}, {doc['date']}")
    typer.echo(f"efficiencies relative to: {doc['reference_hardware']}")
    for key, value in doc["params"].items():
        typer.echo(f"  {key:24} {value:.6g}")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``twinfer calibrate`` to ``app``."""
    app.command("calibrate")(calibrate_command)
