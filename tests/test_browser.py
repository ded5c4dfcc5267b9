"""Every example's report in a real browser: headless Debian Chromium driven by Playwright.

No network: every request that is not a local file, blob or data URL is aborted and
recorded. Each page is checked for console errors, page errors and dialogs (a dialog
means injected script ran). Screenshots go to tests/_artifacts/ for people to look at.
Chromium must be installed (``make browser``): without it these tests fail, they do
not skip.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTIFACTS, EXAMPLES
from test_report import make_result, sig

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
EXAMPLE_SPECS = {
    "scalar": EXAMPLES / "seed" / "scalar.yaml",
    "vector": EXAMPLES / "seed" / "vector.yaml",
    "blackbox": EXAMPLES / "seed" / "blackbox.yaml",
    "tabular": EXAMPLES / "tabular" / "spec.yaml",
    "xss": EXAMPLES / "xss" / "spec.yaml",
}
LOCAL = ("file:", "blob:", "data:", "about:")


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not path:
        pytest.fail("Debian's chromium is not installed: run `make browser` (or `make test`, which does)")
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def reports(tmp_path_factory):
    """Run the real command line on every example once; name -> output folder."""
    from click.testing import CliRunner

    from sensreport.cli import main

    out = {}
    for name, spec in EXAMPLE_SPECS.items():
        folder = tmp_path_factory.mktemp(f"report-{name}")
        res = CliRunner().invoke(main, ["run", str(spec), "--out", str(folder), "--quiet"], catch_exceptions=False)
        assert res.exit_code == 0, (name, res.output)
        out[name] = folder
    return out


class Page:
    """A page opened offline, with everything that went wrong on it recorded."""

    def __init__(self, browser, path: Path, wait: bool = True, route=None):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.route("**/*", route or self._offline)
        t0 = time.perf_counter()
        self.page.goto(path.resolve().as_uri())
        if wait:
            self.page.wait_for_selector("body[data-ready]", timeout=60_000)
        self.seconds = time.perf_counter() - t0

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _offline(self, route):
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def clean(self):
        assert self.page_errors == [] and self.console_errors == [] and self.dialogs == [] and self.blocked == [], (
            self.page_errors, self.console_errors, self.dialogs, self.blocked)

    def figures(self) -> dict:
        return json.loads(self.page.eval_on_selector("#payload", "e => e.textContent"))["figures"]

    def data(self, fig: str, trace: int = 0, attr: str = "z"):
        return self.page.evaluate(f"() => document.getElementById('fig-{fig}').data[{trace}].{attr}")

    def hover_cell(self, fig: str, col: int, row: int) -> str:
        """Move the mouse over heatmap cell (row, col) and return the hover label's text."""
        self.page.locator(f"#fig-{fig}").scroll_into_view_if_needed()
        box = self.page.locator(f"#fig-{fig}").bounding_box()
        x, y = self.page.evaluate(f"""() => {{
            const L = document.getElementById('fig-{fig}')._fullLayout;
            return [L.xaxis._offset + L.xaxis.l2p({col}), L.yaxis._offset + L.yaxis.l2p({row})]; }}""")
        self.page.mouse.move(box["x"] + x, box["y"] + y)
        label = self.page.locator(f"#fig-{fig} .hoverlayer .hovertext")
        label.wait_for(timeout=5_000)
        return label.evaluate("g => [...g.querySelectorAll(\"text\")].map(t => [...t.childNodes].map(n => n.textContent).join(\"\\n\")).join(\"\\n\")")

    def close(self):
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages = []

    def open_(path: Path, **kw) -> Page:
        pages.append(Page(browser, path, **kw))
        return pages[-1]

    yield open_
    for p in pages:
        p.close()


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


# --------------------------------------------------------------------------- every example
@pytest.mark.parametrize("name", list(EXAMPLE_SPECS))
def test_example_report_renders_offline_without_errors(name, reports, open_page):
    page = open_page(reports[name] / "report.html")
    page.clean()
    figures = page.figures()
    assert figures, "no figures"
    for fid in figures:  # every plot rendered by plotly, with data
        assert page.page.locator(f"#fig-{fid} .main-svg").count() >= 1, fid
        assert page.page.evaluate(f"() => document.getElementById('fig-{fid}').data.length") >= 1, fid
    assert page.page.locator("#checks tbody tr").count() >= 3
    assert page.page.locator("#rankings-table tbody tr").count() == len(results(reports[name])["inputs"]["names"])
    ready = page.page.evaluate("() => performance.getEntriesByName('sensreport-ready')[0].startTime") / 1000
    size = (reports[name] / "report.html").stat().st_size
    print(f"\n{name}: {size / 1e6:.2f} MB, all plots rendered {ready:.2f} s after navigation start")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"), full_page=True)


