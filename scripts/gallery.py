"""Screenshots of the tabular example's report for the README gallery: desktop, phone, print.

    .venv/bin/python scripts/gallery.py      # runs the example, writes docs/gallery/*.png

Debian's chromium through Playwright, offline; print is Chromium's own print emulation.
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


def main() -> None:
    out = ROOT / "docs" / "gallery"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "sensreport", "run", str(ROOT / "examples" / "tabular" / "spec.yaml"),
                        "--out", tmp, "--quiet"], check=True)
        url = (Path(tmp) / "report.html").as_uri()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            for name, width, height, media in (("desktop", 1440, 1000, "screen"), ("phone", 390, 844, "screen"),
                                               ("print", 794, 1123, "print")):  # A4 at 96 dpi
                page = browser.new_page(viewport={"width": width, "height": height})
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                           else r.abort())
                page.goto(url)
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                page.emulate_media(media=media)
                page.screenshot(path=str(out / f"tabular-{name}.png"))
                page.close()
            browser.close()
    print(f"wrote {out}/tabular-{{desktop,phone,print}}.png")


if __name__ == "__main__":
    main()
