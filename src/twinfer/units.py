"""Unit constants and conversions. Field names carry units; these make the maths read plainly."""

from __future__ import annotations

from twinfer.errors import ConfigError

KIB = 1024
MIB = 1024**2
GIB = 1024**3
KB = 1_000
MB = 1_000_000
GB = 1_000_000_000
TB = 1_000_000_000_000

MS = 1e-3
US = 1e-6
NS = 1e-9

TERA = 1e12
PETA = 1e15

#: Bytes per element of each supported numeric type.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype`` (e.g. ``"bf16"`` -> 2.0)."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        known = ", ".join(sorted(DTYPE_BYTES))
        raise ConfigError(f"unknown dtype {dtype!r}; use one of: {known}") from None