# --------------------------------------------------------------------------- interaction
def test_point_slider_changes_the_heatmap(reports, open_page):
    folder = reports["tabular"]
    jac = np.load(folder / "arrays.npz")["jacobian"]
    page = open_page(folder / "report.html")
    caption = page.page.locator("#cap-heat-point")
    assert caption.inner_text().startswith("Point #0 (1 of 40 shown)")
    np.testing.assert_allclose(page.data("heat-point"), sig(jac[0], 4))
    page.page.eval_on_selector("#ctl-point", "e => { e.value = 17; e.dispatchEvent(new Event('input')); }")
    page.page.wait_for_function("() => document.getElementById('cap-heat-point').textContent.startsWith('Point #17 ')")
    z = np.asarray(page.data("heat-point"), dtype=float)
    np.testing.assert_allclose(z, sig(jac[17], 4))
    assert not np.allclose(z, sig(jac[0], 4))
    page.clean()


def test_hover_names_the_input_output_value_and_rank(reports, open_page):
    folder = reports["tabular"]
    res = results(folder)
    page = open_page(folder / "report.html")
    lead = res["measures"]["leading"]  # every view ranks by the leading measure
    values = res["measures"]["values"][lead]["per_output"]["p_late"]
    text = page.hover_cell("heat-aggregate", col=2, row=1)  # debt_ratio, p_late
    rank = res["rankings"][lead]["per_output"]["p_late"].index("debt_ratio") + 1
    assert "input debt_ratio" in text and "output p_late" in text
    assert f"std-scaled sensitivity {values['debt_ratio']:.4g}" in text and lead == "std_scaled"
    assert f"rank {rank} of 5 inputs for this output by std-scaled sensitivity" in text
    text = page.hover_cell("heat-aggregate", col=0, row=0)
    assert "input age" in text and "output p_default" in text
    page.clean()


def test_csv_download_holds_the_table_numbers(reports, open_page, tmp_path):
    folder = reports["tabular"]
    res = results(folder)
    page = open_page(folder / "report.html")
    with page.page.expect_download() as dl:
        page.page.click("a[data-download=rankings]")
    assert dl.value.suggested_filename == "sensitivity-rankings.csv"
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    values = res["measures"]["values"]
    measures = res["measures"]["shown"]
    for row in rows:  # every number is exactly the one in results.json
        for m in measures:
            expected = (values[m]["overall"] if row["scope"] == "overall" else values[m]["per_output"][row["output"]])
            assert float(row[m]) == expected[row["input"]], (row, m)
    assert len(rows) == 3 * 5
    # the table shows the overall view: its cells carry the CSV's numbers and show 4 significant digits
    table = page.page.eval_on_selector_all(
        "#rankings-table tbody tr",
        "trs => trs.map(tr => Object.fromEntries([...tr.cells].map(td => [td.dataset.key || 'input', [td.dataset.v, td.textContent]])))")
    overall = {r["input"]: r for r in rows if r["scope"] == "overall"}
    assert [t["input"][1] for t in table] == res["rankings"]["std_scaled"]["overall"]
    for t in table:
        name = t["input"][1]
        for m in measures:
            v, shown = t[m]
            assert v == overall[name][m]
            assert float(shown) == pytest.approx(float(v), rel=5e-4)
    # another output and measure: the table and the bars follow the selectors
    page.page.select_option("#ctl-rank-measure", "mean_abs")
    page.page.select_option("#ctl-rank-view", label="p_late")
    order = res["rankings"]["mean_abs"]["per_output"]["p_late"]
    page.page.wait_for_function(
        "n => document.querySelector('#rankings-table tbody tr td:nth-child(2)').textContent === n", arg=order[0])
    assert page.page.eval_on_selector_all("#rankings-table tbody tr td:nth-child(2)", "tds => tds.map(t => t.textContent)") == order
    assert page.data("ranking", 0, "y") == order
    np.testing.assert_allclose(page.data("ranking", 0, "x"), sig([values["mean_abs"]["per_output"]["p_late"][n] for n in order], 6))
    page.clean()


def test_table_sorts_by_any_column(reports, open_page):
    page = open_page(reports["tabular"] / "report.html")
    page.page.click("#rankings-table th[data-key=input]")
    names = page.page.eval_on_selector_all("#rankings-table tbody td:nth-child(2)", "tds => tds.map(t => t.textContent)")
    assert names == sorted(names)
    page.page.click("#rankings-table th[data-key=elasticity]")
    v = page.page.eval_on_selector_all("#rankings-table tbody td[data-key=elasticity]", "tds => tds.map(t => +t.dataset.v)")
    assert v == sorted(v, reverse=True)
    page.clean()


