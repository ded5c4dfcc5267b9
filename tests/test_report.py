"""The report's structure (build_report) and its HTML, on synthetic results without TensorFlow.

``make_result`` builds a RunResult from a random Jacobian with the real measure
functions; the browser tests (test_browser.py) reuse it for the scale target.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import time

import numpy as np
import pytest

from sensreport.analysis import agreement as A
from sensreport.analysis import stats
from sensreport.analysis import measures as M
from sensreport.analysis import summaries as S
from sensreport import checks as C
from sensreport.analysis.pointstats import leading_measure, point_stats, rankable_measures
from sensreport.engine import MethodRun
from sensreport.report import build_report, format_number, render_report
from sensreport.report import to_json as _json
from sensreport.analysis.agreement import Agreement
from sensreport.results import CheckResult, MethodResult, RunResult
from sensreport.spec import default_checks

MEASURES = ["std_scaled", "mean_abs", "rms", "elasticity", "positive_share"]
ROOT_DIR = __import__("pathlib").Path(__file__).resolve().parent


def make_result(P=30, m=3, n=20, seed=0, input_shape=None, fd=True, rows=(0,), names_in=None, names_out=None,
                jacobian=True) -> RunResult:
    """A RunResult as the runner would build it, from a seeded random Jacobian ``[P, m, n]``.

    Input j's derivatives shrink like exp(-j / 5), so the ranking is known; finite
    differences are the Jacobian plus 1e-9 noise.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(P, n)) * (1 + np.arange(n) / n)
    y = rng.normal(size=(P, m)) + 3
    scale = np.exp(-np.arange(n) / 5.0)
    J = rng.normal(size=(P, m, n)) * scale + 0.5 * scale
    names_in = names_in or [f"x{j}" for j in range(n)]
    names_out = names_out or [f"y{i}" for i in range(m)]
    methods = {}
    if jacobian:
        methods["jacobian"] = MethodResult(MethodRun("jacobian", strategy="reverse", dtype="float64", seconds=0.5,
                                                     first_call_seconds=0.4, calls=1), values=J, outputs=list(range(m)))
    if rows:
        methods["rows"] = MethodResult(MethodRun("rows", strategy="reverse", dtype="float64", seconds=0.1, calls=1),
                                       values=J[:, list(rows)], outputs=list(rows))
    agreement = None
    if fd:
        F = J + rng.normal(size=J.shape) * 1e-9
        methods["finite_difference"] = MethodResult(
            MethodRun("finite_difference", strategy="central, batched", dtype="float64", seconds=0.2, calls=1),
            values=F, outputs=list(range(m)), step=np.full((P, n), 6e-6))
        if jacobian:
            E = np.full(J.shape, 1e-8)
            a = A.agreement(J, F, E)
            agreement = Agreement(a["summary"], list(range(m)), "jacobian", "float64", a["cell_z"], a["cell_kinks"],
                                  sample=a["sample"])
            methods["finite_difference"].error = E
    source = "jacobian" if jacobian else "finite_difference" if fd else "rows"
    src = methods[source]
    values = M.sensitivity_measures(src.values, x, y[:, src.outputs])
    kw = dict(
        title="Synthetic audit", description="A **random** Jacobian.",
        model={"kind": "callable", "source": "synthetic.py:f", "sha256": "a" * 64, "summary": f"synthetic [{n}] -> [{m}]"},
        input_names=names_in, output_names=names_out, input_shape=list(input_shape or [n]), output_shape=[m],
        points=x, outputs=y, methods=methods, measure_source=source, measure_outputs=list(src.outputs),
        measures=values, overall={k: M.overall(v, k) for k, v in values.items()}, shown_measures=list(MEASURES),
        agreement=agreement, nonfinite={"outputs": M.nonfinite(y), source: M.nonfinite(src.values)},
        dead_inputs=M.dead_inputs(src.values), warnings=[], timings={"jacobian": 0.5},
        provenance={"created": "2026-01-02T03:04:05+00:00", "spec_path": "synthetic.yaml", "spec_sha256": "b" * 64,
                    "model_sha256": "a" * 64, "command": ["sensreport", "run", "synthetic.yaml"], "seed": None,
                    "versions": {"numpy": np.__version__}},
        spec_text="version: 1\ntitle: Synthetic audit\n",
    )
    # RunResult grows new fields as the runner grows: give any other required field an empty value
    for f in dataclasses.fields(RunResult):
        if f.name not in kw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw[f.name] = {}
    return finish(RunResult(**kw))


