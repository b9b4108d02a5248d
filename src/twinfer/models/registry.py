"""Model presets shipped with twinfer, and one loader for presets and user configs."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from twinfer.errors import UnknownNameError
from twinfer.models.hf_config import spec_from_config, spec_from_path
from twinfer.models.spec import ModelSpec

_PRESET_PACKAGE = "twinfer.models.presets"


def preset_names() -> list[str]:
    """Names of the shipped model presets, sorted."""
    folder = resources.files(_PRESET_PACKAGE)
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def preset_config(name: str) -> dict:
    """The published HF ``config.json`` of a preset, as a dict."""
    if name not in preset_names():
        raise UnknownNameError(
            f"unknown model {name!r}; presets: {', '.join(preset_names())} "
            "(or give a path to a config.json or a model folder)"
        )
    text = resources.files(_PRESET_PACKAGE).joinpath(f"{name}.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=64)
def load_model(name_or_path: str) -> ModelSpec:
    """A ModelSpec from a preset name, a ``config.json`` path, or a model folder."""
    path = Path(name_or_path).expanduser()
    if name_or_path not in preset_names() and (path.exists() or path.suffix == ".json" or "/" in name_or_path):
        return spec_from_path(path)
    return spec_from_config(preset_config(name_or_path), name=name_or_path, where=f"preset {name_or_path}")


def preset_repository(name: str) -> str | None:
    """The Hugging Face repository a preset's config.json comes from (``presets/SOURCES.md``), or None."""
    text = resources.files(_PRESET_PACKAGE).joinpath("SOURCES.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == name and cells[1]:
            return cells[1].split()[0]
    return None