def test_every_chart_has_its_numbers_as_a_table(reports, open_page):
    folder = reports["tabular"]
    res = results(folder)
    page = open_page(folder / "report.html")
    for fid in page.figures():
        if fid == "ranking":
            continue  # its table is the rankings table
        details = page.page.locator(f'details.numbers[data-figure="{fid}"]')
        details.locator("summary").click()
        details.locator("table tbody tr").first.wait_for(timeout=5_000)
    cells = page.page.eval_on_selector_all(
        'details.numbers[data-figure="heat-aggregate"] tbody tr',
        "trs => trs.map(tr => [tr.cells[0].textContent, [...tr.cells].slice(1).map(td => +td.dataset.v)])")
    inputs = res["inputs"]["names"]
    for out, row in cells:
        # the aggregate heatmap shows the leading measure, as the rankings do
        expected = [res["measures"]["values"][res["measures"]["leading"]]["per_output"][out][i] for i in inputs]
        np.testing.assert_allclose(row, sig(expected, 6))
    page.page.select_option("#ctl-heat-kind", "signed")  # the open table follows the chart
    page.page.wait_for_function("""() => document.getElementById('fig-heat-aggregate').data[0].zmid === 0""")
    jac = np.load(folder / "arrays.npz")["jacobian"]
    signed = page.page.eval_on_selector_all(
        'details.numbers[data-figure="heat-aggregate"] tbody tr', "trs => trs.map(tr => [...tr.cells].slice(1).map(td => +td.dataset.v))")
    np.testing.assert_allclose(signed, sig(jac.mean(axis=0), 6))
    page.clean()


# --------------------------------------------------------------------------- escaping
def test_html_and_script_in_names_stay_text(reports, open_page):
    import yaml

    spec = yaml.safe_load((EXAMPLES / "xss" / "spec.yaml").read_text())
    page = open_page(reports["xss"] / "report.html")
    page.clean()  # no dialog, no script error
    p = page.page
    assert p.evaluate("() => document.querySelectorAll('img').length") == 0
    assert p.evaluate("() => document.scripts.length") == 3  # plotly.js, the payload, the page's script
    assert p.evaluate("() => document.querySelectorAll('a[href^=\"javascript\"]').length") == 0
    assert p.inner_text("h1") == spec["title"]
    assert "<script>alert('description')</script>" in p.inner_text(".description")
    names = spec["inputs"]["names"]
    outputs = spec["model"]["output_names"]
    # hover labels and tick labels show the names as text
    text = page.hover_cell("heat-aggregate", col=0, row=1)
    assert f"input {names[0]}" in text and f"output {outputs[1]}" in text
    ticks = p.eval_on_selector_all("#fig-heat-aggregate .xtick text", "ts => ts.map(t => t.textContent)")
    assert ticks == [n if len(n) <= 28 else n[:27] + "…" for n in names]  # long labels shortened on the axis
    table_names = p.eval_on_selector_all("#rankings-table tbody td:nth-child(2)", "tds => tds.map(t => t.textContent)")
    assert sorted(table_names) == sorted(names)
    with p.expect_download() as dl:
        p.click("a[data-download=rankings]")
    text = Path(dl.value.path()).read_text()
    assert "'=HYPERLINK(" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    with p.expect_download() as dl:
        p.click("a[data-download=spec]")
    assert Path(dl.value.path()).read_text() == (EXAMPLES / "xss" / "spec.yaml").read_text()
    # moving through every control draws names again: still no script runs
    p.select_option("#ctl-rank-view", index=2)
    p.select_option("#ctl-row-output", index=0)
    p.eval_on_selector("#ctl-point", "e => { e.value = 3; e.dispatchEvent(new Event('input')); }")
    for d in p.locator("details.numbers summary").all():
        d.click()
    p.wait_for_timeout(200)
    page.clean()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / "report-xss-controls.png"), full_page=True)


