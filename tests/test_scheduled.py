"""examples/scheduled: each scheduler file is valid and calls the real command line."""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, ROOT

SCHEDULED = EXAMPLES / "scheduled"
COMMAND = ["run", "examples/scheduled/nightly.yaml", "--quiet"]
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def cron_ok(expr: str) -> bool:
    fields = expr.split()
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    if len(fields) != 5 or not all(CRON_FIELD.match(f) for f in fields):
        return False
    return all(lo <= int(n) <= hi for f, (lo, hi) in zip(fields, limits) for n in re.findall(r"\d+", f.split("/")[0]))


def sensreport_args(command: str) -> list[str]:
    """The arguments after the `sensreport` executable in a shell command line."""
    words = shlex.split(command.split(">>")[0].split("&&")[-1])
    i = next(i for i, w in enumerate(words) if Path(w).name == "sensreport")
    return words[i + 1:]


def commands() -> dict[str, str]:
    cron = [ln for ln in (SCHEDULED / "crontab").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(cron) == 1 and cron_ok(" ".join(cron[0].split()[:5]))
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(SCHEDULED / "sensreport-nightly.service")
    assert service["Service"]["Type"] == "oneshot"
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(SCHEDULED / "sensreport-nightly.timer")
    assert re.fullmatch(r"\*-\*-\* \d\d:\d\d:\d\d", timer["Timer"]["OnCalendar"])
    assert timer["Install"]["WantedBy"] == "timers.target"
    tree = ast.parse((SCHEDULED / "airflow_dag.py").read_text())
    compile(tree, "airflow_dag.py", "exec")
    bash = next(kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "BashOperator" for kw in node.keywords if kw.arg == "bash_command")
    schedule = next(kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                    and getattr(node.func, "id", "") == "DAG" for kw in node.keywords if kw.arg == "schedule")
    assert cron_ok(schedule)
    workflow = yaml.safe_load((SCHEDULED / "github-workflow.yml").read_text())
    assert all(cron_ok(s["cron"]) for s in workflow[True]["schedule"])  # YAML 1.1 reads `on` as True
    steps = [s["run"] for s in workflow["jobs"]["audit"]["steps"] if "sensreport run" in s.get("run", "")]
    return {"crontab": " ".join(cron[0].split()[5:]), "systemd": service["Service"]["ExecStart"],
            "airflow": bash, "github": steps[0]}


def test_every_scheduler_file_calls_the_same_command():
    found = commands()
    assert set(found) == {"crontab", "systemd", "airflow", "github"}
    for name, command in found.items():
        assert sensreport_args(command) == COMMAND, name


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the examples the nightly spec uses, as the working directory."""
    for name in ("tabular", "scheduled"):
        shutil.copytree(EXAMPLES / name, tmp_path / "examples" / name, ignore=shutil.ignore_patterns("report*"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_scheduled_commands_run_night_after_night(cli, project):
    found = commands()
    reports = project / "examples" / "scheduled" / "reports"
    # first night (cron, as a real process): no baseline yet -> reported as an error check, exit 0
    exe = Path(sys.executable).parent / "sensreport"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "sensreport.cli"]
    env = dict(os.environ)
    if env.get("PYTHONPATH"):  # tests run from a source checkout: relative paths broke with chdir
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env["PYTHONPATH"]])
    first = subprocess.run(argv + sensreport_args(found["crontab"]), capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("sensreport: Checks passed (exit 0);") and first.stdout.count("\n") == 1  # --quiet: one line
    doc = json.loads((reports / "latest" / "results.json").read_text())
    assert next(c for c in doc["checks"] if c["id"] == "baseline")["status"] == "error"
    # the other schedulers' runs compare with the latest one: same model, no drift
    for name in ("systemd", "airflow", "github"):
        r = cli(*sensreport_args(found[name]))
        assert r.exit_code == 0, (name, r.output, r.stderr)
        doc = json.loads((reports / "latest" / "results.json").read_text())
        drift = next(c for c in doc["checks"] if c["id"] == "baseline.drift")
        assert drift["status"] == "pass" and drift["value"] == 0.0


def workflow_steps() -> list[dict]:
    return yaml.safe_load((SCHEDULED / "github-workflow.yml").read_text())["jobs"]["audit"]["steps"]


def step_index(steps: list[dict], text: str) -> int:
    (i,) = [i for i, s in enumerate(steps) if text in s.get("run", "")]
    return i


def test_workflow_caches_pip_and_installs_the_locked_versions():
    steps = workflow_steps()
    (setup,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["cache"] == "pip"
    lock = setup["with"]["cache-dependency-path"]
    assert (ROOT / lock).is_file(), lock  # the cache key is a file the repository has
    install = steps[step_index(steps, "--require-hashes")]["run"].split("\n")
    assert f"pip install --require-hashes -r {lock}" in install
    assert "pip install --no-deps ." in install  # sensreport itself adds no unlocked dependency
    pip_lines = [ln for s in steps for ln in s.get("run", "").splitlines() if "pip install" in ln]
    assert all("--require-hashes" in ln or "--no-deps" in ln for ln in pip_lines), pip_lines
    assert steps.index(setup) < step_index(steps, "--require-hashes") < step_index(steps, "sensreport run")


def test_workflow_writes_a_markdown_job_summary_even_when_the_audit_fails():
    steps = workflow_steps()
    i = step_index(steps, "sensreport summary")
    assert i > step_index(steps, "sensreport run")
    assert steps[i]["if"] == "always()"  # a failed audit (exit 1) is when the summary matters
    command = steps[i]["run"]
    assert command.endswith('>> "$GITHUB_STEP_SUMMARY"')
    args = shlex.split(command.split(">>")[0])
    assert args[:2] == ["sensreport", "summary"] and "--markdown" in args
    # it reads the run the audit step just wrote: the `latest` beside nightly.yaml's report.dir
    spec = yaml.safe_load((SCHEDULED / "nightly.yaml").read_text())
    assert Path(args[2]) == Path("examples/scheduled") / Path(spec["report"]["dir"]).parent / "latest"


def test_workflow_summary_command_writes_the_job_summary(cli, project, tmp_path):
    """The workflow's two commands as the runner runs them: the audit, then its summary
    appended to $GITHUB_STEP_SUMMARY (here a file), in Markdown."""
    steps = workflow_steps()
    r = cli(*sensreport_args(steps[step_index(steps, "sensreport run")]["run"]))
    assert r.exit_code == 0, r.output
    summary_file = tmp_path / "step-summary.md"
    summary_file.write_text("earlier step\n")
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary_file),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env["PYTHONPATH"]])
    proc = subprocess.run(["bash", "-c", steps[step_index(steps, "sensreport summary")]["run"]], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = summary_file.read_text()
    assert text.startswith("earlier step\n### ")  # appended, not replaced
    doc = json.loads((project / "examples/scheduled/reports/latest/results.json").read_text())
    assert doc["verdict"]["headline"] in text and f"Verdict `{doc['verdict']['status']}`" in text
    top = doc["rankings"][doc["measures"]["leading"]]["per_output"]["p_default"][0]
    row = next(ln for ln in text.splitlines() if ln.startswith("| p\\_default |"))
    assert row.split("|")[2].strip().startswith(top.replace("_", "\\_"))
    # the first night: the baseline check could not run; the summary lists it, as results.json says
    assert "**ERROR** `baseline`" in text


DAG_STUB = "from {dots}_stub import DAG as _DAG\n\n\nclass DAG(_DAG):\n    pass\n"
BASH_STUB = "from {dots}_stub import BashOperator as _Op\n\n\nclass BashOperator(_Op):\n    pass\n"
AIRFLOW_STUBS = {
    # Airflow 2: DAG from `airflow`, BashOperator from `airflow.operators.bash`; no Task SDK
    2: {"airflow/__init__.py": DAG_STUB.format(dots="."),
        "airflow/operators/__init__.py": "",
        "airflow/operators/bash.py": BASH_STUB.format(dots="..")},
    # Airflow 3: DAG from `airflow.sdk`, BashOperator from the standard provider; the
    # Airflow 2 paths are gone (`airflow.operators.bash` was removed, `airflow.DAG` is not used)
    3: {"airflow/__init__.py": "",
        "airflow/sdk/__init__.py": DAG_STUB.format(dots=".."),
        "airflow/providers/__init__.py": "",
        "airflow/providers/standard/__init__.py": "",
        "airflow/providers/standard/operators/__init__.py": "",
        "airflow/providers/standard/operators/bash.py": BASH_STUB.format(dots="....")},
}
AIRFLOW_STUB = '''
import inspect, json

CREATED = []

class DAG:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False

class BashOperator:
    def __init__(self, **kwargs):
        caller = inspect.stack()[1].frame.f_globals
        CREATED.append({"operator": kwargs, "dag_module": caller["DAG"].__module__,
                        "dag": caller["dag"].kwargs, "imported_from": caller["BashOperator"].__module__})
'''


@pytest.mark.parametrize("major", [2, 3])
def test_airflow_dag_imports_under_airflow_2_and_3(tmp_path, major):
    """The DAG file runs against each Airflow's import layout (stand-in packages with
    only that version's module paths) and builds the same task."""
    for rel, text in AIRFLOW_STUBS[major].items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "airflow" / "_stub.py").write_text(AIRFLOW_STUB)
    code = ("import json, runpy, airflow._stub as s; runpy.run_path(%r); print(json.dumps(s.CREATED, default=str))"
            % str(SCHEDULED / "airflow_dag.py"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (task,) = json.loads(proc.stdout)
    # the names the DAG file bound come from that version's own modules
    expected = {2: ("airflow", "airflow.operators.bash"), 3: ("airflow.sdk", "airflow.providers.standard.operators.bash")}
    assert (task["dag_module"], task["imported_from"]) == expected[major]
    assert task["dag"]["dag_id"] == "sensreport_nightly" and cron_ok(task["dag"]["schedule"])
    assert sensreport_args(task["operator"]["bash_command"]) == COMMAND
