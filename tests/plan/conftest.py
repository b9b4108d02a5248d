"""Factories for the planner and sweep tests: small sweep files and a fake runner."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # worker processes import fake_runner by name
    sys.path.insert(0, str(HERE))

from fake_runner import base_scenario  # noqa: E402


@pytest.fixture
def make_sweep_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a sweep YAML (inline base) with the given grid/cases/seeds and return its path."""

    def make(grid: dict | None = None, cases: list | None = None, seeds: list | None = None,
             base: dict | None = None, name: str = "t") -> Path:
        raw: dict[str, Any] = {"name": name, "base": base or base_scenario()}
        if grid is not None:
            raw["grid"] = grid
        if cases is not None:
            raw["cases"] = cases
        if seeds is not None:
            raw["seeds"] = seeds
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return path

    return make