# --------------------------------------------------------------------------- scale, images, CDN
def test_large_run_report_is_small_and_interactive_quickly(open_page, tmp_path):
    from sensreport.report import render_report

    html = render_report(make_result(P=2000, m=20, n=200, rows=(0, 1)))
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    size = path.stat().st_size
    assert size < 10e6
    times = []
    for _ in range(2):
        page = open_page(path)
        page.clean()
        # from navigation start until the last plot is drawn (the page's script marks it)
        times.append(page.page.evaluate("() => performance.getEntriesByName('sensreport-ready')[0].startTime") / 1000)
        for fid in page.figures():
            assert page.page.locator(f"#fig-{fid} .main-svg").count() >= 1, fid
    print(f"\n2000 points x 20 outputs x 200 inputs: {size / 1e6:.2f} MB, all plots rendered after "
          f"{', '.join(f'{t:.2f}' for t in times)} s")
    assert min(times) < 15  # generous: a loaded machine must not fail this; the README records the measurement
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "report-scale.png"), full_page=True)


def test_image_report_draws_images_and_the_slider_moves_them(open_page, tmp_path):
    from sensreport.report import render_report

    r = make_result(P=20, m=4, n=12 * 10, input_shape=[12, 10, 1], fd=False, rows=())
    path = tmp_path / "report.html"
    path.write_text(render_report(r), encoding="utf-8")
    page = open_page(path)
    page.clean()
    assert page.page.evaluate("() => document.getElementById('fig-img-aggregate').data.length") == 4
    assert np.asarray(page.data("img-aggregate"), dtype=float).shape == (12, 10)
    before = page.data("img-point", 0, "customdata")
    page.page.eval_on_selector("#ctl-img-point", "e => { e.value = 5; e.dispatchEvent(new Event('input')); }")
    page.page.wait_for_function("() => document.getElementById('cap-img-point').textContent.startsWith('Point #5 ')")
    after = np.asarray(page.data("img-point", 0, "customdata"), dtype=float)
    np.testing.assert_allclose(after, sig(np.abs(r.methods["jacobian"].values[5, 0]).reshape(12, 10), 4))
    assert not np.allclose(after, np.asarray(before, dtype=float))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(ARTIFACTS / "report-image.png"), full_page=True)


def test_cdn_report_works_from_the_cdn_and_says_so_offline(reports, open_page, tmp_path):
    import plotly.offline
    from click.testing import CliRunner

    from sensreport.cli import main

    out = tmp_path / "cdn"
    res = CliRunner().invoke(main, ["run", str(EXAMPLE_SPECS["vector"]), "--out", str(out), "--plotlyjs", "cdn", "-q"])
    assert res.exit_code == 0, res.output
    path = out / "report.html"
    assert path.stat().st_size < 500_000
    cdn = f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"
    served = []

    def fake_cdn(route):  # the CDN, served from the installed plotly package: still no network
        if route.request.url == cdn:
            served.append(route.request.url)
            route.fulfill(status=200, content_type="application/javascript", body=plotly.offline.get_plotlyjs())
        elif route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            route.abort()

    page = open_page(path, route=fake_cdn)
    assert served == [cdn]
    assert page.page.locator("#fig-heat-aggregate .main-svg").count() >= 1
    assert page.page_errors == [] and page.dialogs == []
    offline = open_page(path)
    assert offline.page.get_attribute("body", "data-ready") == "offline"
    assert "could not be loaded" in offline.page.inner_text("p.offline")
    assert offline.page.locator("#rankings-table tbody tr").count() == 3  # the tables still work
    assert offline.page_errors == [] and offline.blocked == [cdn]


WRONG_GRADIENT = '''
import tensorflow as tf

@tf.custom_gradient
def _square_3x(x):
    return x ** 2, lambda dy: dy * 3.0 * x    # d(x^2)/dx is 2x, not 3x

def f(x):
    return tf.stack([_square_3x(x[:, 0]) + x[:, 1], x[:, 1] ** 3], axis=1)
'''


@pytest.mark.parametrize("width", [1440, 390])
def test_the_first_screen_shows_the_verdict_the_exit_code_follows(browser, tmp_path, width):
    from click.testing import CliRunner

    from sensreport.cli import main

    (tmp_path / "f.py").write_text(WRONG_GRADIENT)
    (tmp_path / "spec.yaml").write_text(
        "title: A wrong gradient\nmodel: {callable: f.py:f, batched: true}\n"
        "inputs: {points: {values: [[0.5, 1.0], [1.5, -0.5], [-1.0, 2.0]]}}\n"
        "methods: {jacobian: {}, finite_difference: {}}\n")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 1
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL) else route.abort())
    page.goto((tmp_path / "out" / "report.html").as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    banner = page.locator("#verdict")
    box = banner.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 844  # on the first screen, without scrolling
    assert banner.inner_text().startswith("Check failed: fd_vs_ad") and "exit code 1" in banner.inner_text()
    assert "verdict-fail" in banner.get_attribute("class")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"verdict-fail-{width}.png"))
    context.close()


