"""The ``twinfer`` command line. Each command group lives in its own module here.

Modules in ``COMMAND_MODULES`` define ``register(app)``; they must import heavy
dependencies (torch, pyarrow, fastapi, ...) inside their command functions so
``twinfer --help`` stays fast. User mistakes raise :class:`TwinferError`, which
:func:`main` prints as one message with a non-zero exit status.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

import typer

from twinfer.errors import TwinferError

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = [
    "twinfer.cli.catalog",
    "twinfer.cli.simulate",
    "twinfer.cli.hardware",
    "twinfer.cli.estimate",
    "twinfer.cli.calibrate",
    "twinfer.cli.report",
    "twinfer.cli.sweep", "twinfer.cli.results", "twinfer.cli.plan",
    "twinfer.cli.compile",
    "twinfer.cli.run",
    "twinfer.cli.serve",
    "twinfer.cli.workload",
]

app = typer.Typer(
    name="twinfer",
    help="A digital twin of disaggregated LLM inference: virtual LPU, GPU models, fleet simulator.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """A digital twin of disaggregated LLM inference: virtual LPU, GPU models, fleet simulator."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def _not_utf8(argv: list[str] | None, exc: UnicodeDecodeError) -> str:
    """Which input file is not UTF-8 text, and at which line: the first file named on the command line that
    fails to decode (a file only referenced from another one gets the general message)."""
    from pathlib import Path

    fix = "save it as UTF-8 text"
    for arg in argv if argv is not None else sys.argv[1:]:
        path = Path(arg)
        try:
            if not path.is_file() or path.stat().st_size > 256 * 1024**2:
                continue
            data = path.read_bytes()
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = data[: bad.start].count(b"\n") + 1
            return f"{path} line {line}: not UTF-8 text (byte 0x{data[bad.start]:02x}); {fix}"
        except OSError:
            continue
    return f"an input file is not UTF-8 text ({exc.reason}, byte 0x{exc.object[exc.start]:02x}); {fix}"


@functools.cache
def _click_command() -> Any:
    """The click command typer builds from ``app`` (built once: typer rebuilds it on every call, ~0.15 s)."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one clear message and exit status 2."""
    try:
        # With standalone_mode=False click returns a typer.Exit's code instead of raising it.
        code = _click_command()(args=argv, standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    except TwinferError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except UnicodeDecodeError as exc:
        typer.echo(f"error: {_not_utf8(argv, exc)}", err=True)
        return 2
    except OSError as exc:
        # A path the user gave cannot be read or written (a folder where a file goes, no permission,
        # disk full): the operating system's reason and the path are the whole story.
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}; check the path and its permissions", err=True)
        return 2
    except MemoryError:
        typer.echo("error: out of memory; make the workload (num_requests, duration_s) or the fleet smaller",
                   err=True)
        return 2
    except Exception as exc:
        # Usage errors (unknown option, bad value) from the click layer typer vendors.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            show()
            return int(exc.exit_code)  # type: ignore[attr-defined]
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
