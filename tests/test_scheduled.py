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
