"""Shared fixtures and factories for the twinfer test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ../shared beside the repository, when present (CI has it; a bare clone may not).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def shared_dir() -> Path:
    """Path to ../shared/data; skips the test when it is absent."""
    path = SHARED / "data"
    if not path.exists():
        pytest.skip("../shared/data is not present beside the repository")
    return path


@pytest.fixture
def data_dir() -> Path:
    """Path to the small sample data shipped under tests/data."""
    return DATA
