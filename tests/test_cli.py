"""The command line end to end: examples, outputs, exit codes, atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES

SEED = EXAMPLES / "seed"


def load(out):
    return json.loads((out / "results.json").read_text()), np.load(out / "arrays.npz")


def test_scalar_example_derivative_is_six(cli, tmp_path):
    r = cli("run", SEED / "scalar.yaml", "--out", tmp_path, "--quiet")
    assert r.exit_code == 0, r.output
    results, arrays = load(tmp_path)
    assert arrays["jacobian"].shape == (1, 1, 1)
    assert arrays["jacobian"][0, 0, 0] == 6.0
    assert abs(arrays["finite_difference"][0, 0, 0] - 6.0) < 1e-9
    assert results["status"] == "ok"
    assert results["agreement"]["max_rel_error"] < 1e-9
    assert results["measures"]["values"]["mean_abs"]["per_output"]["f"] == {"x": 6.0}
    assert "std_scaled" in results["measures"]["values"]  # present, but null with one point
    assert results["measures"]["values"]["std_scaled"]["overall"] == {"x": None}


def test_vector_example_jacobian_row_and_fd(cli, tmp_path):
    r = cli("run", SEED / "vector.yaml", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    results, arrays = load(tmp_path)
    exact = np.diag([2.0, np.cos(2.0), np.exp(3.0)])
    np.testing.assert_allclose(arrays["jacobian"][0], exact, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(arrays["rows"][0], exact[[1]], rtol=1e-15, atol=1e-15)
    assert arrays["rows_outputs"].tolist() == [1]
    np.testing.assert_allclose(arrays["finite_difference"][0], exact, rtol=1e-9, atol=1e-9)
    assert results["methods"]["rows"]["outputs"] == [1]
    assert results["rankings"]["mean_abs"]["per_output"]["exp_x2"][0] == "x2"
    assert results["methods"]["jacobian"]["strategy"] == "forward-pfor"  # n == m: forward


def test_blackbox_example_fd_matches_exact_derivative(cli, tmp_path):
    r = cli("run", SEED / "blackbox.yaml", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    results, arrays = load(tmp_path)
    x = np.array([0.5, 1.0, 2.0, 3.0])
    exact = np.diag(np.sin(x) / (3 * np.cbrt(x) ** 2) + np.cbrt(x) * np.cos(x))
    np.testing.assert_allclose(arrays["finite_difference"][0], exact, rtol=1e-8, atol=1e-9)
    assert "jacobian" not in arrays
    assert results["inputs"]["names"] == ["x[0]", "x[1]", "x[2]", "x[3]"]
    assert any("tf.map_fn" in w for w in results["notes"])


def test_tabular_example_end_to_end(cli, tmp_path):
    r = cli("run", EXAMPLES / "tabular" / "spec.yaml", "--out", tmp_path)
    assert r.exit_code == 0, r.output
    results, arrays = load(tmp_path)
    assert results["inputs"]["names"] == ["age", "income_k", "debt_ratio", "late_payments", "years_employed"]
    assert arrays["points"].shape == (40, 5)
    assert arrays["jacobian"].shape == (40, 2, 5)
    assert arrays["rows"].shape == (40, 1, 5)
    np.testing.assert_array_equal(arrays["rows"][:, 0], arrays["jacobian"][:, 0])
    # float32 model: every smooth entry agrees within 3 estimated errors of its finite difference
    assert results["agreement"]["share_within_tolerance"] == 1.0 and results["agreement"]["max_z"] <= 3
    assert arrays["finite_difference_error"].shape == arrays["finite_difference"].shape
    np.testing.assert_allclose(arrays["finite_difference"], arrays["jacobian"], rtol=2e-2, atol=1e-4)
    # the rule the model was trained on: risk falls with income in every applicant
    assert results["measures"]["values"]["positive_share"]["per_output"]["p_default"]["income_k"] == 0.0
    prov = results["provenance"]
    assert len(prov["model_sha256"]) == 64 and len(prov["spec_sha256"]) == 64
    assert prov["versions"]["tensorflow"]
    html = (tmp_path / "report.html").read_text()
    assert "Credit model sensitivity audit" in html and "<script src=" not in html  # plotly.js inlined


def test_keras_with_sampled_points_and_output_index(cli, write_spec, tmp_path):
    spec = write_spec(f"""\
        model:
          keras: {EXAMPLES / 'tabular' / 'credit.keras'}
        inputs:
          names: [age, income, debt, late, years]
          points:
            sample:
              n: 25
              seed: 3
              distributions:
                age: {{uniform: [20, 70]}}
                default: {{normal: [1, 0.5]}}
        methods:
          rows: {{outputs: [1]}}
        """)
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    results, arrays = load(tmp_path / "out")
    assert arrays["rows"].shape == (25, 1, 5)
    assert results["outputs"]["names"] == ["y[0]", "y[1]"]
    assert results["provenance"]["seed"] == 3
    r2 = cli("run", spec, "--out", tmp_path / "again")
    assert r2.exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "arrays.npz")["points"], arrays["points"])


def test_saved_model_with_signature(cli, write_spec, tmp_path):
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="features")])
        def serve(self, features):
            return {"score": tf.stack([features[:, 0] * features[:, 1], tf.sin(features[:, 1])], axis=1)}

    module = Model()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    spec = write_spec("""\
        model:
          saved_model: sm
          output_key: score
        inputs:
          points: {values: [[1.0, 2.0], [3.0, -1.0]]}
        methods:
          jacobian: {}
        """)
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    _, arrays = load(tmp_path / "out")
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    exact = np.stack([[[p[1], p[0]], [0, np.cos(p[1])]] for p in x])
    np.testing.assert_allclose(arrays["jacobian"], exact, rtol=1e-6)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "spec_text, files, message",
    [
        ("model: [unclosed\n", {}, "not valid YAML"),
        ("model:\n  keras: nope.keras\ninputs: {points: {values: [1]}}\nmethods: {jacobian: {}}\n", {},
         "model.keras: file not found"),
        ("model:\n  keras: bad.keras\ninputs: {points: {values: [1]}}\nmethods: {jacobian: {}}\n",
         {"bad__keras": "not a zip"}, "model.keras: cannot load bad.keras as a Keras model"),
        ("model: {callable: f.py:poly}\ninputs: {points: {csv: p.csv}}\nmethods: {jacobian: {}}\n",
         {"p__csv": "a,b\n1,2\n3,nan\n"}, "inputs.points.csv: 1 value(s) are NaN or infinite: point 1 (row 3 of the file, input 'b')"),
        ("model: {callable: f.py:poly}\ninputs: {points: {csv: p.csv}}\nmethods: {jacobian: {}}\n",
         {"p__csv": "a,b\n1,x\n"}, "inputs.points.csv: p.csv line 2, column 'b': 'x' is not a number"),
        ("model: {callable: f.py:broken}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {jacobian: {}}\n", {},
         "model.callable: calling the model on the points (shape [1, 2]) failed: model exploded"),
        ("model: {callable: f.py:nope}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {jacobian: {}}\n", {},
         "model.callable: ", ),
        (f"model: {{keras: {EXAMPLES / 'tabular' / 'credit.keras'}}}\ninputs: {{points: {{values: [[1, 2]]}}}}\n"
         "methods: {jacobian: {}}\n", {}, "inputs.points.values: each point has shape [2] (2 values) but the model takes inputs of shape [5]"),
        ("model: {callable: f.py:poly, output_names: [a]}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {jacobian: {}}\n",
         {}, "model.output_names: 1 names given but the model has 2 outputs"),
        ("model: {callable: f.py:poly}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {rows: {outputs: [5]}}\n",
         {}, "methods.rows.outputs[0]: output index 5 is out of range: the model has 2 outputs"),
    ],
)
def test_bad_input_gives_message_and_exit_2(cli, write_spec, functions_py, spec_text, files, message):
    spec = write_spec(spec_text, f__py=functions_py, **files)
    r = cli("run", spec, "--out", spec.parent / "out")
    assert r.exit_code == 2, r.output
    assert message in r.stderr
    assert "Traceback" not in r.output + r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert not (spec.parent / "out" / "report.html").exists()


def test_jacobian_too_large_for_memory_exits_3_and_names_the_key(cli, write_spec, functions_py):
    spec = write_spec(
        "model: {callable: f.py:poly}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {jacobian: {}}\n"
        "execution: {memory_budget: 10}\n", f__py=functions_py)
    r = cli("run", spec, "--out", spec.parent / "out")
    assert r.exit_code == 3
    assert "methods.jacobian: the Jacobian array [1, 2, 2] needs" in r.stderr
    assert "execution.memory_budget" in r.stderr


def test_nonfinite_derivatives_fail_their_check_with_location(cli, write_spec, functions_py, tmp_path):
    text = "model: {callable: f.py:nan_at_zero}\ninputs: {points: {values: [[0.0, 4.0]]}}\nmethods: {jacobian: {}}\n"
    spec = write_spec(text, f__py=functions_py)
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 1  # the default nonfinite check has severity fail
    # d sqrt(x0)/dx0 at 0 is inf; TensorFlow's chain rule also gives 0 * inf = NaN for
    # d sqrt(x0)/dx1: both are reported where they are, not hidden
    assert "FAIL nonfinite: NaN/Inf values: 2 in jacobian (first at [[0, 0, 0]])" in r.stderr
    results, arrays = load(tmp_path / "out")
    assert results["status"] == "incomplete" and results["check_status"] == "fail"
    assert results["nonfinite"]["jacobian"] == {"count": 2, "nan": 1, "inf": 1, "locations": [[0, 0, 0], [0, 0, 1]]}
    assert arrays["jacobian"][0, 1, 1] == pytest.approx(0.25)
    check = next(c for c in results["checks"] if c["id"] == "nonfinite")
    assert {k: check[k] for k in ("id", "status", "value", "threshold", "severity", "message", "key")} == {
        "id": "nonfinite", "status": "fail", "value": 2, "threshold": 0, "severity": "fail",
        "message": "NaN/Inf values: 2 in jacobian (first at [[0, 0, 0]])", "key": "checks.nonfinite"}
    assert results["verdict"]["status"] == "failed" and results["verdict"]["failing"] == ["nonfinite"]

    warn = write_spec(text + "checks: {nonfinite: {severity: warn}}\n", name="warn.yaml")
    assert cli("run", warn, "--out", tmp_path / "w").exit_code == 0
    assert cli("run", warn, "--out", tmp_path / "w", "--fail-on", "warn").exit_code == 1


def test_autodiff_of_a_blackbox_fails_honestly_while_fd_runs(cli, write_spec, functions_py, tmp_path):
    spec = write_spec(
        "model: {callable: f.py:blackbox}\ninputs: {points: {values: [[0.5, 1.0]]}}\n"
        "methods: {jacobian: {}, finite_difference: {}}\n", f__py=functions_py)
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 3
    results, arrays = load(tmp_path / "out")
    assert results["methods"]["jacobian"]["status"] == "failed"
    assert "PyFunc" in results["methods"]["jacobian"]["reason"]
    assert "jacobian" not in arrays
    np.testing.assert_allclose(arrays["finite_difference"][0], np.diag(np.cos([0.5, 1.0])), rtol=1e-8)
    assert results["measures"]["source"] == "finite_difference"
    assert "PyFunc" in (tmp_path / "out" / "report.html").read_text()  # the report gives the reason


def test_failed_run_leaves_previous_report_intact(cli, write_spec, functions_py, tmp_path):
    out = tmp_path / "out"
    good = write_spec("model: {callable: f.py:poly}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {jacobian: {}}\n",
                      f__py=functions_py)
    assert cli("run", good, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write_spec("model: {callable: f.py:broken}\ninputs: {points: {values: [[1, 2]]}}\nmethods: {jacobian: {}}\n",
                     name="bad.yaml")
    assert cli("run", bad, "--out", out).exit_code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_validate_and_schema_commands(cli):
    r = cli("validate", SEED / "vector.yaml")
    assert r.exit_code == 0
    assert "valid (callable model, values points, methods: jacobian, rows, finite_difference)" in r.output
    r = cli("schema")
    assert r.exit_code == 0 and json.loads(r.output)["title"] == "sensreport spec"


def test_help_and_validate_do_not_import_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from sensreport.cli import main; "
            f"r = CliRunner().invoke(main, ['validate', r'{SEED / 'scalar.yaml'}']); "
            "assert r.exit_code == 0, r.output; assert 'tensorflow' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_python_api_runs_a_spec_mapping(tmp_path, functions_py, monkeypatch):
    import sensreport

    (tmp_path / "f.py").write_text(functions_py)
    monkeypatch.chdir(tmp_path)
    result = sensreport.run({"model": {"callable": "f.py:poly"}, "inputs": {"points": {"values": [[1.0, 2.0]]}},
                             "methods": {"jacobian": None}}, write=False)
    np.testing.assert_allclose(result.methods["jacobian"].values[0], [[3 - 4, -2], [0, 4]])
    assert result.status == "ok"


def test_report_templates_replace_built_in_ones(cli, write_spec, tmp_path):
    # report.templates: a user folder whose templates win over the built-in ones of the same name
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "_style.css.j2").write_text("/* house style */ body { font-family: serif; }\n")
    text = ("model: {callable: f.py:poly}\ninputs: {points: {values: [[1.0, 2.0], [0.5, 1.0]]}}\n"
            "methods: {jacobian: {}}\nreport: {templates: tpl}\n")
    spec = write_spec(text, f__py=FUNCTIONS_FOR_TEMPLATES)
    assert cli("run", spec, "--out", tmp_path / "out").exit_code == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "/* house style */" in page and "--accent" not in page  # the built-in stylesheet was replaced
    assert 'id="verdict"' in page  # the rest of the page is the built-in one
    missing = write_spec(text.replace("tpl", "nowhere"), name="missing.yaml")
    r = cli("validate", missing)
    assert r.exit_code == 2 and "report.templates: directory not found" in r.stderr


def test_compiled_templates_are_cached_and_never_stale(cli, write_spec, tmp_path, monkeypatch):
    # compiled templates are kept in the per-user temporary folder; an edited template
    # is compiled afresh, and a folder that cannot be used only costs the compilation
    import tempfile

    from sensreport.report.environment import environment

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    environment.cache_clear()
    tpl = tmp_path / "tpl"
    tpl.mkdir()
    (tpl / "_style.css.j2").write_text("/* first style */\n")
    spec = write_spec("model: {callable: f.py:poly}\ninputs: {points: {values: [[1.0, 2.0], [0.5, 1.0]]}}\n"
                      "methods: {jacobian: {}}\nreport: {templates: tpl}\n", f__py=FUNCTIONS_FOR_TEMPLATES)
    try:
        assert cli("run", spec, "--out", tmp_path / "a").exit_code == 0
        cache = tmp_path / "tmp" / f"_jinja2-cache-{os.getuid()}"
        assert len(list(cache.glob("*.cache"))) >= 2  # the page and its partials
        (tpl / "_style.css.j2").write_text("/* second style */\n")
        environment.cache_clear()  # a new process: only the cache on disk is left
        assert cli("run", spec, "--out", tmp_path / "b").exit_code == 0
        page = (tmp_path / "b" / "report.html").read_text()
        assert "/* second style */" in page and "/* first style */" not in page
        for f in cache.iterdir():
            f.unlink()
        cache.rmdir()
        cache.write_text("not a folder")  # Jinja refuses it as unsafe: no cache, the same page
        environment.cache_clear()
        assert cli("run", spec, "--out", tmp_path / "c").exit_code == 0
        assert "/* second style */" in (tmp_path / "c" / "report.html").read_text()
    finally:
        environment.cache_clear()


FUNCTIONS_FOR_TEMPLATES = "import tensorflow as tf\n\ndef poly(x):\n    return tf.stack([x[0] ** 2, x[0] * x[1]])\n"


def test_reproduce_command_is_relative_to_the_spec_folder(tmp_path):
    from sensreport.provenance import reproduce_command
    from sensreport.spec import load_spec

    spec = load_spec(EXAMPLES / "tabular" / "spec.yaml")
    cwd = EXAMPLES.parent
    got = reproduce_command(["sensreport", "run", "examples/tabular/spec.yaml", "--out", str(tmp_path / "r"),
                             "--baseline=examples/tabular/old/results.json", "--fail-on", "warn", "-q"], str(cwd), spec)
    out = str(Path(os.path.relpath(tmp_path / "r", EXAMPLES / "tabular")))
    assert got == ["sensreport", "run", "spec.yaml", "--out", out, "--baseline=old/results.json", "--fail-on", "warn", "-q"]
    assert reproduce_command(["/usr/local/bin/sensreport", "run", "examples/tabular/spec.yaml"], str(cwd), spec) == [
        "sensreport", "run", "spec.yaml"]
    assert reproduce_command(None, str(cwd), spec) == ["sensreport", "run", "spec.yaml"]


def test_points_sha256_is_that_of_the_points_as_read(cli, write_spec, functions_py, tmp_path):
    import hashlib

    np.save(tmp_path / "p.npy", np.array([[1.0, 2.0], [0.5, -1.0]], dtype=np.float32))
    spec = write_spec("""
        model: {callable: f.py:poly}
        inputs: {points: {npy: p.npy}}
        methods: {jacobian: {}}
        """, f__py=functions_py)
    assert cli("run", spec, "--out", tmp_path / "out").exit_code == 0
    prov, arrays = load(tmp_path / "out")
    prov = prov["provenance"]
    expected = hashlib.sha256(np.ascontiguousarray(np.load(tmp_path / "p.npy"), "<f8").tobytes()).hexdigest()
    assert prov["points_sha256"] == expected
    assert prov["points_sha256"] == hashlib.sha256(np.ascontiguousarray(arrays["points"], "<f8").tobytes()).hexdigest()
    files = {f["key"]: f for f in prov["files"]}
    assert files["inputs.points.npy"] == {"key": "inputs.points.npy", "path": "p.npy",
                                          "sha256": hashlib.sha256((tmp_path / "p.npy").read_bytes()).hexdigest()}
    assert files["model.callable"]["path"] == "f.py" and files["spec"]["path"] == "spec.yaml"


def test_a_unit_for_an_unknown_name_names_its_key(cli, write_spec, functions_py):
    spec = write_spec("""
        model: {callable: f.py:poly, output_names: [a, b], output_units: {a: m, c: s}}
        inputs: {names: [u, v], units: {u: kg}, points: {values: [[1.0, 2.0]]}}
        methods: {jacobian: {}}
        """, f__py=functions_py)
    r = cli("run", spec)
    assert r.exit_code == 2 and "model.output_units.c" in r.output and "'c' is not a name of the model's outputs" in r.output


def test_the_process_entry_point_keeps_exit_codes_and_files(tmp_path):
    # `python -m sensreport` and the console script go through cli.entry, which freezes the
    # garbage collector before the process ends: the files and the exit codes are as main() gives
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    ok = subprocess.run([sys.executable, "-m", "sensreport", "run", str(SEED / "scalar.yaml"), "--out",
                         str(tmp_path / "ok"), "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    results, arrays = load(tmp_path / "ok")
    assert arrays["jacobian"][0, 0, 0] == 6.0 and results["status"] == "ok"
    assert (tmp_path / "ok" / "report.html").stat().st_size > 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: t\nmodel: {callable: nowhere.py:f}\ninputs: {points: {values: [[1.0]]}}\nbogus: 1\n")
    failed = subprocess.run([sys.executable, "-m", "sensreport", "run", str(bad), "--out", str(tmp_path / "bad")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 2, failed.stderr
    assert "bogus" in failed.stderr and "Traceback" not in failed.stderr
