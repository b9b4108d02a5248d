"""Fixtures for the workload tests: the shipped trace samples and small file factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def traces_dir(data_dir: Path) -> Path:
    """tests/data/traces: heads of the public traces plus hand-written samples."""
    return data_dir / "traces"


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator (tests pass one explicitly, never a global RNG)."""
    return np.random.default_rng(20241123)


@pytest.fixture
def corrupt(tmp_path: Path) -> Callable[[Path, int, str], Path]:
    """Copy a trace into tmp_path with file line ``line`` (1-based) replaced by ``text``."""

    def make(source: Path, line: int, text: str) -> Path:
        lines = source.read_text(encoding="utf-8").splitlines()
        lines[line - 1] = text
        out = tmp_path / source.name
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out

    return make
