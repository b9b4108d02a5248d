"""HTML building blocks for reports: escaping, number formatting, tables whose cells cite their source.

Every number a report shows is a value read from a results file. Table cells
carry where it came from (``data-src``: which file, ``data-path``: a JSON
Pointer, RFC 6901, into it) and the exact value (``data-value``), so a test (or
a suspicious reader) can check the page against the files. The displayed text
is that value rounded to 4 significant digits, never a recomputation.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Significant digits shown for floats (the exact value stays in ``data-value``).
DISPLAY_DIGITS = 4


def esc(text: Any) -> str:
    """HTML-escape ``text`` (quotes included) for element content and attributes."""
    return html.escape(str(text), quote=True)


def json_for_script(value: Any) -> str:
    """Serialise ``value`` as deterministic JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)
    # "</script>" or "<!--" inside a string would end or confuse the element.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(value: Any) -> Any:
    """Numpy scalars and arrays become plain JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} in a report")


def pointer(parts: Iterable[str | int]) -> str:
    """JSON Pointer (RFC 6901) for a path of keys and list indices."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve_pointer(doc: Any, ptr: str) -> Any:
    """The value at JSON Pointer ``ptr`` in ``doc`` (the inverse of :func:`pointer`)."""
    if ptr == "":
        return doc
    node = doc
    for raw in ptr.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def is_number(value: Any) -> bool:
    """True for finite ints and floats (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def format_number(value: Any) -> str:
    """Display text for a number: ints with separators, floats to 4 significant digits."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0.0:
            return "0"
        mag = abs(value)
        if mag >= 1e9 or mag < 1e-3:
            return f"{value:.{DISPLAY_DIGITS - 1}e}"
        exponent = math.floor(math.log10(mag))
        if abs(round(value, DISPLAY_DIGITS - 1 - exponent)) >= 10 ** (exponent + 1):  # 999.96 rounds up
            exponent += 1
        if exponent >= DISPLAY_DIGITS - 1:  # 1,000 .. 999,999,999: whole, with separators (27,420 not 2.742e+04)
            return f"{round(value, DISPLAY_DIGITS - 1 - exponent):,.0f}"
        text = f"{value:.{DISPLAY_DIGITS - 1 - exponent}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


#: Words for the parts of result column names, for chart axes (``ttft_p99_s`` -> ``TTFT p99 (s)``).
_AXIS_WORDS = {"ttft": "TTFT", "tpot": "TPOT", "tbt": "TBT", "e2e": "end-to-end", "rps": "", "kv": "KV",
               "tok": "tokens", "usd": "", "m": "M", "mw": "MW", "slo": "SLO", "rate": "request rate",
               "per": "per", "p50": "p50", "p90": "p90", "p99": "p99", "tp": "TP", "pp": "PP"}


def axis_label(key: str) -> str:
    """A readable axis title for a result column or dotted override key, with its unit.

    ``workload.arrivals.rate_per_s`` -> ``request rate (req/s)``, ``goodput_rps`` ->
    ``goodput (req/s)``, ``fleets.0.pools.mixed.count`` -> ``mixed count``. Text that
    is already words (has a space) is returned as it is.
    """
    if not key or " " in key:
        return key
    unit = unit_of(key)
    parts = [p for p in key.split(".") if not p.isdigit()]
    last = parts[-1]
    if unit:
        for suffix in ("_per_s_per_mw", "_tokens_per_s", "_tok_s", "_rps", "_per_s", "_usd_per_hour",
                       "_per_hour_usd", "_usd", "_ms", "_bytes", "_j", "_w", "_hz", "_s"):
            if last.endswith(suffix):
                last = last[: -len(suffix)] or last
                break
    words = [_AXIS_WORDS.get(w, w) for w in last.split("_")]
    prefix = parts[-2] if len(parts) >= 2 and parts[-2] in ("mixed", "prefill", "decode") else ""
    text = " ".join(w for w in (prefix, *words) if w)
    if key.endswith("rate_per_s"):
        return "request rate (req/s)"
    return f"{text} ({unit})" if unit else text


def unit_of(key: str) -> str:
    """The unit a snake_case key names by its suffix (``ttft_s`` -> ``s``), or ''."""
    suffixes = (
        ("_per_s_per_mw", "/s/MW"), ("_tokens_per_s", "tok/s"), ("_tok_s", "tok/s"), ("_rps", "req/s"),
        ("_per_s", "/s"),
        ("_usd_per_hour", "$/h"), ("_per_hour_usd", "$/h"), ("_usd", "$"), ("_ms", "ms"),
        ("_bytes", "B"), ("_j", "J"), ("_w", "W"), ("_hz", "Hz"), ("_s", "s"),
    )
    for suffix, unit in suffixes:
        if key.endswith(suffix):
            return unit
    return ""


@dataclass(frozen=True)
class Cell:
    """One table cell: a value and, for numbers, the file and JSON Pointer it was read from."""

    value: Any
    src: str = ""  # short name of the results file ("summary.json", "plan.json", "sweep")
    path: str = ""  # JSON Pointer into that file ("" for labels)

    def html(self, tag: str = "td") -> str:
        """The cell as HTML; numbers carry data-src/data-path/data-value attributes."""
        if is_number(self.value) and self.src:
            attrs = (
                f' class="num" data-src="{esc(self.src)}" data-path="{esc(self.path)}"'
                f' data-value="{esc(repr(self.value))}"'
            )
            return f"<{tag}{attrs}>{esc(format_number(self.value))}</{tag}>"
        if is_number(self.value):
            return f'<{tag} class="num">{esc(format_number(self.value))}</{tag}>'
        return f"<{tag}>{esc(format_number(self.value))}</{tag}>"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Cell | Any]], *, caption: str = "", css: str = ""
) -> str:
    """An HTML table; plain values are wrapped in :class:`Cell` without a source."""
    parts = [f'<table class="{esc(css)}">' if css else "<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead><tbody>")
    for row in rows:
        cells = [c if isinstance(c, Cell) else Cell(c) for c in row]
        parts.append("<tr>" + cells[0].html("th") + "".join(c.html() for c in cells[1:]) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def scalar_leaves(node: Any, base: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    """All (path, value) pairs of scalar leaves of a JSON tree, in file order; lists of numbers are skipped.

    Lists of numbers are series (shown as charts, not table rows); lists of
    objects are walked with their index in the path.
    """
    out: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            out.extend(scalar_leaves(value, (*base, key)))
    elif isinstance(node, list):
        if node and all(isinstance(v, Mapping | list) for v in node):
            for i, value in enumerate(node):
                out.extend(scalar_leaves(value, (*base, i)))
    else:
        out.append((base, node))
    return out


def kv_table(node: Mapping[str, Any], src: str, base: tuple[str | int, ...], *, caption: str = "") -> str:
    """A two-column table of every scalar under ``node`` (dotted key, value with its source)."""
    rows = []
    for path, value in scalar_leaves(node):
        label = ".".join(str(p) for p in path)
        unit = unit_of(str(path[-1])) if path else ""
        rows.append((Cell(f"{label} [{unit}]" if unit else label), Cell(value, src, pointer((*base, *path)))))
    return table(("field", "value"), rows, caption=caption, css="kv")


def note(text: str, *, kind: str = "note") -> str:
    """A highlighted paragraph (``kind``: note or warn) for caveats and skipped sections."""
    return f'<p class="{esc(kind)}">{esc(text)}</p>'
