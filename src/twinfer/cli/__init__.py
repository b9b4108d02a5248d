"""The ``twinfer`` command line. Each command group lives in its own module here.

Modules in ``COMMAND_MODULES`` define ``register(app)``; they must import heavy
dependencies (torch, pyarrow, fastapi, ...) inside their command functions so
``twinfer --help`` stays fast. User mistakes raise :class:`TwinferError`, which
:func:`main` prints as one message with a non-zero exit status.
"""

from __future__ import annotations

import importlib
import sys

import typer

from twinfer.errors import TwinferError

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = [
    "twinfer.cli.catalog",
    "twinfer.cli.simulate",
    "twinfer.cli.hardware",
    "twinfer.cli.estimate",
    "twinfer.cli.calibrate", "twinfer.cli.calibrate_lpu",
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one clear message and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
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
