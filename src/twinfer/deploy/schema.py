"""Check generated launch commands against the engines' documented options (``engine_options.json``).

vLLM and SGLang ship their CLI parsers inside packages that need CUDA builds, so
the options are kept here as a table with the engine version they were copied
from; :func:`validate_command` checks every option name, value type, range,
choice and (for JSON options) the keys and values it holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def option_tables() -> dict[str, Any]:
    """The shipped option tables: {command: {"source", "positional", "options"}}."""
    text = resources.files("twinfer.deploy").joinpath("engine_options.json").read_text(encoding="utf-8")
    return json.loads(text)["commands"]


def _check_value(name: str, spec: dict[str, Any], value: str) -> str | None:
    kind = spec["type"]
    parsers: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "json": json.loads}
    try:
        parsed = parsers[kind](value)
    except (ValueError, KeyError):
        return f"{name} {value!r} is not a valid {kind}"
    if "choices" in spec and parsed not in spec["choices"]:
        return f"{name} {value!r} is not one of {spec['choices']}"
    if "min" in spec and parsed < spec["min"]:
        return f"{name} {value!r} is below {spec['min']}"
    if "max" in spec and parsed > spec["max"]:
        return f"{name} {value!r} is above {spec['max']}"
    if kind == "json":
        if not isinstance(parsed, dict):
            return f"{name} must be a JSON object"
        for key, allowed in spec.get("keys", {}).items():
            if key in parsed and parsed[key] not in allowed:
                return f"{name}: {key} {parsed[key]!r} is not one of {allowed}"
    return None


def validate_command(command: str, args: list[str]) -> list[str]:
    """Problems with ``args`` (everything after ``command``) against the command's option table; [] when valid."""
    tables = option_tables()
    if command not in tables:
        return [f"no option table for {command!r}; known: {', '.join(tables)}"]
    table = tables[command]
    options, positional = table["options"], list(table["positional"])
    problems: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            if not positional:
                problems.append(f"unexpected positional argument {arg!r}")
            else:
                positional.pop(0)
            i += 1
            continue
        spec = options.get(arg)
        if spec is None:
            problems.append(f"unknown option {arg} ({table['source']})")
            i += 1
            continue
        if spec["type"] == "flag":
            i += 1
            continue
        if i + 1 >= len(args):
            problems.append(f"{arg} needs a value")
            break
        problem = _check_value(arg, spec, args[i + 1])
        if problem:
            problems.append(problem)
        i += 2
    problems += [f"missing positional argument {p!r}" for p in positional]
    return problems