def finish(r: RunResult, checks: dict | None = None) -> RunResult:
    """What the runner does after the sweep: point statistics, the leading measure, the checks."""
    r.leading_measure = leading_measure(r.shown_measures, r.measures, r.overall)
    src = r.methods.get(r.measure_source)
    if src is not None:
        r.point_stats = point_stats(src.values, r.points, np.asarray(r.outputs)[:, src.outputs], r.measures,
                                    rankable_measures(r.shown_measures, r.measures, r.overall), r.leading_measure)
    C.apply(r, default_checks(checks, ROOT_DIR), None)
    return r


def payload(html: str) -> dict:
    """The JSON the page's script reads (figures, downloads, table)."""
    return json.loads(re.search(r'<script type="application/json" id="payload">(.*?)</script>', html, re.S).group(1))


def csv_rows(report: dict) -> list[dict]:
    text = json.loads(report["payload_json"])["downloads"]["rankings"]["text"]
    return list(csv.DictReader(io.StringIO(text)))


def sig(a, digits):
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"))(np.asarray(a, dtype=np.float64))


# --------------------------------------------------------------------------- structure
def test_sections_summary_and_checks():
    r = make_result()
    rep = build_report(r)
    figs = json.loads(rep["payload_json"])["figures"]
    assert set(figs) == {"ranking", "heat-aggregate", "heat-point", "heat-rows", "fd-scatter", "fd-error", "dependence"}
    # one sentence per output naming its top input by the leading measure (std-scaled)
    for row, s in enumerate(rep["summary"]["sentences"]):
        top = stats.ranking(r.measures["std_scaled"][row])[0]
        assert s["output"] == f"y{row}"
        assert s["text"].startswith(f"reacts most to {r.input_names[top]} (")
    order = [c["status"] for c in rep["checks"]]
    assert order == sorted(order, key=["fail", "error", "warn", "info", "pass"].index)
    assert rep["verdict"]["headline"] == "Checks passed" and rep["verdict"]["exit_code"] == 0
    assert any(c["title"] == "Finite differences agree with automatic derivatives" for c in rep["checks"])
    assert rep["created"] == "02 Jan 2026, 03:04 UTC"
    assert rep["provenance"]["command"] == "sensreport run synthetic.yaml"


def test_failures_come_first_with_their_reason():
    r = make_result()
    r.methods["rows"] = MethodResult(MethodRun("rows", status="failed", reason="TensorFlow found PyFunc ops"),
                                     outputs=[0])
    r.nonfinite["jacobian"] = {"count": 2, "nan": 1, "inf": 1, "locations": [[0, 1, 2], [3, 0, 0]]}
    rep = build_report(finish(r))
    checks = rep["checks"]
    assert [c["status"] for c in checks[:2]] == ["fail", "error"]
    titles = {c["title"]: c for c in checks[:2]}
    assert titles["Selected rows (gradients of chosen outputs) failed"]["text"] == "Rows failed: TensorFlow found PyFunc ops."
    assert "first at point #0, y1 / x2, point #3, y0 / x0" in titles["Non-finite values (left out of every measure)"]["items"][0]
    assert rep["verdict"]["headline"] == "Incomplete: rows failed" and rep["verdict"]["exit_code"] == 3


