"""Checks, baselines, output templates and the `latest` pointer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import EXAMPLES, ROOT
from sensreport.analysis import stats
from sensreport.analysis.baseline import MeasureTable, compare

TABULAR = (EXAMPLES / "tabular").resolve()


def doc(values: dict[str, dict[str, float]], sha="a") -> dict:
    inputs = list(next(iter(values.values())))
    return {"inputs": {"names": inputs}, "provenance": {"model_sha256": sha, "created": "t"},
            "measures": {"values": {"mean_abs": {"per_output": values}}}}


def test_compare_relative_change_ranks_and_top_k():
    old = doc({"y": {"a": 4.0, "b": 2.0, "c": 1.0, "d": 0.0}})
    new = doc({"y": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.002}}, sha="b")
    c = compare(MeasureTable.from_doc(new, "mean_abs"), old, top_k=2)
    row = c["per_output"]["y"]
    by_input = {r["input"]: r for r in row["inputs"]}
    assert by_input["a"] == {"input": "a", "old": 4.0, "new": 1.0, "rel_change": 0.75, "old_rank": 1, "new_rank": 3}
    assert by_input["c"]["rel_change"] == 2.0
    # d was 0: judged against 1e-3 of the output's largest old value (4.0)
    assert by_input["d"]["rel_change"] == pytest.approx(0.002 / 0.004)
    assert row["max_rel_change"] == 2.0
    assert row["top_k_changes"] == 1  # c entered the top 2, a left it
    assert row["rank_correlation"] == pytest.approx(stats.spearman(np.array([1, 2, 3, 0.002]), np.array([4, 2, 1, 0])))
    assert c["model_changed"] is True
    assert [r["input"] for r in row["inputs"]] == ["c", "b", "a", "d"]  # ordered by the new ranking


def test_compare_refuses_different_inputs():
    new = MeasureTable.from_doc(doc({"y": {"a": 1.0}}), "mean_abs")
    assert "different inputs" in compare(new, doc({"y": {"b": 1.0}}))["error"]


def test_spearman_one_implementation_with_average_ranks_for_ties():
    assert stats.spearman(np.array([1.0, 2, 3]), np.array([10.0, 20, 30])) == pytest.approx(1.0)
    assert stats.spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    # ties get their average rank (the two implementations this replaced said 0.949 and 1.0 here)
    rho = float(np.corrcoef([1.5, 1.5, 3, 0], [2, 1, 3, 0])[0, 1])
    assert stats.spearman(np.array([1.0, 1, 2, 0]), np.array([2.0, 1, 3, 0])) == pytest.approx(rho)
    assert rho == pytest.approx(0.9487, abs=1e-4)


SPEC = f"""\
title: Credit audit
model:
  keras: MODEL
  output_names: [p_default, p_late]
inputs:
  points: {{csv: {TABULAR / 'points.csv'}}}
methods:
  jacobian: {{}}
  finite_difference: {{}}
"""


def retrained(path):
    """The credit model with the first layer's weights for debt_ratio tripled."""
    import keras

    model = keras.saving.load_model(TABULAR / "credit.keras", compile=False)
    dense = model.layers[1]
    kernel, bias = dense.get_weights()
    kernel[2] *= 3.0
    dense.set_weights([kernel, bias])
    model.save(path)
    return path


def test_retrained_model_fails_drift_against_its_baseline(cli, write_spec, tmp_path):
    base = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras")), name="base.yaml")
    assert cli("run", base, "--out", tmp_path / "base").exit_code == 0
    same = cli("run", base, "--out", tmp_path / "same", "--baseline", tmp_path / "base" / "results.json")
    assert same.exit_code == 0, same.stderr
    again = json.loads((tmp_path / "same" / "results.json").read_text())
    drift = next(c for c in again["checks"] if c["id"] == "baseline.drift")
    assert drift["status"] == "pass" and drift["value"] == 0.0  # same model, same numbers
    assert again["baseline"]["model_changed"] is False

    new = write_spec(SPEC.replace("MODEL", str(retrained(tmp_path / "v2.keras"))), name="new.yaml")
    r = cli("run", new, "--out", tmp_path / "new", "--baseline", tmp_path / "base" / "results.json")
    assert r.exit_code == 1
    assert "FAIL baseline.drift: largest relative change of mean_abs:" in r.stderr
    res = json.loads((tmp_path / "new" / "results.json").read_text())
    assert res["check_status"] == "fail"
    assert res["checks"][0]["status"] == "fail"  # failures first
    drift = next(c for c in res["checks"] if c["id"] == "baseline.drift")
    assert drift["threshold"] == 0.25 and drift["value"] > 0.25 and drift["severity"] == "fail"
    assert res["baseline"]["model_changed"] is True
    debt = next(i for i in res["baseline"]["per_output"]["p_default"]["inputs"] if i["input"] == "debt_ratio")
    assert debt["rel_change"] > 0.25 and debt["new"] > debt["old"]
    html = (tmp_path / "new" / "report.html").read_text()
    assert "baseline.drift" in html and "debt_ratio" in html


