"""The core package and the CLI's help must not pull in heavy optional dependencies."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "ray", "fastapi", "pyarrow", "plotly", "duckdb")


def _imported_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_import_twinfer_is_light() -> None:
    loaded = _imported_after("import twinfer, twinfer.models, twinfer.perf, twinfer.hardware")
    assert not {m for m in HEAVY if m in loaded}


def test_cli_help_is_light() -> None:
    loaded = _imported_after(
        "import contextlib, io\nfrom twinfer.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help'])"
    )
    assert not {m for m in HEAVY if m in loaded}