def _with_jacobian(r, J, checks=None):
    r.points = np.tile(np.linspace(-1.0, 1.0, len(J))[:, None], (1, J.shape[2]))  # every input spreads alike
    r.methods = {"jacobian": MethodResult(MethodRun("jacobian"), values=J, outputs=list(range(J.shape[1])))}
    r.measures = M.sensitivity_measures(J, r.points, r.outputs)
    r.overall = {k: M.overall(v, k) for k, v in r.measures.items()}
    r.dead_inputs = M.dead_inputs(J)
    r.agreement = None
    return finish(r, checks)


def test_dead_inputs_warn_unstable_rankings_and_sign_changes_inform():
    rng = np.random.default_rng(1)
    J = (9.0 - np.arange(9)) * (1 + 0.1 * rng.uniform(size=(40, 2, 9)))  # positive, one clear order
    calm = {c["title"]: c["status"] for c in build_report(_with_jacobian(make_result(P=40, m=2, n=9), J))["checks"]}
    assert calm["Rankings are stable across points"] == calm["Directions are consistent"] == "pass"
    assert calm["No dead inputs"] == "pass"
    J[:, :, 8] = 0.0  # a dead input
    J[:20, 0, 0] *= -1  # y0 falls with x0 at half the points
    J[:, 1, :8] = [9.0 - rng.permutation(8) for _ in range(40)]  # y1: another order of the inputs at every point
    checks = {c["title"]: c for c in build_report(_with_jacobian(make_result(P=40, m=2, n=9), J))["checks"]}
    assert checks["1 dead input"]["status"] == "warn" and "with respect to x8 is exactly zero" in checks["1 dead input"]["text"]
    direction = checks["Direction changes across points (1 case)"]
    assert direction["status"] == "info"  # a finding, not a failure, unless the spec raises its severity
    assert direction["items"] == ["y0 rises with x0 at 50% of points and falls at 50%"]
    unstable = checks["Ranking changes across points for 1 output"]
    assert unstable["status"] == "info"
    assert len(unstable["items"]) == 1 and unstable["items"][0].startswith("y1: median Spearman ")
    # a spec that raises their severity makes them warnings: the verdict follows
    raised = _with_jacobian(make_result(P=40, m=2, n=9), J, {"ranking_stability": {"severity": "warn"},
                                                             "direction_changes": {"severity": "fail"}})
    statuses = {c.id: c.status for c in raised.checks}
    assert statuses["ranking_stability"] == "warn" and statuses["direction_changes"] == "fail"
    assert raised.verdict.status == "failed" and raised.verdict.failing == ("direction_changes",)


def test_run_warnings_inform_and_engine_notes_are_listed():
    r = make_result()
    r.warnings = ["The model contains Round ops, whose derivative TensorFlow defines as zero."]
    r.notes = ["The model computes in float32 even when given float64 inputs, so finite differences were evaluated "
               "in float32."]
    rep = build_report(finish(r))
    rows = {c["id"]: c for c in rep["checks"]}
    assert rows["warnings"]["status"] == "info" and "Round" in rows["warnings"]["items"][0]
    assert rep["notes"] == r.notes
    assert rep["verdict"]["status"] == "passed"  # info never changes the verdict
    html = render_report(r)
    assert "ℹ INFO" in html and 'class="badge check-info"' in html and "Notes from the run" in html


def test_the_report_shows_the_checks_as_decided():
    r = make_result()
    r.checks = [
        CheckResult("fd_vs_ad", "fail", 0.5, {"min_share": 0.99}, "fail", "50% agree", key="checks.fd_vs_ad",
                    title="Finite differences vs automatic derivatives"),
        CheckResult("baseline.drift", "warn", 0.3, 0.1, "warn", "largest relative change of mean_abs: 0.3",
                    key="checks.baseline", title="Drift against the baseline run"),
    ]
    r.verdict = C.decide(r, r.checks)
    rep = build_report(r)
    checks = rep["checks"]
    assert [c["id"] for c in checks] == ["fd_vs_ad", "baseline.drift"]  # nothing added, nothing re-decided
    assert checks[0]["status"] == "fail" and checks[0]["text"] == "50% agree."
    assert checks[0]["threshold"] == "fd_vs_ad: threshold min_share 0.99, severity fail (spec key checks.fd_vs_ad)"
    assert checks[1]["status"] == "warn" and checks[1]["title"] == "Drift against the baseline run"
    assert rep["verdict"]["headline"] == "Check failed: fd_vs_ad" and rep["verdict"]["tone"] == "fail"


