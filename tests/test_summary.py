"""`sensreport summary` and `sensreport schema --results`: what results.json says, shown
(never judged again), and the schema real runs are validated against."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from sensreport.results_schema import RESULTS_SCHEMA
from sensreport.summarize import md, summarize


@pytest.fixture(scope="module")
def run_doc(tmp_path_factory):
    """results.json of a small run whose two outputs rank their inputs differently."""
    from click.testing import CliRunner

    from sensreport.cli import main

    folder = tmp_path_factory.mktemp("summary")
    (folder / "functions.py").write_text(
        "import tensorflow as tf\n"
        "def f(x):\n"
        "    return tf.stack([3.0 * x[0] + 0.5 * x[1] + 0.1 * x[2], x[2] * 2.0 + 0.2 * x[0]])\n")
    (folder / "spec.yaml").write_text(
        'title: "Summary <b>test</b>"\n'
        'model: {callable: "functions.py:f", output_names: ["a|b", "<script>y</script>"]}\n'
        'inputs: {names: ["x_1", "*x2*", "x3"], points: {values: [[1.0, 2.0, 3.0], [0.5, 1.0, -1.0]]}}\n'
        "methods: {jacobian: {mode: reverse}, finite_difference: {scheme: central}}\n"
        "sensitivity: {measures: [mean_abs]}\n")
    r = CliRunner().invoke(main, ["run", str(folder / "spec.yaml"), "--out", str(folder / "out"), "-q"])
    assert r.exit_code == 0, r.output
    return folder / "out", json.loads((folder / "out" / "results.json").read_text())


def test_summary_text_and_markdown_from_a_run_folder(cli, run_doc):
    out, doc = run_doc
    text = cli("summary", out)
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0] == "Summary <b>test</b>: Checks passed (exit 0)"
    # mean_abs: output a|b is 3, 0.5, 0.1 -> x_1 first with 3/3.6 = 83%
    assert lines[3] == "  a|b: x_1 (83%), *x2* (14%), x3 (3%)"
    assert lines[4] == "  <script>y</script>: x3 (91%), x_1 (9%), *x2* (0%)"
    md_out = cli("summary", out / "results.json", "--markdown", "--top", "2").stdout
    assert md_out.startswith("### ✅ Summary &lt;b&gt;test&lt;/b&gt;: Checks passed\n")
    assert "| a\\|b | x\\_1 (83%) | \\*x2\\* (14%) |" in md_out  # a | in a name cannot break the table
    assert "&lt;script&gt;y&lt;/script&gt;" in md_out and "<script>" not in md_out and "<b>" not in md_out
    assert "| output | #1 | #2 |" in md_out and "Every check passed." in md_out
    assert f"Verdict `passed`, exit code 0; {doc['points']} points, 3 inputs, 2 outputs." in md_out


def test_summary_shows_the_verdict_it_is_given_and_lists_checks_that_did_not_pass(run_doc):
    _, doc = run_doc
    doc = copy.deepcopy(doc)
    # a results.json whose verdict says failed: the summary shows exactly that, it does not re-judge
    doc["verdict"].update(status="failed", headline="Check failed: fd_vs_ad", exit_code=1, failing=["fd_vs_ad"])
    doc["checks"][0].update(status="fail", message="3 of 6 entries | disagree")
    doc["checks"].append({"id": "dead_inputs", "status": "warn", "message": "x3 never moves", "severity": "warn"})
    doc["checks"].append({"id": "baseline", "status": "error", "message": "no baseline yet", "severity": "fail"})
    text = summarize(doc, markdown=True)
    assert text.startswith("### ❌ ") and "Check failed: fd\\_vs\\_ad" in text
    listed = [ln for ln in text.splitlines() if ln.startswith("- **")]
    first = doc["checks"][0]["id"]
    assert listed == [f"- **FAIL** `{first}`: 3 of 6 entries \\| disagree",  # worst first
                      "- **ERROR** `baseline`: no baseline yet", "- **WARN** `dead_inputs`: x3 never moves"]
    plain = summarize(doc)
    assert "Check failed: fd_vs_ad (exit 1)" in plain.splitlines()[0]
    assert "  WARN dead_inputs: x3 never moves" in plain and "  ERROR baseline: no baseline yet" in plain


def test_summary_of_many_outputs_says_how_many_it_left_out(run_doc):
    _, doc = run_doc
    doc = copy.deepcopy(doc)
    per = doc["rankings"]["mean_abs"]["per_output"]
    per.update({f"extra{i}": per["a|b"] for i in range(30)})
    text = summarize(doc, markdown=True, max_outputs=20)
    assert text.count("\n| ") == 1 + 20 and "… and 12 more outputs" in text  # the header row and 20 outputs


def test_summary_refuses_what_is_not_a_results_json(cli, tmp_path):
    (tmp_path / "results.json").write_text('{"hello": 1}')
    r = cli("summary", tmp_path)
    assert r.exit_code == 2 and "is not a sensreport results.json" in r.stderr
    r = cli("summary", tmp_path / "missing.json")
    assert r.exit_code == 2 and "not found" in r.stderr


def test_markdown_escaping():
    assert md("a_b*c") == "a\\_b\\*c"
    assert md("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert\\(1\\)&gt;"
    assert md("[link](http://x)") == "\\[link\\]\\(http://x\\)"
    assert md("two\nlines | pipe") == "two lines \\| pipe"


def test_results_json_of_real_runs_matches_its_schema(cli, run_doc):
    out, doc = run_doc
    printed = cli("schema", "--results")
    assert printed.exit_code == 0 and json.loads(printed.stdout) == RESULTS_SCHEMA
    jsonschema.Draft202012Validator.check_schema(RESULTS_SCHEMA)
    validator = jsonschema.Draft202012Validator(RESULTS_SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors
    # every key results.json has is described (a new key must be added to the schema)
    assert set(doc) <= set(RESULTS_SCHEMA["properties"]), set(doc) - set(RESULTS_SCHEMA["properties"])
    assert set(RESULTS_SCHEMA["required"]) <= set(doc)
    check_keys = set(RESULTS_SCHEMA["properties"]["checks"]["items"]["properties"])
    assert all(set(c) == check_keys for c in doc["checks"])
    assert set(doc["verdict"]) == set(RESULTS_SCHEMA["properties"]["verdict"]["properties"])
    # and the schema can fail: a verdict with an unknown status is refused
    bad = copy.deepcopy(doc)
    bad["verdict"]["status"] = "fine"
    assert list(validator.iter_errors(bad))
