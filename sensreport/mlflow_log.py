"""Log a run to MLflow: ``sensreport run --mlflow`` and ``report.mlflow``.

One MLflow run per sensreport run, in the tracking store MLflow itself would use
(``MLFLOW_TRACKING_URI``, else MLflow's default), through ``MlflowClient`` only, so no
process-wide MLflow state (active experiment, active run) is changed. It holds:

* artifacts ``report.html``, ``results.json``, ``spec.yaml`` (the spec's text),
  ``verdict.json`` and ``metric_names.json``;
* metrics: the leading measure (results.json ``measures.leading``) per output and
  input, ``<measure>/<output>/<input>``, and the overall shares,
  ``overall/<measure>/<input>``. Names are made valid MLflow keys (characters other
  than letters, digits, ``_ - . /`` and spaces become ``_``; duplicates get ``~2``, ...);
  ``metric_names.json`` maps every key back to its output and input. Past
  :data:`MAX_METRICS` values, each output keeps its top-ranked inputs and the mapping
  says how many were left out;
* tags: the verdict (``sensreport.verdict``, ``sensreport.exit_code``,
  ``sensreport.headline``), each check's status (``check.<id>``), the spec's and the
  model's sha256, and the spec's ``report.mlflow.tags``; params: sizes, model kind, methods.

When an MLflow run is active in this process (``mlflow.start_run()`` in a notebook),
the new run is its child (``mlflow.parentRunId``). The verdict is only displayed: it
was decided by :mod:`sensreport.checks`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .analysis.stats import ranking
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from .results import RunResult

#: Metric values logged at most (outputs x inputs, plus the overall ones).
MAX_METRICS = 10_000
#: MLflow's limits: key length, tag value length, entries per log_batch call.
MAX_KEY = 250
MAX_TAG_VALUE = 5000
BATCH = 1000
INSTALL_HINT = "logging to MLflow needs mlflow-skinny (or mlflow): pip install 'sensreport[mlflow]'"

_BAD = re.compile(r"[^A-Za-z0-9_\-. ]")


def require_mlflow() -> None:
    """Refuse (before any work) when MLflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise InputError("report.mlflow", INSTALL_HINT)


def key_part(name: str) -> str:
    """One ``/``-separated part of an MLflow key: allowed characters only, never ``.`` or ``..``."""
    part = _BAD.sub("_", str(name)).strip() or "_"
    return "_" + part if set(part) == {"."} else part


class _Keys:
    """Valid, unique MLflow keys for (output, input) pairs, and the mapping back."""

    def __init__(self) -> None:
        self.mapping: dict[str, dict[str, str | None]] = {}

    def add(self, parts: list[str], output: str | None, input_: str) -> str:
        key = "/".join(key_part(p) for p in parts)
        if len(key) > MAX_KEY:
            key = key[: MAX_KEY - 12].rstrip("/")
        base, n = key, 1
        while key in self.mapping:
            n += 1
            key = f"{base}~{n}"
        self.mapping[key] = {"output": output, "input": input_}
        return key