def test_baseline_comparison_is_shown():
    r = make_result(m=1, n=3, names_out=["<i>y</i>"])
    r.baseline = {"measure": "mean_abs", "top_k": 2, "baseline_created": "2026-01-01T00:00:00+00:00",
                  "baseline_model_sha256": "c" * 64, "model_changed": True,
                  "per_output": {"<i>y</i>": {"inputs": [{"input": "x0", "old": 1.0, "new": 1.5, "rel_change": 0.5,
                                                         "old_rank": 2, "new_rank": 1}],
                                             "max_rel_change": 0.5, "top_k_changes": 1, "rank_correlation": 0.5}}}
    bl = build_report(r)["baseline"]
    assert bl["created"] == "01 Jan 2026, 00:00 UTC" and bl["model_changed"] and bl["outputs"][0]["top_k_changes"] == 1
    html = render_report(r, plotlyjs="cdn")
    assert "Compared with the baseline run" in html and "(the model has changed since)" in html
    assert "<tr><td>&lt;i&gt;y&lt;/i&gt;</td><td class=\"num\">0.5</td>" in html
    r.baseline = {"error": "the baseline has different inputs"}
    assert "Not compared: the baseline has different inputs." in render_report(r, plotlyjs="cdn")


# --------------------------------------------------------------------------- rankings
def test_csv_holds_the_exact_measures_ranks_and_spread():
    r = make_result()
    rep = build_report(r)
    rows = csv_rows(rep)
    assert len(rows) == (r.measures["mean_abs"].shape[0] + 1) * 20  # overall + each output, every input
    local = S.local_values("mean_abs", r.methods["jacobian"].values, r.points, r.outputs)
    q = stats.quantiles(local, axis=0)
    for row in rows:
        j = r.input_names.index(row["input"])
        if row["scope"] == "overall":
            assert row["output"] == ""
            for m in MEASURES:
                assert float(row[m]) == r.overall[m][j]
            continue
        i = r.output_names.index(row["output"])
        for m in MEASURES:
            assert float(row[m]) == r.measures[m][i, j]  # exact: the CSV writes repr(), as results.json
        assert int(row["rank_mean_abs"]) == stats.rank_positions(r.measures["mean_abs"][i])[j]
        assert float(row["mean_abs_p25"]) == float(f"{q[0, i, j]:.6g}")
        assert float(row["mean_abs_p75"]) == float(f"{q[2, i, j]:.6g}")
    # rows of one view come in ranking order of the leading measure
    y1 = [row["input"] for row in rows if row["output"] == "y1"]
    assert y1 == [r.input_names[j] for j in stats.ranking(r.measures["std_scaled"][1])]


