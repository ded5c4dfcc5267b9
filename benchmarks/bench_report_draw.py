"""How big the report of a 2,000 points x 20 outputs x 200 inputs run is, and how long its plots take to draw.

    PYTHONPATH=.:tests .venv/bin/python benchmarks/bench_report_draw.py            # 5 loads of each report
    PYTHONPATH=.:tests .venv/bin/python benchmarks/bench_report_draw.py --repeat 9

The report is rendered from the synthetic result the tests build (``tests/test_report.py``
``make_result(P=2000, m=20, n=200, rows=(0, 1))``), once with a short spec (points read
from a file) and once with the 2,000 x 200 points written inline in the spec (the
browser tests' ``LARGE_SPEC``: megabytes of spec text). Each load is a fresh page in one
headless Debian Chromium, network blocked; the time is from navigation start until the
page's script marks that every plot is drawn (``performance.mark("sensreport-ready")``,
the same signal the browser tests read). Also printed, as medians: when the HTML was
read (``responseEnd``), when it was parsed with plotly.js run (``domInteractive``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_report import make_result  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
TIMES = """() => { const n = performance.getEntriesByType('navigation')[0];
  return {ready: performance.getEntriesByName('sensreport-ready')[0].startTime,
          read: n.responseEnd, parsed: n.domInteractive}; }"""


def reports(folder: Path) -> dict[str, Path]:
    from test_browser import LARGE_SPEC

    from sensreport.report import render_report

    out = {}
    for name, spec in (("points from a file", None), ("points inline in the spec", LARGE_SPEC)):
        result = make_result(P=2000, m=20, n=200, rows=(0, 1))
        if spec is not None:
            result.spec_text = spec
        path = folder / f"report-{len(out)}.html"
        path.write_text(render_report(result), encoding="utf-8")
        out[name] = path
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="loads of each report (default 5)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        for name, path in reports(Path(tmp)).items():
            runs = []
            for _ in range(args.repeat):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                           else r.abort())
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                runs.append({k: v / 1000 for k, v in page.evaluate(TIMES).items()})
                page.close()
            ready = [r["ready"] for r in runs]
            print(f"2000 points x 20 outputs x 200 inputs, {name}: {path.stat().st_size / 1e6:.2f} MB; "
                  f"all plots drawn after {statistics.median(ready):.2f} s (median of {len(ready)}, "
                  f"{min(ready):.2f}-{max(ready):.2f} s); HTML read at "
                  f"{statistics.median(r['read'] for r in runs):.2f} s, parsed with plotly.js run at "
                  f"{statistics.median(r['parsed'] for r in runs):.2f} s")
        browser.close()


if __name__ == "__main__":
    main()
