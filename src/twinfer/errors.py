"""Errors raised for user mistakes; the CLI turns each into one clear message."""

from __future__ import annotations


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