def test_ranking_chart_top_15_plus_all_others():
    r = make_result(n=40)
    fig = json.loads(build_report(r)["payload_json"])["figures"]["ranking"]
    assert set(fig["variants"]) == {f"{m}|{v}" for m in ["std_scaled", "mean_abs", "rms", "elasticity"]
                                    for v in ["overall", "o0", "o1", "o2"]}
    bars = fig["variants"]["mean_abs|o2"]["data"][0]
    order = stats.ranking(r.measures["mean_abs"][2])
    assert bars["y"][:15] == [r.input_names[j] for j in order[:15]]
    assert bars["y"][15] == "all other 25 inputs (sum)"
    assert bars["x"][15] == pytest.approx(np.sum(r.measures["mean_abs"][2][order[15:]]), rel=1e-5)
    iqr = fig["variants"]["mean_abs|o2"]["data"][1]
    q = stats.quantiles(np.abs(r.methods["jacobian"].values[:, 2]), axis=0)
    np.testing.assert_allclose(iqr["x"], q[1][order[:15]], rtol=1e-5)
    np.testing.assert_allclose(iqr["error_x"]["array"], (q[2] - q[1])[order[:15]], rtol=1e-5, atol=1e-12)
    # few inputs: every input gets a bar, no "other" bar
    small = json.loads(build_report(make_result(n=16))["payload_json"])["figures"]["ranking"]
    assert len(small["data"][0]["y"]) == 16


# --------------------------------------------------------------------------- heatmaps
def test_heatmaps_hold_the_measures_and_per_point_derivatives():
    r = make_result(P=12)
    figs = json.loads(build_report(r)["payload_json"])["figures"]
    agg = figs["heat-aggregate"]
    t = agg["data"][0]
    # the leading measure (std-scaled here), as in the summary and the rankings
    assert r.leading_measure == "std_scaled" and t["meta"] == "std-scaled sensitivity"
    np.testing.assert_allclose(t["z"], sig(r.measures["std_scaled"], 6))
    assert t["customdata"] == stats.rank_positions(r.measures["std_scaled"]).tolist()
    assert t["x"] == r.input_names and t["y"] == r.output_names
    np.testing.assert_allclose(agg["variants"]["signed"]["data"][0]["z"],
                               sig(r.methods["jacobian"].values.mean(axis=0), 6))
    assert agg["variants"]["signed"]["data"][0]["zmid"] == 0
    point = figs["heat-point"]
    assert point["controls"] == ["point"] and len(point["variants"]) == 12
    np.testing.assert_allclose(point["variants"]["7"]["data"][0]["z"], sig(r.methods["jacobian"].values[7], 4))
    assert point["variants"]["7"]["caption"].startswith("Point #7 (8 of 12 shown): x0 = ")
    rows = figs["heat-rows"]  # the rows method's output 0: points x inputs
    np.testing.assert_allclose(rows["data"][0]["z"], sig(r.methods["rows"].values[:, 0], 4))


def test_large_runs_stay_small_and_say_so():
    r = make_result(P=2000, m=20, n=200, rows=(0, 1))
    t0 = time.perf_counter()
    html = render_report(r)
    seconds = time.perf_counter() - t0
    size = len(html.encode("utf-8"))
    print(f"\nrender 2000 points x 20 outputs x 200 inputs: {seconds:.1f} s, {size / 1e6:.2f} MB")
    assert size < 10e6
    p = payload(html)
    assert len(p["figures"]["heat-point"]["variants"]) == 15  # 60,000 cells / (20 x 200)
    assert "Cell budget: 15 of 2,000 points are embedded, evenly spaced" in html
    assert "2,000 of 8,000,000 entries are drawn: the 200 with the largest z" in html
    assert len(p["figures"]["fd-scatter"]["data"][0]["x"]) + len(p["figures"]["fd-scatter"]["data"][1]["x"]) == 2000


def test_spread_of_a_huge_run_uses_evenly_spaced_points(monkeypatch):
    import sensreport.analysis.pointstats as PS

    monkeypatch.setattr(PS, "STATS_ENTRIES", 40 * 3 * 20)  # as if the run were too large: 40 of 400 points
    r = make_result(P=400)
    rep = build_report(r)
    assert "use 40 of the 400 points, evenly spaced" in " ".join(rep["rankings"]["notes"])
    idx = S.subsample_indices(400, 40)
    local = S.local_values("std_scaled", r.methods["jacobian"].values[idx], r.points[idx], r.outputs[idx],
                           spread=r.points.std(axis=0))
    q = stats.quantiles(local, axis=0)
    row = next(x for x in csv_rows(rep) if x["output"] == "y0" and x["input"] == "x3")
    assert float(row["std_scaled_p25"]) == float(f"{q[0, 0, 3]:.6g}")
    # the signed mean still covers every point
    signed = json.loads(rep["payload_json"])["figures"]["heat-aggregate"]["variants"]["signed"]["data"][0]["z"]
    np.testing.assert_allclose(signed, sig(r.methods["jacobian"].values.mean(axis=0), 6))