@pytest.mark.parametrize("name", sorted(EXAMPLE_SPECS))
def test_toolbars_offer_no_cloud_button_and_one_tab_stop_per_chart(name, reports, open_page):
    page = open_page(reports[name] / "report.html")
    titles = page.page.eval_on_selector_all(".modebar-btn", "els => els.map(e => e.getAttribute('data-title'))")
    assert titles and set(titles) == {"Zoom", "Pan", "Reset axes", "Download plot as a PNG"}
    charts = page.page.eval_on_selector_all(".js-plotly-plot", "els => els.filter(e => e.querySelector('.modebar-btn')).length")
    stops = page.page.eval_on_selector_all(".modebar-btn", "els => els.filter(e => e.getAttribute('tabindex') !== '-1').length")
    assert stops == charts
    page.page.emulate_media(media="print")
    assert page.page.eval_on_selector_all(".modebar", "els => els.filter(e => getComputedStyle(e).display !== 'none').length") == 0
    page.clean()


# --------------------------------------------------------------------------- every reader: phone, print, keyboard, screen reader
PHONE = {"width": 390, "height": 844}
A4_CONTENT = 703  # px: A4's 210 mm less the print stylesheet's 12 mm margins, at 96 px per inch
LETTER_CONTENT = 725  # px: Letter's 8.5 in less the same margins

#: Elements that stick out to the right of the page, unless a scroll container that fits holds them.
OVERFLOW = """() => { const W = document.documentElement.clientWidth; const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.right <= W + 1) continue;
    let p = e.parentElement, held = false;
    while (p) { if (getComputedStyle(p).overflowX !== 'visible' && p.getBoundingClientRect().right <= W + 1) { held = true; break; }
                p = p.parentElement; }
    if (!held) out.push(`${e.tagName.toLowerCase()}#${e.id}.${typeof e.className === 'string' ? e.className : ''} ${Math.round(r.right)}`);
  }
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, over: out.slice(0, 10)}; }"""


@pytest.fixture(scope="session")
def large_report(tmp_path_factory):
    """The 2,000 points x 20 outputs x 200 inputs report (two selected rows), rendered once."""
    from sensreport.report import render_report

    path = tmp_path_factory.mktemp("report-large") / "report.html"
    result = make_result(P=2000, m=20, n=200, rows=(0, 1))
    result.spec_text = LARGE_SPEC  # the points written inline: the spec alone is megabytes
    path.write_text(render_report(result), encoding="utf-8")
    return path


def _large_spec(P: int = 2000, n: int = 200) -> str:
    rng = np.random.default_rng(1)
    rows = "\n".join("      - [" + ", ".join(f"{v:.17g}" for v in row) + "]" for row in rng.normal(size=(P, n)))
    return f"title: Synthetic audit\nmodel: {{callable: synthetic.py:f}}\ninputs:\n  points:\n    values:\n{rows}\n"


LARGE_SPEC = _large_spec()


@pytest.fixture(scope="session")
def run_pages(reports, tmp_path_factory):
    """The history page over two runs and the comparison page of two runs (the tabular example's)."""
    from sensreport.report.history import write_comparison, write_history

    runs = tmp_path_factory.mktemp("runs")
    for name in ("2026-11-01", "2026-11-02"):
        shutil.copytree(reports["tabular"], runs / name)
    doc = json.loads((runs / "2026-11-02" / "results.json").read_text())
    doc["provenance"]["created"] = "2026-11-02T06:00:00+00:00"
    (runs / "2026-11-02" / "results.json").write_text(json.dumps(doc))
    history, _ = write_history(runs)
    compare = write_comparison(runs / "2026-11-01", runs / "2026-11-02", runs / "compare.html")
    return {"history": history, "compare": compare}


PAGES = list(EXAMPLE_SPECS) + ["large", "history", "compare"]


def page_path(name, reports, large_report, run_pages) -> Path:
    if name == "large":
        return large_report
    if name in run_pages:
        return run_pages[name]
    return reports[name] / "report.html"


def open_at(browser, path: Path, viewport: dict) -> Page:
    page = Page(browser, path)
    page.page.set_viewport_size(viewport)
    page.page.wait_for_timeout(400)  # plotly's responsive resize
    return page


