"""The HTML report in a real headless browser (Debian's chromium, driven over the DevTools protocol).

Checks what a person opening the file would see: the page loads with no
console errors and no network requests, every chart is drawn (the
screenshot of each chart has real content, not a blank box), and every number
in the page's tables equals the value in the results file it cites.
Skipped when /usr/bin/chromium is absent (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_cdp import CHROMIUM, Chromium, distinct_colours, png_pixels
from report_factories import write_plan, write_sim_dir

from twinfer.report.html_format import resolve_pointer
from twinfer.report.html_report import write_report

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(apt-get install -y chromium)")

#: Everything a test needs from a loaded page, read in one go.
COLLECT = """(() => {
  const cells = [...document.querySelectorAll('[data-src][data-path]')].map(c => ({
    src: c.dataset.src, path: c.dataset.path, value: c.dataset.value, text: c.textContent}));
  const charts = [...document.querySelectorAll('[data-chart]')].map(d => {
    const r = d.getBoundingClientRect();
    return {id: d.id, rendered: d.dataset.rendered === '1', svgs: d.querySelectorAll('svg.main-svg').length,
            traces: d.querySelectorAll('g.trace, g.barlayer .point').length,
            x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
  });
  return {cells, charts, data: JSON.parse(document.getElementById('twinfer-data').textContent),
          title: document.title};
})()"""


def _load(browser: Chromium, page: Path) -> dict[str, Any]:
    """Navigate to ``page``, wait until every chart has been drawn, return what COLLECT reads."""
    browser.events.clear()
    browser.call("Page.navigate", url=page.resolve().as_uri())
    n = browser.wait_for("document.readyState === 'complete' && "
                         "document.querySelectorAll('script.twinfer-figure').length + 1") - 1
    browser.wait_for(f"document.body.getAttribute('data-charts-rendered') === '{n}'")
    return browser.evaluate(COLLECT)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"), timeout_s=60.0)  # first loads parse plotly: slow under load
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def sim_page(tmp_path_factory: pytest.TempPathFactory, browser: Chromium) -> dict[str, Any]:
    folder = write_sim_dir(tmp_path_factory.mktemp("results") / "sim")
    page = write_report(folder, folder.parent / "report.html")
    loaded = _load(browser, page)
    loaded.update(folder=folder, errors=browser.errors(), urls=browser.requested_urls(), page=page)
    return loaded


def _check_cells(cells: list[dict[str, str]], files: dict[str, Any]) -> int:
    """Each cell's value equals the file's value at its pointer; its text is that value rounded."""
    checked = 0
    for c in cells:
        expected = resolve_pointer(files[c["src"]], c["path"])
        value = json.loads(c["value"])
        assert value == expected, f"{c['src']} {c['path']}: page {value!r} != file {expected!r}"
        shown = float(c["text"].replace(",", ""))
        assert math.isclose(shown, expected, rel_tol=5e-4, abs_tol=1e-12), f"{c['path']}: shows {c['text']}"
        checked += 1
    return checked


def test_report_loads_without_console_errors_or_network(sim_page: dict[str, Any]) -> None:
    assert sim_page["errors"] == []
    schemes = {u.split(":", 1)[0] for u in sim_page["urls"]}
    assert schemes <= {"file", "data"}, sim_page["urls"]


def test_every_chart_is_drawn(sim_page: dict[str, Any], browser: Chromium) -> None:
    charts = sim_page["charts"]
    # latency CDFs (3), pool series (2 fleets), KV transfer CDF + bytes, cost bars (4), LPU SRAM (1)
    assert len(charts) == 12, " ".join(c["id"] for c in charts)  # the LPU SRAM chart: from the recorded partition
    for ch in charts:
        assert ch["rendered"] and ch["svgs"] >= 1 and ch["traces"] >= 1, ch
    # A drawn chart has axes, text and coloured lines: far more colours than an empty white box.
    for ch in (charts[0], charts[-1]):
        png = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                           clip={"x": ch["x"], "y": ch["y"], "width": ch["w"], "height": ch["h"], "scale": 1})
        import base64

        assert distinct_colours(png_pixels(base64.b64decode(png["data"]))) > 20, ch["id"]


def test_page_numbers_match_summary_json(sim_page: dict[str, Any]) -> None:
    summary = json.loads((sim_page["folder"] / "summary.json").read_text())
    cells = sim_page["cells"]
    assert _check_cells(cells, {"summary.json": summary}) > 100
    # The comparison table shows each fleet's headline numbers.
    for i in range(len(summary["fleets"])):
        for key in ("ttft_p99_s", "tpot_p50_s", "goodput_rps", "cost_per_m_output_tok_usd", "energy_per_output_tok_j"):
            assert any(c["path"] == f"/fleets/{i}/{key}" for c in cells), key
    # The machine-readable block lists exactly the numbers in the tables, and the files by hash.
    data = sim_page["data"]
    assert len(data["numbers"]) == len(cells)
    for entry in data["numbers"]:
        if entry["src"] == "summary.json":
            assert resolve_pointer(summary, entry["path"]) == entry["value"]
    import hashlib

    sha = {s["name"]: s["sha256"] for s in data["sources"]}
    assert sha["summary.json"] == hashlib.sha256((sim_page["folder"] / "summary.json").read_bytes()).hexdigest()


def test_plan_report_in_browser(tmp_path: Path, browser: Chromium) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = write_plan(tmp_path / "plan")
    loaded = _load(browser, write_report(plan, tmp_path / "plan.html"))
    assert browser.errors() == []
    assert loaded["charts"] and all(ch["rendered"] and ch["traces"] >= 1 for ch in loaded["charts"])
    parts = sorted(plan.parent.rglob("*.parquet"))
    rows = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default").to_pylist()
    files = {"plan.json": json.loads(plan.read_text()), "sweep": rows}
    assert _check_cells(loaded["cells"], files) > 50


def test_png_decoder_against_known_colours(tmp_path: Path, browser: Chromium) -> None:
    """The screenshot decoder reads back the exact colours of a page with four solid blocks."""
    colours = [(255, 0, 0), (0, 128, 255), (12, 200, 34), (250, 250, 250)]
    divs = "".join(f'<div style="height:50px;background:rgb{c}"></div>' for c in colours)
    page = tmp_path / "blocks.html"
    page.write_text(f"<html><body style='margin:0'>{divs}</body></html>")
    browser.call("Page.navigate", url=page.as_uri())
    browser.wait_for("document.readyState === 'complete'")
    import base64

    png = base64.b64decode(browser.call("Page.captureScreenshot", format="png",
                                        clip={"x": 0, "y": 0, "width": 300, "height": 200, "scale": 1})["data"])
    px = png_pixels(png)
    assert px.shape[:2] == (200, 300)
    for i, c in enumerate(colours):
        assert tuple(px[25 + 50 * i, 150, :3]) == c
    assert distinct_colours(px) == 4


def test_report_of_the_real_simulator_in_browser(real_sim_dir: Path, tmp_path: Path, browser: Chromium) -> None:
    """The same checks on files written by `twinfer simulate --out` (tiny scenario, three fleets)."""
    loaded = _load(browser, write_report(real_sim_dir, tmp_path / "real.html"))
    assert browser.errors() == []
    assert {u.split(":", 1)[0] for u in browser.requested_urls()} <= {"file", "data"}
    assert len(loaded["charts"]) >= 8 and all(ch["rendered"] and ch["traces"] >= 1 for ch in loaded["charts"])
    summary = json.loads((real_sim_dir / "summary.json").read_text())
    assert _check_cells(loaded["cells"], {"summary.json": summary}) > 100