def test_column_budget_keeps_the_most_influential_inputs():
    r = make_result(P=3, m=50, n=1000, fd=False, rows=())
    rep = build_report(r)
    t = json.loads(rep["payload_json"])["figures"]["heat-aggregate"]["data"][0]
    assert len(t["x"]) == 800  # 40,000 cells / 50 outputs
    top = set(stats.ranking(r.overall["std_scaled"])[:800])
    assert t["x"] == [r.input_names[j] for j in sorted(top)]
    assert "Cell budget: the 800 most influential of 1,000 inputs" in " ".join(rep["heatmaps"]["notes"])


# --------------------------------------------------------------------------- degrading
def test_without_per_point_derivatives_the_aggregates_remain():
    r = make_result(fd=False, rows=())
    r.methods["jacobian"].values = None  # e.g. execution.arrays: none
    rep = build_report(finish(r))
    figs = json.loads(rep["payload_json"])["figures"]
    assert set(figs) == {"ranking", "heat-aggregate"}
    assert rep["heatmaps"]["point"] is None and "were not kept" in rep["heatmaps"]["point_note"]
    assert "Bars: the measure over all points. The per-point derivatives" in rep["rankings"]["notes"][0]
    assert "mean_abs_p25" not in csv_rows(rep)[0]
    html = render_report(r)
    assert "were not kept" in html


def test_a_preview_of_the_first_points_feeds_the_per_point_views():
    r = make_result(P=30, fd=False, rows=())
    J = r.methods["jacobian"].values
    r.methods["jacobian"].values, r.methods["jacobian"].preview = None, J[:5]
    rep = build_report(finish(r))
    point = json.loads(rep["payload_json"])["figures"]["heat-point"]
    assert len(point["variants"]) == 5
    np.testing.assert_allclose(point["variants"]["4"]["data"][0]["z"], sig(J[4], 4))
    assert "Only the first 5 points were kept" in " ".join(rep["heatmaps"]["point"]["notes"])
    assert rep["rankings"]["notes"][0].startswith("Bars: the measure over all points. The per-point derivatives")


def test_without_any_derivatives_the_failures_are_the_report():
    r = make_result(fd=False, rows=())
    r.methods = {"jacobian": MethodResult(MethodRun("jacobian", status="failed", reason="TensorFlow found PyFunc ops"),
                                          outputs=[0, 1, 2])}
    r.measure_source, r.measure_outputs, r.measures, r.overall, r.agreement = None, [], {}, {}, None
    r.nonfinite = {"outputs": M.nonfinite(r.outputs)}
    r.point_stats = None
    rep = build_report(finish(r))
    assert rep["rankings"] is None and rep["heatmaps"] is None
    assert rep["checks"][0]["status"] == "error" and "PyFunc" in rep["checks"][0]["text"]
    assert rep["verdict"]["status"] == "incomplete"
    assert "No method produced derivatives" in render_report(r)


def test_rows_only_runs_map_the_selected_outputs():
    r = make_result(fd=False, rows=(2,), jacobian=False)
    rep = build_report(r)
    t = json.loads(rep["payload_json"])["figures"]["heat-aggregate"]["data"][0]
    assert t["y"] == ["y2"]
    assert "Only the 1 selected outputs (methods.rows)" in " ".join(rep["heatmaps"]["notes"])


