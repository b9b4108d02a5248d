"""The HTML report's entry point: load results (a simulation, a sweep or a plan), build the page, write it.

Kept apart from :mod:`twinfer.report.html_page` (the page assembly every report
kind uses), so that the kinds' builders import the page without a cycle.
"""

from __future__ import annotations

from pathlib import Path

from twinfer.report import html_sim, html_sweep
from twinfer.report.html_load import Results, load_results


def build_report(results: Results) -> str:
    """The HTML report for loaded results (a simulation, a sweep or a plan)."""
    if results.kind == "simulation":
        return html_sim.build(results)  # type: ignore[arg-type]
    return html_sweep.build(results)  # type: ignore[arg-type]


def write_report(source: Path | str, out: Path | str) -> Path:
    """Read results from ``source`` (folder or file), write the HTML report to ``out``; returns ``out``."""
    out = Path(out)
    page = build_report(load_results(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
