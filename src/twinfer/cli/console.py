"""The rich Console a command prints its tables to: the terminal's width, or a fixed one when piped."""

from __future__ import annotations

import sys
from typing import Any


def out_console(width_when_piped: int = 200) -> Any:
    """A Console on stdout: the terminal's own width, or ``width_when_piped`` when output goes to a file or pipe.

    A fixed width keeps piped output (logs, tests, ``| less``) free of wraps that depend on ``$COLUMNS``.
    """
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else width_when_piped)