def test_check_thresholds_from_the_spec(cli, write_spec, tmp_path):
    spec = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras"))
                      + "checks:\n  fd_vs_ad: {max_rel_error: 1.0e-9, min_share: 0.5, severity: warn}\n"
                        "  dead_inputs: false\n")
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 0  # a warning only
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    fd = next(c for c in res["checks"] if c["id"] == "fd_vs_ad")
    # max_rel_error is an extra bound beside max_z: at 1e-9 most float32 entries miss it
    assert fd["status"] == "warn" and fd["threshold"] == {"max_z": 3.0, "max_rel_error": 1e-9, "min_share": 0.5}
    assert res["agreement"]["estimate"]["max_rel_error"] == 1e-9
    assert not any(c["id"] == "dead_inputs" for c in res["checks"])
    assert cli("run", spec, "--out", tmp_path / "out", "--fail-on", "warn").exit_code == 1


def test_missing_baseline_is_an_error_check_not_a_failed_run(cli, write_spec, tmp_path):
    spec = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras"))
                      + "checks:\n  baseline: {path: reports/latest/results.json}\n")
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["checks"][0]["id"] == "baseline" and res["checks"][0]["status"] == "error"
    assert "baseline not found" in res["checks"][0]["message"]


def test_same_spec_gives_the_same_numbers(cli, write_spec, tmp_path):
    spec = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras")))
    docs = []
    for name in ("a", "b"):
        assert cli("run", spec, "--out", tmp_path / name).exit_code == 0
        d = json.loads((tmp_path / name / "results.json").read_text())
        for key in ("timings", "provenance", "memory"):
            d.pop(key)
        for m in d["methods"].values():
            for key in ("seconds", "first_call_seconds"):
                m.pop(key)
        docs.append(d)
    assert docs[0] == docs[1]
    a, b = (np.load(tmp_path / n / "arrays.npz") for n in ("a", "b"))
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


def test_date_template_and_latest_pointer(cli, write_spec, tmp_path):
    spec = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras")) + "report: {dir: 'reports/{datetime}'}\n")
    assert cli("run", spec).exit_code == 0
    runs = [p for p in (tmp_path / "reports").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and (runs[0] / "report.html").exists()
    latest = tmp_path / "reports" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == runs[0].name
    assert (latest / "results.json").exists()


def test_interrupted_write_leaves_previous_report_and_latest(cli, write_spec, tmp_path):
    spec = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras")) + "report: {dir: 'reports/{date}'}\n")
    assert cli("run", spec).exit_code == 0
    latest = tmp_path / "reports" / "latest"
    run_dir = latest.resolve()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    # a second run killed (SIGKILL) at its first rename into place
    code = textwrap.dedent(f"""
        import os, signal, sys
        from sensreport.cli import main
        real = os.replace
        def replace(a, b):
            if str(b).endswith(("arrays.npz", "results.json", "report.html")):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b)
        os.replace = replace
        sys.argv = ["sensreport", "run", r"{spec}", "--quiet"]
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == -9
    assert latest.resolve() == run_dir
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if not p.name.startswith(".")} == before


def test_history_and_compare_pages(cli, write_spec, tmp_path):
    base = write_spec(SPEC.replace("MODEL", str(TABULAR / "credit.keras")), name="base.yaml")
    new = write_spec(SPEC.replace("MODEL", str(retrained(tmp_path / "v2.keras"))), name="new.yaml")
    assert cli("run", base, "--out", tmp_path / "runs" / "r1").exit_code == 0
    assert cli("run", new, "--out", tmp_path / "runs" / "r2", "--plotlyjs", "cdn").exit_code == 0
    (tmp_path / "runs" / "noise").mkdir()
    (tmp_path / "runs" / "noise" / "results.json").write_text('{"not": "ours"}')
    r = cli("history", tmp_path / "runs", "--plotlyjs", "cdn")
    assert r.exit_code == 0 and "2 runs" in r.output
    page = (tmp_path / "runs" / "index.html").read_text()
    assert 'href="r1/report.html"' in page and 'href="r2/report.html"' in page
    assert page.index('href="r2/report.html"') < page.index('href="r1/report.html"')  # newest first
    figures = json.loads(page.split('id="figures">')[1].split("</script>")[0])
    trend = figures["trend"]["data"]
    assert len(trend) == 5 and all(len(t["y"]) == 2 for t in trend)
    r1 = json.loads((tmp_path / "runs" / "r1" / "results.json").read_text())
    debt = next(t for t in trend if t["name"] == "debt_ratio")
    lead = r1["measures"]["leading"]  # the trend ranks by the runs' leading measure, as their reports do
    assert debt["y"][0] == r1["measures"]["values"][lead]["overall"]["debt_ratio"]
    assert cli("history", tmp_path / "runs", "--plotlyjs", "cdn", "--measure", "mean_abs").exit_code == 0
    figures = json.loads((tmp_path / "runs" / "index.html").read_text().split('id="figures">')[1].split("</script>")[0])
    debt = next(t for t in figures["trend"]["data"] if t["name"] == "debt_ratio")
    assert debt["y"][0] == r1["measures"]["values"]["mean_abs"]["overall"]["debt_ratio"]

    r = cli("compare", tmp_path / "runs" / "r1", tmp_path / "runs" / "r2" / "results.json", "--out", tmp_path / "cmp.html")
    assert r.exit_code == 0
    cmp = (tmp_path / "cmp.html").read_text()
    assert "the model changed" in cmp and "debt_ratio" in cmp
    assert cli("history", tmp_path / "empty").exit_code == 2
