"""Fixtures for the KV-cache tests: the shipped Mooncake conversation sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twinfer.workload.build import resolve_trace


@pytest.fixture(scope="module")
def mooncake_rows() -> list[dict]:
    """The rows of builtin:mooncake-conv-sample, parsed with json only (not twinfer's reader)."""
    path = Path(resolve_trace("builtin:mooncake-conv-sample"))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
