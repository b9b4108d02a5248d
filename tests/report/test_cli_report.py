"""`twinfer report` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinfer.cli import main


def test_report_command_writes_the_page(sim_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(sim_dir), "-o", str(out)]) == 0
    assert out.exists() and 'id="twinfer-data"' in out.read_text()
    assert "wrote" in capsys.readouterr().out


def test_report_command_user_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