@pytest.mark.parametrize("name", PAGES)
def test_no_sideways_scrolling_on_a_phone(name, browser, reports, large_report, run_pages):
    page = open_at(browser, page_path(name, reports, large_report, run_pages), PHONE)
    try:
        found = page.page.evaluate(OVERFLOW)
        print(f"\n{name} at 390 px: document {found['scroll']} px wide")
        assert found["scroll"] <= found["inner"] == 390 and found["over"] == [], found
        # every table sits in a scroll container; controls wrap inside their card
        assert page.page.eval_on_selector_all(
            "table", "ts => ts.filter(t => !t.closest('.scroll') && !t.closest('.print-only')).length") == 0
        if name == "tabular":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.page.screenshot(path=str(ARTIFACTS / "report-tabular-phone.png"), full_page=True)
        page.clean()
    finally:
        page.close()


@pytest.mark.parametrize("name", PAGES)
def test_print_fits_the_page_and_hides_the_controls(name, browser, reports, large_report, run_pages, tmp_path):
    path = page_path(name, reports, large_report, run_pages)
    page = open_at(browser, path, {"width": 1440, "height": 900})  # drawn at desktop width, then printed
    p = page.page
    try:
        for width in (A4_CONTENT, LETTER_CONTENT):
            p.emulate_media(media="print")
            p.set_viewport_size({"width": width, "height": 1000})
            p.wait_for_timeout(400)
            found = p.evaluate(OVERFLOW)
            assert found["scroll"] <= width and found["over"] == [], (width, found)
            for fid in p.eval_on_selector_all(".js-plotly-plot", "els => els.map(e => e.id)"):
                box = p.locator(f"#{fid} .svg-container").bounding_box()
                assert box["width"] <= width + 1, (fid, box)
        hidden = p.evaluate("""() => [...document.querySelectorAll(
            '.controls, details.numbers, a.download, nav, .modebar, input, select')].filter(
            e => e.getClientRects().length > 0).map(e => e.outerHTML.slice(0, 80))""")
        assert hidden == []
        assert p.evaluate("() => getComputedStyle(document.querySelector('figure.chart')).breakInside") == "avoid"
        if name in EXAMPLE_SPECS or name == "large":
            # every output's ranking reaches paper, not only the one the selector shows
            res = results(reports[name]) if name in EXAMPLE_SPECS else None
            views = p.eval_on_selector_all("#print-rankings table caption", "cs => cs.map(c => c.textContent)")
            shown = p.eval_on_selector_all("#ctl-rank-view option", "os => os.map(o => o.textContent)")
            assert views and views == shown
            assert p.locator("#print-rankings").is_visible()
            if res is not None and len(res["outputs"]["names"]) > 1:
                first = p.eval_on_selector_all("#print-rankings table:nth-of-type(2) tbody tr td:nth-child(2)",
                                               "tds => tds.map(t => t.textContent)")
                out = views[1]
                assert first[:3] == res["rankings"][res["measures"]["leading"]]["per_output"][out][:3]
        for fmt in ("A4", "Letter"):
            pdf = tmp_path / f"{name}-{fmt}.pdf"
            p.pdf(path=str(pdf), format=fmt)
            assert pdf.read_bytes()[:5] == b"%PDF-"
        if name == "tabular":
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            p.set_viewport_size({"width": A4_CONTENT, "height": 1000})
            p.screenshot(path=str(ARTIFACTS / "report-tabular-print.png"), full_page=True)
        page.clean()
    finally:
        page.close()


def test_toolbars_on_the_history_and_comparison_pages_offer_no_cloud_button(browser, run_pages):
    for path in run_pages.values():
        page = Page(browser, path)
        try:
            titles = page.page.eval_on_selector_all(".modebar-btn", "els => els.map(e => e.getAttribute('data-title'))")
            assert titles and set(titles) == {"Zoom", "Pan", "Reset axes", "Download plot as a PNG"}
            assert page.page.locator("text=Share chart").count() == 0
            charts = page.page.eval_on_selector_all(".js-plotly-plot", "els => els.length")
            stops = page.page.eval_on_selector_all(".modebar-btn", "els => els.filter(e => e.getAttribute('tabindex') !== '-1').length")
            assert stops == charts
            page.clean()
        finally:
            page.close()


@pytest.mark.parametrize("name", PAGES)
def test_axe_finds_no_serious_accessibility_violations(name, browser, reports, large_report, run_pages):
    from axe_playwright_python.sync_playwright import Axe

    page = Page(browser, page_path(name, reports, large_report, run_pages))
    try:
        tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
        found = Axe().run(page.page, options={"runOnly": {"type": "tag", "values": tags}}).response["violations"]
        print(f"\n{name}: axe-core {len(found)} violations ({', '.join(v['id'] + ':' + v['impact'] for v in found) or 'none'})")
        serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]]) for v in found
                   if v["impact"] in ("serious", "critical")]
        assert serious == []
        page.clean()
    finally:
        page.close()


