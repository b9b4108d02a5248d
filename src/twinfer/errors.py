"""Errors raised for user mistakes; the CLI turns each into one clear message."""

from __future__ import annotations

from typing import Any


class TwinferError(Exception):
    """Base class for errors caused by user input (configs, files, options).

    The message should say what is wrong, where, and how to fix it. The CLI
    prints it without a traceback and exits with a non-zero status.
    """


class ConfigError(TwinferError):
    """A model config, scenario or hardware file is malformed or incomplete."""


class UnknownNameError(TwinferError):
    """A preset name (model, hardware, link, policy) does not exist."""


class CapacityError(TwinferError):
    """Weights, KV cache or activations do not fit the memory available."""


class DataError(TwinferError):
    """A trace or data file has a malformed row."""


def yaml_number_hint(value: Any) -> str:
    """A hint for a number that arrived as text: PyYAML reads ``1e12`` (no dot, no exponent sign) as a string.

    Returns ``""`` unless ``value`` is a string that Python would read as a number.
    """
    if not isinstance(value, str):
        return ""
    try:
        number = float(value.replace("_", ""))
    except ValueError:
        return ""
    if number != number or number in (float("inf"), float("-inf")):
        return ""
    if "e" in value.lower() and "." not in value:
        return (f" (YAML reads {value} as text because it has no dot and no exponent sign: "
                f"write {number:.1e} instead)")
    return f" (a string: write {value} without quotes)"
