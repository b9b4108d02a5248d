"""Assemble report sections into one self-contained HTML page and write it.

The page inlines plotly.js (from the installed ``plotly`` package), the CSS and
the chart specs, so it opens with no network. A ``<script type="application/json"
id="twinfer-data">`` block carries what the page was built from (file names and
SHA-256) and every number its tables show, with the file and JSON Pointer each
came from; tests compare it, and the rendered tables, against the files.
Same inputs give byte-identical pages (no timestamps, sorted JSON).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from typing import Any

from twinfer.report.html_format import esc, json_for_script
from twinfer.report.html_load import SourceFile

#: Version of the ``twinfer-data`` block's layout; bump when its keys change.
DATA_SCHEMA = "twinfer-report/1"


@dataclass(frozen=True)
class Figure:
    """A chart: element id and plotly.js figure dict (``data`` and ``layout``)."""

    fig_id: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class Section:
    """One titled part of the report: HTML (tables, notes) with charts placed in a grid after it."""

    section_id: str
    title: str
    html: str
    figures: tuple[Figure, ...] = ()
    html_after: str = ""  # HTML placed after the charts (e.g. the full tables)
    data: dict[str, Any] = field(default_factory=dict)  # extra machine-readable numbers for twinfer-data


def _template(name: str) -> str:
    return resources.files("twinfer.report").joinpath("templates", name).read_text(encoding="utf-8")


class _NumberCells(HTMLParser):
    """Collects (src, path, value) of every element with data-src/data-path/data-value."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.numbers: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-src" in a and "data-path" in a and "data-value" in a:
            raw = a["data-value"] or ""
            value: Any = int(raw) if raw.lstrip("-").isdigit() else float(raw)
            self.numbers.append({"src": a["data-src"], "path": a["data-path"], "value": value})


def _sources_section(files: tuple[SourceFile, ...]) -> str:
    rows = "".join(
        f"<tr><th>{esc(f.name)}</th><td class=\"mono\">{esc(f.path)}</td><td class=\"mono\">{esc(f.sha256)}</td></tr>"
        for f in files
    )
    return (
        '<section id="sources"><h2>Sources</h2>'
        "<table><thead><tr><th>name in page</th><th>file</th><th>SHA-256</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def render_page(
    *, title: str, subtitle: str, kind: str, sections: list[Section], files: tuple[SourceFile, ...],
    extra_data: dict[str, Any] | None = None, version: str = "",
) -> str:
    """The whole HTML document for ``sections`` (plotly.js, CSS and chart specs inlined)."""
    import plotly.offline

    body_parts, fig_scripts, nav = [], [], []
    for sec in sections:
        nav.append(f'<a href="#{esc(sec.section_id)}">{esc(sec.title)}</a>')
        charts = "".join(
            f'<div class="chart" id="{esc(f.fig_id)}" data-chart="1"></div>' for f in sec.figures
        )
        body_parts.append(
            f'<section id="{esc(sec.section_id)}"><h2>{esc(sec.title)}</h2>{sec.html}'
            + (f'<div class="grid">{charts}</div>' if charts else "")
            + f"{sec.html_after}</section>"
        )
        fig_scripts += [
            f'<script type="application/json" class="twinfer-figure" data-target="{esc(f.fig_id)}">'
            f"{json_for_script(f.spec)}</script>"
            for f in sec.figures
        ]
    body_parts.append(_sources_section(files))
    nav.append('<a href="#sources">Sources</a>')
    body = "\n".join(body_parts)

    cells = _NumberCells()
    cells.feed(body)
    data = {
        "schema": DATA_SCHEMA,
        "kind": kind,
        "title": title,
        "sources": [{"name": f.name, "path": f.path, "sha256": f.sha256} for f in files],
        "figures": [f.fig_id for s in sections for f in s.figures],
        "numbers": cells.numbers,
        "sections": {s.section_id: s.data for s in sections if s.data},
        **(extra_data or {}),
    }
    return string.Template(_template("page.html")).substitute(
        title=esc(title), subtitle=esc(subtitle), version=esc(version), nav="".join(nav), body=body,
        css=_template("report.css"), plotly=plotly.offline.get_plotlyjs(), render=_template("render.js"),
        data=json_for_script(data), figures="\n".join(fig_scripts),
    )
