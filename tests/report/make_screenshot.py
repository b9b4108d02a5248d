"""Screenshot an HTML report with headless Chromium (for the README's docs/*.png). Not a test.

    python tests/report/make_screenshot.py report.html docs/report-screenshot.png [--height 1800]

Waits until every chart is drawn, then captures the top ``--height`` CSS
pixels at 1400 px width (``--full`` for the whole page).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_cdp import Chromium  # noqa: E402


def main() -> None:
    """Parse arguments, load the page, write the PNG."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1800)
    ap.add_argument("--full", action="store_true", help="capture the whole page")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as profile:
        browser = Chromium(Path(profile), width=args.width, height=args.height)
        try:
            browser.call("Page.navigate", url=args.page.resolve().as_uri())
            n = browser.wait_for("document.readyState === 'complete' && "
                                 "document.querySelectorAll('script.twinfer-figure').length + 1")
            browser.wait_for(f"document.body.getAttribute('data-charts-rendered') === '{n - 1}'")
            time.sleep(0.3)  # let plotly finish its last layout pass
            args.png.parent.mkdir(parents=True, exist_ok=True)
            args.png.write_bytes(browser.screenshot(full_page=args.full))
            errors = browser.errors()
        finally:
            browser.close()
    print(f"wrote {args.png}" + (f"; page errors: {errors}" if errors else ""))


if __name__ == "__main__":
    main()
