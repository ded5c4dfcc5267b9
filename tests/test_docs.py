"""The docs are true: the tutorial's commands run as written, and docs/api.md is what
scripts/gen_api.py generates from the docstrings today."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(text: str) -> list[tuple[str, dict[str, str], str]]:
    """The fenced blocks in order: (language, attributes such as file=..., body)."""
    out = []
    for lang, info, body in FENCE.findall(text):
        attrs = dict(a.split("=", 1) for a in info.split() if "=" in a)
        out.append((lang, attrs, body))
    return out


def test_tutorial_runs_as_written(tmp_path, monkeypatch):
    """Every block of docs/tutorial.md, in order, in an empty folder: files are written,
    shell lines run (each must exit 0), Python blocks run in one interpreter. Two things
    differ from a reader's machine, and only those: `pip install` lines are not run (the
    test environment has the packages), and the MLflow tracking server is a local store
    in the test's folder."""
    exe = Path(sys.executable).parent
    env = dict(os.environ, PATH=os.pathsep.join([str(exe), os.environ.get("PATH", "")]))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if env.get("PYTHONPATH"):  # a source checkout: the checkout's sensreport
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env["PYTHONPATH"]])
    has_mlflow = importlib.util.find_spec("mlflow") is not None
    ran, skipped, python = [], [], []
    started = time.perf_counter()
    for lang, attrs, body in blocks(TUTORIAL.read_text()):
        if "file" in attrs:
            (tmp_path / attrs["file"]).write_text(body)
        elif lang == "sh":
            for line in (ln.split(" #")[0].strip() for ln in body.splitlines()):
                if not line or line.startswith("#"):
                    continue
                if line.startswith("pip install"):
                    skipped.append(line)
                    continue
                if line.startswith("export MLFLOW_TRACKING_URI="):
                    env["MLFLOW_TRACKING_URI"] = (tmp_path / "mlruns").as_uri()  # the "server": a local store
                    env["MLFLOW_ALLOW_FILE_STORE"] = "true"
                    continue
                if "--mlflow" in shlex.split(line) and not has_mlflow:
                    skipped.append(line + "  (mlflow-skinny is not installed)")
                    continue
                proc = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                      timeout=600)
                assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
                ran.append((line, proc))
        elif lang == "python":
            python.append(body)
    proc = subprocess.run([sys.executable, "-c", "\n".join(python)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    elapsed = time.perf_counter() - started

    commands = [line for line, _ in ran]
    assert commands[:4] == ["python train.py", "sensreport validate spec.yaml", "sensreport run spec.yaml",
                            "sensreport summary report --markdown > summary.md"]
    assert skipped[0].startswith("pip install 'sensreport[cpu,pandas]'")
    assert elapsed < 600  # "ten minutes", on this 2-core machine with no GPU
    # what the text says happened
    run_line = ran[2][1].stdout
    assert re.match(r"sensreport: Checks passed \(exit 0\); jacobian ok, finite_difference ok; checks: \d+ pass; "
                    r"wrote /\S+/report/report.html in [\d.]+ s\n$", run_line), run_line
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["arrays.npz", "report.html", "results.json"]
    doc = json.loads((tmp_path / "report" / "results.json").read_text())
    assert doc["inputs"]["names"] == ["age", "income_k", "debt_ratio", "late_payments"]
    assert doc["measures"]["leading"] == "std_scaled"
    summary = (tmp_path / "summary.md").read_text()
    assert "Checks passed" in summary and "| p\\_default |" in summary
    if has_mlflow:
        from mlflow import MlflowClient

        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        (run,) = MlflowClient((tmp_path / "mlruns").as_uri()).search_runs(["0"])
        assert run.data.tags["sensreport.verdict"] == "passed"
    # the notebook block: its print and its saved report
    assert "std_scaled" in proc.stdout and "debt_ratio" in proc.stdout
    assert (tmp_path / "notebook-report" / "report.html").is_file()
    nb = json.loads((tmp_path / "notebook-report" / "results.json").read_text())
    assert nb["title"] == "Credit model, from the notebook" and nb["inputs"]["names"] == doc["inputs"]["names"]


def test_tutorial_spec_keys_and_commands_exist():
    """The tutorial names only commands and options the CLI has."""
    from click.testing import CliRunner

    from sensreport.cli import main

    text = TUTORIAL.read_text()
    for command in set(re.findall(r"`sensreport (\w+)", text)):
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0, command
    for option in set(re.findall(r"(--[a-z][a-z-]+)", text)):
        helps = [CliRunner().invoke(main, [c, "--help"]).output for c in ("run", "summary", "schema", "validate")]
        assert any(option in h for h in helps), option


def test_api_reference_is_generated_from_the_docstrings():
    """docs/api.md is exactly what scripts/gen_api.py writes now: a changed docstring or
    signature without regenerating fails here."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api.py"), "--check"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_api_reference_covers_the_public_api():
    text = (ROOT / "docs" / "api.md").read_text()
    import sensreport

    for name in sensreport.__all__:
        assert f"`sensreport.{name}" in text, name
    assert "`sensreport.runner.compute(" in text  # the stages without writing, where it lives
    for method in ("to_pandas", "save", "_repr_html_", "rankings", "to_dict"):
        assert f"RunResult.{method}(" in text, method
    for extra in ("sensreport.mlflow_log.log_run", "sensreport.summarize.summarize",
                  "sensreport.results_schema.results_schema"):
        assert f"`{extra}(" in text, extra


@pytest.mark.parametrize("doc", ["README.md", "docs/tutorial.md"])
def test_docs_link_to_files_that_exist(doc):
    text = (ROOT / doc).read_text()
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (ROOT / doc).parent.joinpath(target).exists(), target