def metric_values(result: RunResult, limit: int = MAX_METRICS) -> tuple[dict[str, float], dict[str, Any]]:
    """The metrics to log (key -> value) and the mapping document (``metric_names.json``)."""
    m = result.leading_measure
    keys = _Keys()
    values: dict[str, float] = {}
    if m is None or m not in result.measures:
        return values, {"measure": None, "metrics": {}, "left_out": 0}
    per_output = np.asarray(result.measures[m], dtype=np.float64)
    k, n = per_output.shape
    keep = n if (k + 1) * n <= limit else max(1, limit // (k + 1))
    left_out = (k + 1) * (n - keep)

    def put(parts: list[str], output: str | None, j: int, v: float) -> None:
        key = keys.add(parts, output, result.input_names[j])
        if np.isfinite(v):  # non-finite values are in the mapping, not logged
            values[key] = float(v)

    for row, o in enumerate(result.measure_outputs):
        name = result.output_names[o]
        for j in ranking(per_output[row])[:keep]:
            put([m, name, result.input_names[j]], name, j, per_output[row, j])
    overall = np.asarray(result.overall[m], dtype=np.float64)
    for j in ranking(overall)[:keep]:
        put(["overall", m, result.input_names[j]], None, j, overall[j])
    doc = {"measure": m, "overall": "overall/<measure>/<input>: the overall share (averaged over outputs)",
           "metrics": keys.mapping, "left_out": left_out}
    if left_out:
        doc["note"] = (f"{left_out:,} values left out: each output keeps its {keep} top-ranked inputs "
                       f"(at most {limit:,} metrics); results.json has every value")
    return values, doc


def _tag(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 1] + "…"


def _experiment_id(client, name: str | None, active) -> str:
    if name is None:
        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not name:
            return active.info.experiment_id if active is not None else "0"  # MLflow's "Default"
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def log_run(result: RunResult, *, experiment: str | None = None, run_name: str | None = None,
            tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Log ``result`` as one new MLflow run; return its ``run_id``, ``experiment_id``,
    ``tracking_uri``, ``artifact_uri`` and the number of ``metrics``.

    The report and results.json are the files ``run()`` wrote (``result.out_dir``); a
    result that was not written has them rendered for MLflow alone (arrays.npz is not
    logged). Raises :class:`~sensreport.errors.InputError` (key ``report.mlflow``)
    when MLflow is missing or the tracking store refuses the run.
    """
    try:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag
    except ImportError:
        raise InputError("report.mlflow", INSTALL_HINT) from None

    uri = mlflow.get_tracking_uri()
    run_id = None
    client = None
    try:
        client = MlflowClient()
        active = mlflow.active_run()
        exp_id = _experiment_id(client, experiment, active)
        all_tags = {"sensreport.title": _tag(result.title)}
        if active is not None and active.info.experiment_id == exp_id:
            all_tags["mlflow.parentRunId"] = active.info.run_id
        run = client.create_run(exp_id, run_name=run_name or result.title, tags=all_tags)
        run_id = run.info.run_id
        values, mapping = metric_values(result)
        now = int(time.time() * 1000)
        run_tags = {**_verdict_tags(result), **{str(k): str(v) for k, v in (tags or {}).items()}}
        params = {"points": len(result.points), "inputs": len(result.input_names),
                  "outputs": len(result.output_names), "model_kind": result.model.get("kind"),
                  "leading_measure": result.leading_measure, "methods": ",".join(result.methods)}
        client.log_batch(run_id, params=[Param(k, _tag(v)) for k, v in params.items()],
                         tags=[RunTag(k, _tag(v)) for k, v in run_tags.items()])
        items = list(values.items())
        for i in range(0, len(items), BATCH):
            client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in items[i:i + BATCH]])
        _log_files(client, run_id, result)
        client.log_text(run_id, result.spec_text or "", "spec.yaml")
        client.log_text(run_id, json.dumps(result.verdict.to_dict() if result.verdict else None, indent=1),
                        "verdict.json")
        client.log_text(run_id, json.dumps(mapping, indent=1, allow_nan=False), "metric_names.json")
        client.set_terminated(run_id, "FINISHED")
        return {"run_id": run_id, "experiment_id": exp_id, "tracking_uri": str(uri),
                "artifact_uri": client.get_run(run_id).info.artifact_uri, "metrics": len(values)}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the store's errors, reported with its URI
        if run_id is not None and client is not None:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # noqa: BLE001 - the store is failing already
                pass
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        what = (lines[0] if lines else type(exc).__name__)[:400]
        written = f"the report was written to {result.out_dir}, but " if result.out_dir else ""
        hint = ""
        if str(uri).startswith("sqlite:") and importlib.util.find_spec("sqlalchemy") is None:
            hint = (" (a sqlite:// store, MLflow's default, needs the full mlflow package: pip install mlflow; "
                    "or set MLFLOW_TRACKING_URI to a tracking server, http://host:5000)")
        raise InputError("report.mlflow", f"{written}logging to MLflow at {uri} failed{hint}: "
                                          f"{type(exc).__name__}: {what}") from None


def _verdict_tags(result: RunResult) -> dict[str, str]:
    tags = {"sensreport.status": result.status,
            "sensreport.spec_sha256": result.provenance.get("spec_sha256") or "",
            "sensreport.model_sha256": result.provenance.get("model_sha256") or ""}
    if result.verdict is not None:
        tags.update({"sensreport.verdict": result.verdict.status, "sensreport.headline": result.verdict.headline,
                     "sensreport.exit_code": str(result.verdict.exit_code)})
    for c in result.checks:
        tags[f"check.{key_part(c.id)}"] = c.status
    return tags


def _log_files(client, run_id: str, result: RunResult) -> None:
    if result.out_dir is not None and (Path(result.out_dir) / "results.json").is_file():
        for name in ("results.json", "report.html"):
            client.log_artifact(run_id, str(Path(result.out_dir) / name))
        return
    from .report import render_report

    options = result.report_options
    html = render_report(result, plotlyjs=options.get("plotlyjs", "inline"), templates=options.get("templates"))
    with tempfile.TemporaryDirectory(prefix="sensreport-mlflow-") as tmp:
        for name, text in (("results.json", json.dumps(result.to_dict(), indent=1, allow_nan=False)),
                           ("report.html", html)):
            (Path(tmp) / name).write_text(text, encoding="utf-8")
            client.log_artifact(run_id, str(Path(tmp) / name))
