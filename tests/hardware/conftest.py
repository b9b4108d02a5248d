"""Fixtures for hardware tests: the shared reference tables and user hardware files."""

from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


@pytest.fixture
def gpu_reference_table() -> dict[str, list[str]]:
    """Rows of the GPU spec table in shared/reference/gpu-and-serving.md, keyed by the GPU column."""
    path = REFERENCE / "gpu-and-serving.md"
    if not path.exists():
        pytest.skip("../shared/reference is not present beside the repository")
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in path.read_text().splitlines():
        if line.startswith("| GPU |"):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set(cells[0]) <= {"-"}:
                continue
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def write_file(tmp_path: Path):
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
