"""Screenshots of the tabular example's report for the README gallery: desktop, phone, print.

    .venv/bin/python scripts/gallery.py      # runs the example, writes docs/gallery/*.png

Debian's chromium through Playwright, offline; print is Chromium's own print emulation at
the width of A4's printable area (the print stylesheet's @page margins are 12 mm left and
right: 210 mm - 24 mm = 186 mm = 703 CSS px at 96 px per inch), as tests/test_browser.py
checks it. Each picture is cut to its first screen or two.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
A4_CONTENT = 703   # px: A4's 210 mm less the print stylesheet's 12 mm side margins, at 96 px per inch
A4_PAGE = 1009     # px: A4's 297 mm less its 16 mm top and 14 mm bottom margins
#: name, viewport width, viewport height, media, height of the picture
SHOTS = (("desktop", 1440, 1000, "screen", 1000), ("phone", 390, 844, "screen", 1688),
         ("print", A4_CONTENT, A4_PAGE, "print", A4_PAGE))


def main() -> None:
    out = ROOT / "docs" / "gallery"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "sensreport", "run", str(ROOT / "examples" / "tabular" / "spec.yaml"),
                        "--out", tmp, "--quiet"], check=True)
        url = (Path(tmp) / "report.html").as_uri()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for name, width, height, media, shot_height in SHOTS:
                # printing keeps the window's layout until the page is laid out for paper: draw at
                # desktop width first, then switch to print media at the page's width
                page = browser.new_page(viewport={"width": 1440 if media == "print" else width, "height": height})
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                           else r.abort())
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                page.emulate_media(media=media)
                page.set_viewport_size({"width": width, "height": height})
                page.wait_for_timeout(500)  # plotly's responsive resize
                full = page.evaluate("() => document.documentElement.scrollHeight")
                page.screenshot(path=str(out / f"tabular-{name}.png"), full_page=True,
                                clip={"x": 0, "y": 0, "width": width, "height": min(shot_height, full)})
                page.close()
            browser.close()
    print(f"wrote {out}/tabular-{{desktop,phone,print}}.png")


if __name__ == "__main__":
    main()