def test_charts_are_described_in_words_and_controls_announce_their_value(reports, open_page):
    page = open_page(reports["tabular"] / "report.html")
    p = page.page
    for fid in page.figures():
        fig = p.locator(f"#fig-{fid}").locator("xpath=ancestor::figure[1]")
        title, desc = fig.get_attribute("aria-labelledby"), fig.get_attribute("aria-describedby")
        assert p.inner_text(f"#{title}") and len(p.text_content(f"#{desc}")) > 40, fid
        # the drawing itself is hidden from screen readers: its tick labels would be read one by one
        assert p.eval_on_selector_all(f"#fig-{fid} .main-svg", "ss => ss.every(s => s.getAttribute('aria-hidden') === 'true')")
    assert "late_payments" in p.text_content("#desc-ranking")
    assert p.get_attribute("#cap-heat-point", "aria-live") == "polite"
    slider = p.locator("#ctl-point")
    assert slider.get_attribute("aria-valuetext") == "point #0, 1 of 40"
    slider.focus()
    p.keyboard.press("ArrowRight")
    p.wait_for_function("() => document.getElementById('ctl-point').getAttribute('aria-valuetext') === 'point #1, 2 of 40'")
    assert p.inner_text("#val-point") == "point #1, 2 of 40"
    assert p.text_content("#desc-heat-point").startswith("Heatmap of dy/dx at point #1")
    # sorting by keyboard keeps the focus on the header
    p.focus("#rankings-table th[data-key=input]")
    p.keyboard.press("Enter")
    assert p.evaluate("() => document.activeElement.getAttribute('data-key')") == "input"
    assert p.get_attribute("#rankings-table th[data-key=input]", "aria-sort") == "ascending"
    p.keyboard.press("Enter")
    assert p.evaluate("() => document.activeElement.getAttribute('data-key')") == "input"
    assert p.get_attribute("#rankings-table th[data-key=input]", "aria-sort") == "descending"
    # a toolbar is one tab stop; the arrow keys move along it
    first = p.locator("#fig-ranking .modebar-btn").first
    first.focus()
    p.keyboard.press("ArrowRight")
    assert p.evaluate("() => document.activeElement.getAttribute('data-title')") == "Pan"
    page.clean()


@pytest.mark.parametrize("name", sorted(EXAMPLE_SPECS))
def test_provenance_names_the_points_sha256_and_a_relative_command(name, reports, open_page):
    import hashlib

    folder = reports[name]
    prov = results(folder)["provenance"]
    points = np.load(folder / "arrays.npz")["points"]
    digest = hashlib.sha256(np.ascontiguousarray(points, dtype="<f8").tobytes()).hexdigest()
    assert prov["points_sha256"] == digest  # an auditor can check which points were used
    assert {f["key"] for f in prov["files"]} >= {"spec"} and all(not f["path"].startswith("/") for f in prov["files"])
    assert prov["machine"]["cores"] >= 1 and prov["run_seconds"] > 0
    page = open_page(folder / "report.html")
    assert digest in page.page.inner_text("#prov-points-sha256")
    command = page.page.inner_text("pre.command")
    assert command.startswith("sensreport ")  # (in-process, the command line is pytest's; test_cli checks its form)
    assert "cd " not in command and not any(a.startswith("/") for a in command.split())
    assert "cores" in page.page.inner_text("#prov-machine")
    page.clean()


def test_a_huge_spec_is_shown_capped_and_downloads_compressed(large_report, open_page, tmp_path):
    import gzip

    from sensreport.report import render_report

    # 2,000 x 200 inline values (8 MB of text, 3.7 MB compressed): the page shows 200 lines and stays under 10 MB
    assert large_report.stat().st_size < 10e6
    page = open_page(large_report)
    assert len(page.page.inner_text("pre.spec").splitlines()) <= 200
    cut = page.page.inner_text("#spec-cut")
    assert "the first 200 (up to 50,000 characters) are shown" in cut and "too large to embed even compressed" in cut
    assert page.page.locator("a[data-download=spec]").count() == 0
    page.clean()
    # 300 x 100 values (0.5 MB): shown capped, downloadable in full, compressed
    result = make_result(P=30, m=3, n=20)
    result.spec_text = _large_spec(300, 100)
    path = tmp_path / "report.html"
    path.write_text(render_report(result), encoding="utf-8")
    page = open_page(path)
    assert len(page.page.inner_text("pre.spec").splitlines()) <= 200
    assert page.page.inner_text("#spec-cut").startswith("The spec has 305 lines")
    with page.page.expect_download() as dl:
        page.page.click("a[data-download=spec]")
    assert dl.value.suggested_filename.endswith(".yaml.gz")
    assert gzip.decompress(Path(dl.value.path()).read_bytes()).decode() == result.spec_text
    assert "The download holds all of it, compressed." in page.page.inner_text("#spec-cut")
    page.clean()


