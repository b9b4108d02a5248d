"""Run the twinfer CLI in-process with captured output, and check that a bad input got a clean error.

A clean error is what the developers' guide asks of every bad input: exit status
2, no traceback, and one message line (``error: ...`` from twinfer, ``Error: ...``
from the option parser) that names the offending option, field, file or line.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Result:
    """Exit status and the captured streams of one CLI call."""

    code: int
    out: str
    err: str

    @property
    def message(self) -> str:
        """The error line(s): lines of stderr that start with ``error:`` or ``Error:``."""
        return "\n".join(line for line in self.err.splitlines() if line.lower().startswith("error:"))


def invoke(argv: list[str]) -> Result:
    """``twinfer ARGV`` in this process (through twinfer.cli.main), its output captured."""
    from twinfer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Result(code, out.getvalue(), err.getvalue())


def assert_clean_error(result: Result, mention: str) -> None:
    """Exit 2, no traceback, exactly one message line, and it names ``mention`` (case-insensitive)."""
    text = result.out + result.err
    assert "Traceback" not in text, text
    assert result.code == 2, f"exit {result.code}; stderr: {result.err[-800:]}"
    lines = result.message.splitlines()
    assert len(lines) == 1, f"expected one error line, got {lines!r} in {result.err[-800:]!r}"
    assert mention.lower() in lines[0].lower(), f"{mention!r} not named in {lines[0]!r}"
    assert len(lines[0]) > len("error: ") + len(mention) + 10, f"message too short to say the fix: {lines[0]!r}"


# ---- values a field of each kind must refuse --------------------------------------------------------

#: A positive integer field (counts, token lengths, parallelism).
BAD_POS_INT: dict[str, Any] = {
    "wrong-type": "abc", "list": [1], "negative": -1, "zero": 0, "fraction": 1.5,
    "nan": math.nan, "inf": math.inf, "huge": 10**13, "yaml-1e12": "1e12",
}
#: A positive real field (rates, latencies).
BAD_POS_NUM: dict[str, Any] = {
    "wrong-type": "abc", "negative": -1, "zero": 0, "nan": math.nan, "inf": math.inf, "huge": 1e300,
    "yaml-1e12": "1e12",
}
#: A non-negative real field (prices and powers may be 0).
BAD_NONNEG_NUM: dict[str, Any] = {
    "wrong-type": "abc", "negative": -1, "nan": math.nan, "inf": -math.inf, "huge": 1e300,
}
#: A fraction in (0, 1].
BAD_FRACTION: dict[str, Any] = {"wrong-type": "x", "negative": -0.5, "zero": 0, "above-one": 1.5, "nan": math.nan}
BAD_BY_KIND = {"pos_int": BAD_POS_INT, "pos_num": BAD_POS_NUM, "nonneg": BAD_NONNEG_NUM, "fraction": BAD_FRACTION}
#: Marks a field to delete instead of setting.
MISSING = object()


def set_path(tree: Any, path: str, value: Any) -> None:
    """Set (or, with MISSING, delete) the dotted ``path`` of a nested dict/list tree, in place."""
    *parents, last = path.split(".")
    node = tree
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is MISSING:
        del node[last]
    else:
        node[last] = value


def field_cases(base: dict[str, Any], fields: dict[str, str]) -> list[tuple[str, Any, str]]:
    """(case id, mutated document, field name to mention) for every field x every bad value of its kind."""
    import copy

    cases = []
    for path, kind in fields.items():
        for label, value in BAD_BY_KIND[kind].items():
            doc = copy.deepcopy(base)
            set_path(doc, path, value)
            cases.append((f"{path}={label}", doc, path.rsplit(".", 1)[-1]))
    return cases


def write_yaml(folder: Path, doc: Any, name: str = "case.yaml") -> Path:
    """``doc`` as YAML (NaN and inf become .nan / .inf) in ``folder``; returns the path."""
    path = folder / name
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's when present: the suite stays fast
    path.write_text(yaml.dump(doc, Dumper=dumper, sort_keys=False), encoding="utf-8")
    return path