def test_one_point_has_no_spread_and_no_slider():
    r = make_result(P=1)
    rep = build_report(r)
    assert rep["heatmaps"]["point"] is None and rep["heatmaps"]["point_note"].startswith("One point only")
    assert not any(c["id"] == "ranking_stability" for c in rep["checks"])  # nothing to compare at one point


# --------------------------------------------------------------------------- images
def test_image_shaped_inputs_are_drawn_as_images():
    r = make_result(P=6, m=3, n=6 * 5 * 2, input_shape=[6, 5, 2], fd=False, rows=())
    rep = build_report(r)
    figs = json.loads(rep["payload_json"])["figures"]
    assert rep["heatmaps"] is None and "heat-aggregate" not in figs
    img = figs["img-aggregate"]
    assert len(img["data"]) == 3
    expected = S.to_image(r.measures[r.leading_measure][1], [6, 5, 2])  # channels averaged as mean |value|
    np.testing.assert_allclose(img["data"][1]["customdata"], sig(expected, 4))
    assert np.asarray(img["data"][1]["z"]).shape == (6, 5)
    assert img["layout"]["coloraxis"]["cmax"] == 1
    assert len(figs["img-point"]["variants"]) == 6
    assert "axis 2 (channels) is averaged as mean |value|" in " ".join(rep["images"]["notes"])


# --------------------------------------------------------------------------- HTML
def test_user_text_cannot_leave_its_context():
    evil_in = ["</script><script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "a & b"]
    evil_out = ["<b>y</b>", "</script>"]
    r = make_result(m=2, n=3, names_in=evil_in, names_out=evil_out, rows=(1,))
    r.title = "<script>alert('t')</script>"
    r.description = "<img src=x onerror=alert(3)> [x](javascript:alert(4))"
    html = render_report(r, plotlyjs="cdn")
    # exactly our own three script elements: plotly.js, the payload and the page's script
    assert len(re.findall(r"<script", html, re.I)) == 3 and len(re.findall(r"</script", html, re.I)) == 3
    assert "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in html
    p = payload(html)
    assert p["figures"]["heat-aggregate"]["data"][0]["x"][0] == "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "\noutput,<b>y</b>,</script><script>alert(1)</script>," in p["downloads"]["rankings"]["text"]  # real names
    assert _json({"a": "</script>&"}) == '{"a":"\\u003c/script\\u003e\\u0026"}'


def test_cdn_mode_is_small():
    import plotly.offline

    html = render_report(make_result(), plotlyjs="cdn")
    assert len(html) < 1e6
    assert f'<script src="https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"' in html


def test_format_number():
    assert [format_number(v) for v in (None, 0, 0.43647, 1.2e-5, 123456.0, float("nan"), float("inf"))] == [
        "—", "0", "0.4365", "1.200e-05", "1.235e+05", "NaN", "∞"]


# --------------------------------------------------------------------------- end to end
def test_image_model_end_to_end(cli, write_spec, tmp_path):
    """A callable on [6, 6, 1] images whose output depends on pixel (2, 3) most: the image shows it."""
    np.save(tmp_path / "points.npy", np.random.default_rng(0).uniform(0.5, 1.5, size=(5, 6, 6, 1)))
    spec = write_spec("""\
        title: Tiny image model
        model:
          callable: f.py:score
        inputs:
          points: {npy: points.npy}
        methods:
          jacobian: {}
        """, f__py="import tensorflow as tf\n\ndef score(x):\n"
                   "    return tf.stack([5.0 * x[2, 3, 0] ** 2 + tf.reduce_sum(x), tf.reduce_mean(x)])\n")
    res = cli("run", spec, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    html = (tmp_path / "out" / "report.html").read_text()
    img = payload(html)["figures"]["img-aggregate"]
    z = np.asarray(img["data"][0]["customdata"], dtype=float)
    assert z.shape == (6, 6) and np.unravel_index(np.argmax(z), z.shape) == (2, 3)
    assert "Sensitivity images" in html and "Heatmaps: outputs × inputs" not in html
