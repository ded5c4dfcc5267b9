"""`sensreport run --mlflow` and report.mlflow, against a real local MLflow store
(MLFLOW_TRACKING_URI pointing at a temporary folder)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import sensreport
from sensreport import mlflow_log

from conftest import EXAMPLES

mlflow = pytest.importorskip("mlflow", reason="mlflow-skinny is in the test extra (sensreport[mlflow]); "
                                              "not installed here")
from mlflow import MlflowClient  # noqa: E402


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A local file store in a temporary folder as the tracking URI (MLflow 3 wants the
    opt-in for file stores), and no active experiment from the environment."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    return uri


def artifacts(client, run_id: str) -> dict[str, str]:
    path = client.download_artifacts(run_id, "")
    from pathlib import Path

    return {p.name: p.read_text(encoding="utf-8") for p in Path(path).iterdir() if p.is_file()}


def test_cli_mlflow_logs_report_results_spec_verdict_metrics_and_checks(cli, tmp_path, store):
    spec = tmp_path / "spec.yaml"
    shutil.copy(EXAMPLES / "tabular" / "spec.yaml", spec)
    for name in ("credit.keras", "points.csv"):
        shutil.copy(EXAMPLES / "tabular" / name, tmp_path / name)
    r = cli("run", spec, "--out", tmp_path / "out", "--mlflow")
    assert r.exit_code == 0, r.output + r.stderr
    assert "sensreport: logged to MLflow run " in r.stderr and store in r.stderr

    client = MlflowClient(store)
    (run,) = client.search_runs(["0"])  # MLflow's Default experiment: none was named
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == doc["title"]
    tags = run.data.tags
    assert tags["sensreport.verdict"] == doc["verdict"]["status"] == "passed"
    assert tags["sensreport.exit_code"] == "0" and tags["sensreport.headline"] == doc["verdict"]["headline"]
    assert {k[len("check."):]: v for k, v in tags.items() if k.startswith("check.")} == \
        {c["id"]: c["status"] for c in doc["checks"]}
    assert tags["sensreport.spec_sha256"] == doc["provenance"]["spec_sha256"]

    # metrics: results.json's leading measure, per output and input, and overall
    leading = doc["measures"]["leading"]
    values = doc["measures"]["values"][leading]
    expected = {f"{leading}/{o}/{i}": v for o, row in values["per_output"].items() for i, v in row.items()}
    expected.update({f"overall/{leading}/{i}": v for i, v in values["overall"].items()})
    assert run.data.metrics == pytest.approx(expected, rel=1e-12)

    files = artifacts(client, run.info.run_id)
    assert set(files) == {"report.html", "results.json", "spec.yaml", "verdict.json", "metric_names.json"}
    assert files["results.json"] == (tmp_path / "out" / "results.json").read_text()
    assert files["report.html"] == (tmp_path / "out" / "report.html").read_text()
    assert files["spec.yaml"] == spec.read_text()
    assert json.loads(files["verdict.json"]) == doc["verdict"]
    mapping = json.loads(files["metric_names.json"])
    assert mapping["measure"] == leading and mapping["left_out"] == 0
    assert mapping["metrics"][f"{leading}/p_default/debt_ratio"] == {"output": "p_default", "input": "debt_ratio"}
    assert mapping["metrics"][f"overall/{leading}/age"] == {"output": None, "input": "age"}


def test_report_mlflow_in_the_spec_names_experiment_run_and_tags(cli, write_spec, tmp_path, store):
    spec = write_spec("""
        title: Drift audit
        model: {callable: "functions.py:poly", output_names: ["y <1>", "y/2"]}
        inputs:
          names: ["x[0]", "a b/../c"]
          points: {values: [[1.0, 2.0], [0.5, -1.0], [2.0, 3.0]]}
        methods: {jacobian: {mode: forward}, finite_difference: {scheme: central}}
        report:
          mlflow:
            experiment: credit audits
            run_name: nightly
            tags: {team: risk, model_version: "7"}
        """, functions__py="""
        import tensorflow as tf
        def poly(x):
            return tf.stack([x[0] ** 3 - 2 * x[0] * x[1], x[1] ** 2])
        """)
    r = cli("run", spec, "--out", tmp_path / "out", "-q")  # no --mlflow: the spec asks for it
    assert r.exit_code == 0, r.output + r.stderr
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("credit audits")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "nightly"
    assert run.data.tags["team"] == "risk" and run.data.tags["model_version"] == "7"
    mapping = json.loads(artifacts(client, run.info.run_id)["metric_names.json"])["metrics"]
    # user names made valid MLflow keys (no <, >, [, ], no path tricks), every one mapped back
    assert set(run.data.metrics) == set(mapping)
    for key, names in mapping.items():
        assert mlflow_log.key_part(key.split("/")[0]) == key.split("/")[0]
        assert all(part not in ("", ".", "..") for part in key.split("/"))
    assert mapping["mean_abs/y _1_/x_0_"] == {"output": "y <1>", "input": "x[0]"}
    assert mapping["mean_abs/y_2/a b_.._c"] == {"output": "y/2", "input": "a b/../c"}
    # the exact derivatives of the cubic: mean |d y0 / d x0| = mean |3 x0^2 - 2 x1|
    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 3.0]])
    assert run.data.metrics["mean_abs/y _1_/x_0_"] == pytest.approx(np.mean(np.abs(3 * x[:, 0] ** 2 - 2 * x[:, 1])))


def test_python_api_logs_a_result_that_was_not_written(tmp_path, store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = {"model": {"callable": lambda x: x * 3.0},
            "inputs": {"points": {"values": [1.0, 2.0]}}, "methods": {"jacobian": None}}
    with mlflow.start_run(run_name="notebook") as parent:
        result = sensreport.run(spec, write=False, mlflow={"experiment": "nb"})
        assert mlflow.active_run().info.run_id == parent.info.run_id  # the notebook's own run is untouched
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "mlruns"])  # nothing written besides the store
    client = MlflowClient(store)
    run = client.get_run(result.mlflow["run_id"])
    assert run.info.experiment_id == client.get_experiment_by_name("nb").experiment_id
    files = artifacts(client, run.info.run_id)
    assert json.loads(files["results.json"])["verdict"] == result.verdict.to_dict()
    assert files["report.html"].lstrip().lower().startswith("<!doctype html>")
    assert run.data.metrics["mean_abs/y/x"] == pytest.approx(3.0)
    # the same run, asked for with mlflow=False: nothing new is logged
    sensreport.run(spec, write=False, mlflow=False)
    assert len(client.search_runs([run.info.experiment_id])) == 1
    # no experiment named, inside the notebook's run: a child run of it, in its experiment
    with mlflow.start_run() as parent:
        child = sensreport.run(spec, write=False, mlflow=True).mlflow
    run = client.get_run(child["run_id"])
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert run.info.experiment_id == parent.info.experiment_id


def test_a_store_that_refuses_is_an_error_naming_it_after_the_report_is_written(cli, write_spec, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unknownscheme://nowhere")
    spec = write_spec("""
        model: {callable: "functions.py:f"}
        inputs: {points: {values: [1.0]}}
        methods: {jacobian: }
        """, functions__py="def f(x):\n    return x * 2.0\n")
    r = cli("run", spec, "--out", tmp_path / "out", "--mlflow")
    assert r.exit_code == 2
    assert "report.mlflow: the report was written to" in r.stderr and "unknownscheme://nowhere" in r.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_metric_keys_are_valid_unique_and_capped():
    keys = mlflow_log._Keys()
    a = keys.add(["mean_abs", "y[0]", "x"], "y[0]", "x")
    b = keys.add(["mean_abs", "y(0)", "x"], "y(0)", "x")  # the same key once made valid
    assert (a, b) == ("mean_abs/y_0_/x", "mean_abs/y_0_/x~2")
    assert mlflow_log.key_part("..") == "_.." and mlflow_log.key_part("") == "_"
    assert len(keys.add(["m", "o" * 400, "i"], "o", "i")) <= mlflow_log.MAX_KEY


def test_more_values_than_the_cap_keep_each_outputs_top_inputs():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    measures = rng.random((4, 50))
    result = SimpleNamespace(leading_measure="mean_abs", measures={"mean_abs": measures},
                             overall={"mean_abs": measures.mean(0)}, measure_outputs=[0, 1, 2, 3],
                             output_names=[f"o{i}" for i in range(4)], input_names=[f"i{j}" for j in range(50)])
    values, doc = mlflow_log.metric_values(result, limit=100)
    assert len(values) == 5 * 20 and doc["left_out"] == 5 * 30 and "left out" in doc["note"]
    top = [f"i{j}" for j in np.argsort(-measures[2])[:20]]
    assert sorted(k.split("/")[2] for k in values if k.startswith("mean_abs/o2/")) == sorted(top)


def test_spec_schema_documents_report_mlflow():
    from sensreport.spec import SCHEMA

    node = SCHEMA["properties"]["report"]["properties"]["mlflow"]
    assert node["properties"].keys() == {"experiment", "run_name", "tags"}
    with pytest.raises(sensreport.SpecError, match="report.mlflow.tags.n: expected string"):
        sensreport.parse_spec({"model": {"callable": "m:f"}, "inputs": {"points": {"values": [1.0]}},
                               "methods": {"jacobian": None}, "report": {"mlflow": {"tags": {"n": 3}}}})
    with pytest.raises(sensreport.SpecError, match="report.mlflow: expected boolean or object, got \"yes\""):
        sensreport.parse_spec({"model": {"callable": "m:f"}, "inputs": {"points": {"values": [1.0]}},
                               "methods": {"jacobian": None}, "report": {"mlflow": "yes"}})