def test_the_point_slider_steps_through_the_points_in_a_chosen_order(reports, open_page):
    folder = reports["tabular"]
    y = np.load(folder / "arrays.npz")["outputs"]
    page = open_page(folder / "report.html")
    p = page.page
    p.select_option("#ctl-point-order", label="p_default, low to high")
    lowest = int(np.argsort(y[:, 0], kind="stable")[0])
    p.wait_for_function(f"() => document.getElementById('cap-heat-point').textContent.startsWith('Point #{lowest} ')")
    p.eval_on_selector("#ctl-point", "e => { e.value = 39; e.dispatchEvent(new Event('input')); }")
    highest = int(np.argsort(y[:, 0], kind="stable")[-1])
    p.wait_for_function(f"() => document.getElementById('cap-heat-point').textContent.startsWith('Point #{highest} ')")
    assert p.get_attribute("#ctl-point", "aria-valuetext").startswith(f"point #{highest},")
    page.clean()


def test_declared_units_appear_in_the_summary_tables_hover_and_axes(reports, open_page):
    folder = reports["tabular"]
    res = results(folder)
    assert res["inputs"]["units"]["income_k"] == "kUSD" and res["outputs"]["units"]["p_default"] == "probability"
    page = open_page(folder / "report.html")
    p = page.page
    summary = p.inner_text("ul.sentences")
    std = np.load(folder / "arrays.npz")["points"][:, 1].std()
    assert f"of income_k ({std:.4g} kUSD) lowers it by" in summary and "probability" in summary
    units = p.eval_on_selector_all("#rankings-table tbody td[data-key=unit]", "tds => tds.map(t => t.textContent)")
    names = p.eval_on_selector_all("#rankings-table tbody td:nth-child(2)", "tds => tds.map(t => t.textContent)")
    assert dict(zip(names, units)) == res["inputs"]["units"]
    assert "(up to" not in p.inner_text("#cap-heat-point") and "income_k = " in p.inner_text("#cap-heat-point")
    assert " kUSD" in p.inner_text("#cap-heat-point") and " probability" in p.inner_text("#cap-heat-point")
    text = page.hover_cell("heat-aggregate", col=1, row=0)  # income_k, p_default: std-scaled is in p_default's unit
    assert "probability" in text
    text = page.hover_cell("heat-point", col=1, row=0)
    assert "probability per kUSD" in text
    p.select_option("#ctl-rank-view", label="p_default")
    p.wait_for_function("() => document.getElementById('fig-ranking').layout.xaxis.title.text.includes('probability')")
    assert "in probability" in p.evaluate("() => document.getElementById('fig-ranking').layout.xaxis.title.text")
    assert "probability" in p.text_content("#desc-ranking")
    page.clean()


def test_dependence_view_draws_each_inputs_derivative_against_its_value(reports, open_page):
    folder = reports["tabular"]
    arrays = np.load(folder / "arrays.npz")
    page = open_page(folder / "report.html")
    p = page.page
    assert p.eval_on_selector_all("#ctl-dep-output option", "os => os.map(o => o.textContent)") == ["p_default", "p_late"]
    assert len(p.eval_on_selector_all("#ctl-dep-input option", "os => os")) == 5
    p.select_option("#ctl-dep-output", label="p_late")
    p.select_option("#ctl-dep-input", label="debt_ratio")
    p.wait_for_function("() => document.getElementById('title-dependence').textContent.startsWith('d p_late / d debt_ratio')")
    np.testing.assert_allclose(page.data("dependence", 0, "x"), sig(arrays["points"][:, 2], 6))
    np.testing.assert_allclose(page.data("dependence", 0, "y"), sig(arrays["jacobian"][:, 1, 2], 6))
    assert "probability per ratio" in p.evaluate("() => document.getElementById('fig-dependence').layout.yaxis.title.text")
    assert "coloured by" in p.inner_text("#title-dependence")
    assert p.text_content("#desc-dependence").startswith("Scatter of d p_late / d debt_ratio against debt_ratio at 40 points")
    details = p.locator('details.numbers[data-figure="dependence"]')
    details.locator("summary").click()
    details.locator("tbody tr").first.wait_for(timeout=5_000)  # filled on the toggle event, as in the heatmap test
    assert details.locator("tbody tr").count() == 40
    page.clean()
