"""Faults and bad input (issue 15): every case exits 2 or 3 with a message naming the key
(and line), never 4, never a traceback, never a hang; a failed run writes nothing and
leaves no debris; temporary files of killed runs are removed by the next run."""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

FUNCTIONS = '''
import time
import tensorflow as tf

def poly(x):
    return tf.stack([x[0] ** 3 - 2 * x[0] * x[1], x[1] ** 2])

def nothing(x):
    x = x * 2          # forgot to return

def forever(x):
    while True:        # never returns (traced in Python: an endless loop)
        time.sleep(0.05)
'''
GOOD = "model: {callable: f.py:poly}\ninputs: {points: {values: [[1.0, 2.0], [0.5, -1.0]]}}\nmethods: {jacobian: {}}\n"
FILES = ("report.html", "results.json", "arrays.npz")


def temp_entries(folder: Path) -> list[Path]:
    from sensreport.files import is_temp

    return [p for p in Path(folder).rglob("*") if is_temp(p.name)]


def assert_clean_failure(r, code: int, message: str):
    out = r.stdout + r.stderr
    assert r.exit_code == code, out
    assert message in r.stderr, r.stderr
    assert "Traceback" not in out and "internal error" not in out
    assert [line for line in r.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture
def good_run(cli, write_spec, tmp_path):
    """A previous good report in tmp_path/out, and its files' bytes."""
    spec = write_spec(GOOD, name="good.yaml", f__py=FUNCTIONS)
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out, "--quiet").exit_code == 0
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


# ------------------------------------------------------------------ hangs
def test_yaml_alias_bomb_is_refused_at_once(cli, write_spec):
    lines = ["l0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]  # 9**10 values
    spec = write_spec("\n".join(lines) + "\nmodel: {callable: f.py:poly, output_names: *a9}\n" + GOOD.split("\n", 1)[1])
    assert len(spec.read_bytes()) < 1000
    t0 = time.perf_counter()
    r = cli("validate", spec)
    assert time.perf_counter() - t0 < 2
    assert_clean_failure(r, 2, "its aliases (*name) expand the spec to")
    assert "spec.yaml:6:" in r.stderr  # l5, the first list that expands past 100,000 values (9**6)


def test_an_alias_inside_itself_and_deep_nesting_are_spec_errors(cli, write_spec, tmp_path):
    cyclic = write_spec(GOOD.replace("[[1.0, 2.0], [0.5, -1.0]]", "&a [1.0, *a]"), name="cyclic.yaml")
    assert_clean_failure(cli("validate", cyclic), 2, "an alias refers to the mapping or list that contains it")
    for depth in (45, 3000):  # past MAX_DEPTH, and past Python's recursion limit in the YAML composer
        deep = write_spec(GOOD.replace("[[1.0, 2.0], [0.5, -1.0]]", "[" * depth + "1" + "]" * depth), name="deep.yaml")
        for command in ("validate", "run"):
            assert_clean_failure(cli(command, deep, *(["--out", tmp_path / "o"] if command == "run" else [])), 2,
                                 "deep.yaml:2: " + ("inputs.points.values" if depth == 45 else "nested more than 40 levels deep"))
    assert not (tmp_path / "o").exists()


def test_cli_timeout_kills_a_model_that_never_returns(cli, write_spec, good_run):
    out, before = good_run
    spec = write_spec(GOOD.replace("f.py:poly", "f.py:forever"), name="forever.yaml")
    t0 = time.perf_counter()
    r = cli("run", spec, "--out", out, "--timeout", "10")
    elapsed = time.perf_counter() - t0
    assert_clean_failure(r, 3, "--timeout: the run did not finish within 10 s and was stopped while evaluating "
                               "the model at the points. Nothing was written")
    assert 10 <= elapsed < 40
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous report, untouched
    assert not temp_entries(out)


def test_execution_timeout_kills_a_callable_file_that_sleeps_on_import(cli, write_spec, tmp_path):
    (tmp_path / "sleepy.py").write_text("import time\ntime.sleep(3600)\n\ndef f(x):\n    return x\n")
    spec = write_spec(GOOD.replace("f.py:poly", "sleepy.py:f") + "execution: {timeout: 10}\n", f__py=FUNCTIONS)
    t0 = time.perf_counter()
    r = cli("run", spec, "--out", tmp_path / "out")
    assert_clean_failure(r, 3, "spec.yaml:4: execution.timeout: the run did not finish within 10 s and was "
                               "stopped while loading the model.")
    assert time.perf_counter() - t0 < 40
    assert not (tmp_path / "out").exists()


def test_cli_timeout_leaves_a_run_that_finishes_alone(cli, write_spec, tmp_path):
    spec = write_spec(GOOD + "execution: {timeout: 600}\n", f__py=FUNCTIONS)
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "sensreport: Checks passed (exit 0)" in r.stdout  # the child's summary, relayed
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    # what the parent was given, not the child's own arguments
    assert doc["provenance"]["command"] == ["sensreport", "run", str(spec), "--out", str(tmp_path / "out")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)
    # --timeout 0 turns the spec's limit off: the run stays in this process
    assert cli("run", spec, "--out", tmp_path / "again", "--timeout", "0", "--quiet").exit_code == 0


def test_python_api_timeout_interrupts_python_code_and_names_the_stage(tmp_path, monkeypatch):
    import sensreport
    from sensreport.errors import ComputeError

    (tmp_path / "f.py").write_text(FUNCTIONS)
    (tmp_path / "sleepy.py").write_text("import time\ntime.sleep(3600)\n\ndef f(x):\n    return x\n")
    monkeypatch.chdir(tmp_path)
    spec = {"model": {"callable": "f.py:forever"}, "inputs": {"points": {"values": [[1.0, 2.0]]}},
            "methods": {"jacobian": None}, "report": {"dir": "out"}}
    for fn, where in (("f.py:forever", "evaluating the model at the points"), ("sleepy.py:f", "loading the model")):
        spec["model"]["callable"] = fn
        t0 = time.perf_counter()
        with pytest.raises(ComputeError) as info:
            sensreport.run(spec, timeout=1.5)
        assert 1.5 <= time.perf_counter() - t0 < 10
        assert info.value.key == "execution.timeout" and f"stopped while {where}" in str(info.value)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL  # the alarm is put back
    assert not (tmp_path / "out").exists()


def test_deadline_refuses_a_commit_past_the_limit():
    from sensreport import deadline
    from sensreport.errors import ComputeError

    with deadline.Deadline(0.05, key="--timeout") as d:
        d.stage("writing the report")
        with deadline.shield():  # no alarm in here: the time is checked at the commit
            time.sleep(0.1)
        with pytest.raises(ComputeError, match="stopped while writing the report"):
            with deadline.committing():
                raise AssertionError("renamed files past the limit")
    with deadline.Deadline(30) as d:
        with deadline.committing():
            pass
        assert d.committed  # begun before the limit: the run finishes


# ------------------------------------------------- exit 4 where 2 or 3 is due
@pytest.mark.parametrize("n", ["100000000000000000000", "1000000000000"])
def test_huge_sample_sizes_are_input_errors_before_any_work(cli, write_spec, tmp_path, n):
    spec = write_spec(f"model: {{callable: f.py:poly}}\ninputs:\n  names: [a, b]\n  points:\n    sample:\n      n: {n}\n"
                      "      distributions: {default: {uniform: [0, 1]}}\nmethods: {jacobian: {}}\n", f__py=FUNCTIONS)
    for command in ("validate", "run"):
        r = cli(command, spec, *(["--out", tmp_path / "out"] if command == "run" else []))
        assert_clean_failure(r, 2, f"spec.yaml:6: inputs.points.sample.n: {int(n):,} points of 2 values take")
        assert "more than the whole memory budget" in r.stderr
    budget = write_spec(spec.read_text() + "execution: {memory_budget: 1GiB}\n", name="budget.yaml")
    assert_clean_failure(cli("validate", budget), 2, "inputs.points.sample.n: 1")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dist, message", [
    ("uniform: [-.inf, .inf]", "uniform[0]: expected a finite number, got -inf"),
    ("normal: [0, .inf]", "normal[1]: expected a finite number, got inf"),
    ("normal: [.nan, 1]", "normal[0]: expected a finite number, got nan"),
    ("uniform: [-1.0e+308, 1.0e+308]", "uniform: [-1e+308, 1e+308] overflows"),
])
def test_infinite_distribution_bounds_are_spec_errors(cli, write_spec, dist, message):
    spec = write_spec("model: {callable: f.py:poly}\ninputs:\n  names: [a, b]\n  points:\n    sample:\n      n: 3\n"
                      f"      distributions: {{default: {{{dist}}}}}\nmethods: {{jacobian: {{}}}}\n", f__py=FUNCTIONS)
    assert_clean_failure(cli("validate", spec), 2, f"spec.yaml:7: inputs.points.sample.distributions.default.{message}")


@pytest.mark.parametrize("step", [".nan", ".inf", "-.inf"])
def test_non_finite_fd_step_is_a_spec_error(cli, write_spec, tmp_path, step):
    spec = write_spec(GOOD.replace("jacobian: {}", f"finite_difference: {{step: {step}}}"), f__py=FUNCTIONS)
    for command in ("validate", "run"):
        r = cli(command, spec, *(["--out", tmp_path / "out"] if command == "run" else []))
        assert r.exit_code == 2 and "spec.yaml:3: methods.finite_difference.step:" in r.stderr, r.output
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder_is_exit_2_and_keeps_the_previous_report(cli, write_spec, good_run, monkeypatch):
    import sensreport.files

    out, before = good_run
    spec = write_spec(GOOD, name="again.yaml")

    def refuse(*args, **kwargs):  # tests run as root: a chmod'ed folder would still be writable
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sensreport.files.tempfile, "mkstemp", refuse)
    r = cli("run", spec, "--out", out)
    assert_clean_failure(r, 2, f"--out: cannot write {out / 'arrays.npz'}: Permission denied. Nothing was written")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_full_disk_is_exit_3_removes_its_temp_files_and_keeps_the_previous_report(cli, write_spec, good_run,
                                                                                   monkeypatch):
    import sensreport.outputs

    out, before = good_run
    spec = write_spec(GOOD, name="again.yaml")
    real = sensreport.outputs.dump_json

    def full(doc, fh):
        fh.write(b'{"schema_version": 1, "')  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sensreport.outputs, "dump_json", full)
    r = cli("run", spec, "--out", out)
    assert_clean_failure(r, 3, f"--out: cannot write {out / 'results.json'}: No space left on device. Nothing was "
                               "written; the previous report is unchanged. Free some space")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no .results.json.*.tmp left either
    monkeypatch.setattr(sensreport.outputs, "dump_json", real)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["measures"]["values"].update(mean_abs=[1, 2]), "measures.values.mean_abs: [1, 2] is not of type 'object'"),
    (lambda d: d["inputs"].update(names="x"), "inputs.names: 'x' is not of type 'array'"),
    (lambda d: d["measures"]["values"]["mean_abs"]["per_output"]["y[0]"].update({"x[0]": "big"}),
     "'big' is not of type 'number', 'null'"),
    (lambda d: d.update(provenance=[]), "provenance: [] is not of type 'object'"),
    (lambda d: d.update(verdict={"status": "passed"}), "verdict: 'failing' is a required property"),
    (lambda d: d.pop("inputs"), "the document: 'inputs' is a required property"),
    (lambda d: d.update(schema_version=True), "has results schema version True"),
])
def test_baseline_of_the_wrong_structure_is_refused_before_any_work(cli, write_spec, good_run, tmp_path, change,
                                                                      message):
    out, _ = good_run
    doc = json.loads((out / "results.json").read_text())
    change(doc)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    # the model file would leave a mark if it were imported: a bad baseline costs no work
    (tmp_path / "marked.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n" + FUNCTIONS)
    spec = write_spec(GOOD.replace("f.py", "marked.py"), name="b.yaml")
    r = cli("run", spec, "--out", tmp_path / "new", "--baseline", tmp_path / "bad.json")
    assert_clean_failure(r, 2, message)
    assert "checks.baseline.path: " in r.stderr
    assert not (tmp_path / "imported").exists() and not (tmp_path / "new").exists()
    assert_clean_failure(cli("compare", out, tmp_path / "bad.json", "--out", tmp_path / "c.html"), 2, message)
    assert not (tmp_path / "c.html").exists()


def test_baseline_with_nan_or_broken_json_is_refused(cli, write_spec, good_run, tmp_path):
    out, _ = good_run
    text = (out / "results.json").read_text()
    (tmp_path / "nan.json").write_text(text.replace('"schema_version": 1', '"schema_version": 1, "x": NaN'))
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    spec = write_spec(GOOD, name="b.yaml")
    for name, message in (("nan.json", "NaN is not a JSON number"), ("cut.json", "cannot read"),
                          ("deep.json", "nested too deeply")):
        r = cli("run", spec, "--out", tmp_path / "new", "--baseline", tmp_path / name)
        assert_clean_failure(r, 2, message)


def test_history_skips_a_malformed_results_json_and_compare_refuses_it(cli, good_run, tmp_path):
    out, _ = good_run
    runs = tmp_path / "runs"
    (runs / "good").mkdir(parents=True)
    (runs / "good" / "results.json").write_bytes((out / "results.json").read_bytes())
    doc = json.loads((out / "results.json").read_text())
    doc["rankings"] = {"mean_abs": {"overall": 5}}
    (runs / "broken").mkdir()
    (runs / "broken" / "results.json").write_text(json.dumps(doc))
    r = cli("history", runs)
    assert r.exit_code == 0, r.output
    assert "1 run;" in r.stdout
    assert f"skipped {runs / 'broken' / 'results.json'} is not a sensreport results.json: rankings.mean_abs.overall" \
        in r.stderr
    assert (runs / "index.html").exists()
    r = cli("compare", runs / "good", runs / "broken", "--out", tmp_path / "cmp.html")
    assert_clean_failure(r, 2, "B: ")
    assert "rankings.mean_abs.overall: 5 is not of type 'array', 'null'" in r.stderr


# ---------------------------------------------------------- silently wrong
def test_csv_header_problems_are_refused_with_the_line(cli, write_spec, tmp_path):
    cases = {
        "a,a\n1,2\n3,4\n": "spec.yaml:2: inputs.points.csv: p.csv line 1: the header repeats 'a'",
        "1,2\n3,4\n5,6\n": "spec.yaml:2: inputs.points.csv: p.csv line 1 holds numbers (1, 2), not input names",
        "a,\n1,2\n": "p.csv line 1: column 2 of the header has no name",
        "\n\na,b\n1,2\n\n3,x\n": "p.csv line 6, column 'b': 'x' is not a number",
        "a,b\n1,2\n3,1_000\n": "p.csv line 3, column 'b': '1_000' is not a number",
    }
    for text, message in cases.items():
        spec = write_spec("model: {callable: f.py:poly}\ninputs: {points: {csv: p.csv}}\nmethods: {jacobian: {}}\n",
                          f__py=FUNCTIONS, p__csv=text)
        for command in ("validate", "run"):
            r = cli(command, spec, *(["--out", tmp_path / "out"] if command == "run" else []))
            assert_clean_failure(r, 2, message)
    assert not (tmp_path / "out").exists()


def test_csv_byte_order_mark_is_not_part_of_the_first_name(cli, write_spec, tmp_path):
    spec = write_spec("model: {callable: f.py:poly}\ninputs: {points: {csv: p.csv}}\nmethods: {jacobian: {}}\n",
                      f__py=FUNCTIONS)
    (tmp_path / "p.csv").write_bytes("\ufeffa,b\n1,2\n3,4\n".encode("utf-8"))
    assert cli("run", spec, "--out", tmp_path / "out", "--quiet").exit_code == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["inputs"]["names"] == ["a", "b"]


def test_complex_npy_and_text_values_are_refused(cli, write_spec, tmp_path):
    np.save(tmp_path / "c.npy", np.array([[1 + 2j, 3 + 0j]]))
    spec = write_spec("model: {callable: f.py:poly}\ninputs: {points: {npy: c.npy}}\nmethods: {jacobian: {}}\n",
                      f__py=FUNCTIONS)
    assert_clean_failure(cli("run", spec, "--out", tmp_path / "out"), 2,
                         "spec.yaml:2: inputs.points.npy: c.npy holds complex numbers (complex128)")
    for values, message in (('[["1", "2"]]', 'inputs.points.values[0][0]: expected a number, got "1"'),
                            ("[[1, true]]", "inputs.points.values[0][1]: expected a number, got True"),
                            ("[[1, 2], [1, 2, 3]]", "inputs.points.values[1]: expected a point of the first point's "
                                                    "shape [2], got [3]"),
                            ("[[1, [2]]]", "inputs.points.values[0][1]: expected the shape [] of the first entry")):
        text = write_spec(GOOD.replace("[[1.0, 2.0], [0.5, -1.0]]", values), name="t.yaml")
        assert_clean_failure(cli("run", text, "--out", tmp_path / "out"), 2, f"t.yaml:2: {message}")
    assert not (tmp_path / "out").exists()


def test_a_callable_file_that_calls_sys_exit_or_returns_none(cli, write_spec, tmp_path):
    (tmp_path / "bye.py").write_text("import sys\nsys.exit(0)\n\ndef f(x):\n    return x\n")
    spec = write_spec(GOOD.replace("f.py:poly", "bye.py:f"), f__py=FUNCTIONS)
    assert_clean_failure(cli("run", spec, "--out", tmp_path / "out"), 2,
                         f"spec.yaml:1: model.callable: importing {tmp_path / 'bye.py'} called sys.exit(0)")
    spec = write_spec(GOOD.replace("f.py:poly", "f.py:nothing, output_names: [a, b]"), name="none.yaml")
    assert_clean_failure(cli("run", spec, "--out", tmp_path / "out"), 2,
                         "model.callable: nothing returned None; it must return the outputs as a tensor")
    assert not (tmp_path / "out").exists()


def test_a_garbage_keras_file_is_not_reported_as_missing(cli, write_spec, tmp_path):
    (tmp_path / "m.keras").write_bytes(os.urandom(300))
    spec = write_spec(GOOD.replace("{callable: f.py:poly}", "{keras: m.keras}"))
    r = cli("run", spec, "--out", tmp_path / "out")
    assert_clean_failure(r, 2, "spec.yaml:1: model.keras: cannot load m.keras as a Keras model: the file is not a "
                               ".keras archive")
    assert "not found" not in r.stderr


# ------------------------------------------------------------------ messages
def test_every_unknown_key_of_a_mapping_is_reported(cli, write_spec):
    spec = write_spec(GOOD.replace("{callable: f.py:poly}", "{callable: f.py:poly, kerass: a, batchd: true}")
                      + "extra: 1\nmore: 2\n")
    r = cli("validate", spec)
    assert r.exit_code == 2
    for message in ("spec.yaml:1: model.kerass: unknown key 'kerass' (did you mean 'keras'?)",
                    "spec.yaml:1: model.batchd: unknown key 'batchd' (did you mean 'batched'?)",
                    "spec.yaml:4: extra: unknown key 'extra'", "spec.yaml:5: more: unknown key 'more'"):
        assert message in r.stderr


def test_run_time_input_errors_carry_the_line_and_the_input_names(cli, write_spec, tmp_path):
    np.save(tmp_path / "p.npy", np.array([[1.0, 2.0], [3.0, np.nan]]))
    spec = write_spec("model: {callable: f.py:poly}\ninputs:\n  names: [income, debt]\n  points: {npy: p.npy}\n"
                      "methods: {jacobian: {}}\n", f__py=FUNCTIONS)
    r = cli("run", spec, "--out", tmp_path / "out")
    assert_clean_failure(r, 2, "spec.yaml:4: inputs.points.npy: 1 value(s) are NaN or infinite: point 1 (input 'debt')")
    rows = write_spec("model: {callable: f.py:poly}\ninputs: {points: {values: [[1, 2]]}}\n"
                      "methods: {rows: {outputs: [7]}}\n", name="rows.yaml")
    assert_clean_failure(cli("run", rows, "--out", tmp_path / "out"), 2,
                         "rows.yaml:3: methods.rows.outputs[0]: output index 7 is out of range")


def test_validate_reads_the_points_and_the_baseline(cli, write_spec, tmp_path):
    spec = write_spec("model: {callable: f.py:poly}\ninputs: {points: {csv: p.csv}}\nmethods: {jacobian: {}}\n",
                      f__py=FUNCTIONS, p__csv="a,b\n1,2\n")
    assert cli("validate", spec).exit_code == 0
    (tmp_path / "b.json").write_text('{"schema_version": 1, "measures": {"values": {}}, "inputs": {"names": 3}}')
    spec = write_spec(spec.read_text() + "checks: {baseline: {path: b.json}}\n", name="b.yaml")
    assert_clean_failure(cli("validate", spec), 2, "b.yaml:4: checks.baseline.path: ")
    assert "inputs.names: 3 is not of type 'array'" in cli("validate", spec).stderr


# -------------------------------------------------------------------- debris
def test_a_killed_run_leaves_debris_that_the_next_run_removes(cli, write_spec, tmp_path):
    spec = write_spec(GOOD + "execution: {arrays: disk}\nreport: {dir: 'reports/{date}'}\n", f__py=FUNCTIONS)
    # killed (SIGKILL) at its first rename into place: its staged files and arrays stay
    code = textwrap.dedent(f"""
        import os, signal, sys
        from sensreport.cli import main
        real = os.replace
        def replace(a, b):
            if str(b).endswith((".npy", "arrays.npz", "results.json", "report.html")):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b)
        os.replace = replace
        sys.argv = ["sensreport", "run", r"{spec}", "--quiet"]
        main()
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == -9, proc.stderr
    debris = temp_entries(tmp_path / "reports")
    names = sorted(p.name.split(".sensreport-")[0] for p in debris)
    assert names == [".arrays", ".arrays.npz", ".report.html", ".results.json"], debris
    # a temporary file of a process that still runs (this one) is not touched
    live = tmp_path / "reports" / f".x.sensreport-{_host()}-{os.getpid()}-abc.tmp"
    live.write_text("mine")
    assert cli("run", spec, "--quiet").exit_code == 0
    assert temp_entries(tmp_path / "reports") == [live]
    run_dir = (tmp_path / "reports" / "latest").resolve()
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(FILES + ("jacobian.npy",))


def test_failed_runs_leave_no_temp_files_and_no_empty_run_folders(cli, write_spec, tmp_path, monkeypatch):
    import sensreport.outputs

    spec = write_spec(GOOD + "execution: {arrays: disk}\nreport: {dir: 'reports/{datetime}'}\n", f__py=FUNCTIONS)

    def full(doc, fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sensreport.outputs, "dump_json", full)
    r = cli("run", spec)
    assert r.exit_code == 3 and "No space left on device" in r.stderr
    assert list((tmp_path / "reports").iterdir()) == []  # no run folder, no .arrays staging, no temp file


def test_a_run_failing_after_its_arrays_started_keeps_the_previous_report(cli, write_spec, good_run, tmp_path,
                                                                         monkeypatch):
    # arrays.npz starts being written (under a temporary name) when the derivatives are
    # ready; a failure after that, in the analysis or in the writing thread itself, leaves
    # the previous report as it was, no temporary file and no empty run folder
    import sensreport.outputs
    import sensreport.runner
    from sensreport.errors import ComputeError

    out, before = good_run
    spec = write_spec(GOOD, name="again.yaml")
    started = []
    real_start = sensreport.outputs.start_arrays

    def start(*args, **kwargs):
        started.append(real_start(*args, **kwargs))
        return started[-1]

    def broken(*args, **kwargs):
        assert started and started[-1].thread is not None  # the arrays were being written
        raise ComputeError("execution.memory_budget", "the analysis ran out of memory")

    monkeypatch.setattr(sensreport.outputs, "start_arrays", start)
    monkeypatch.setattr(sensreport.runner, "analyse", broken)
    r = cli("run", spec, "--out", out)
    assert_clean_failure(r, 3, "execution.memory_budget: the analysis ran out of memory")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    r = cli("run", write_spec(GOOD + "report: {dir: 'reports/{datetime}'}\n", name="templated.yaml"))
    assert r.exit_code == 3 and list((tmp_path / "reports").iterdir()) == []
    monkeypatch.undo()

    def full(fp, array, *args, **kwargs):
        fp.write(b"\x93NUMPY")  # part of an entry, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", full)
    r = cli("run", spec, "--out", out)
    assert_clean_failure(r, 3, f"--out: cannot write {out / 'arrays.npz'}: No space left on device. Nothing was "
                               "written; the previous report is unchanged")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_empty_run_folders_and_stale_files_of_killed_runs_are_removed(tmp_path):
    from sensreport.outputs import EMPTY_AFTER, Outputs

    reports = tmp_path / "reports"
    dead = _dead_pid()
    old = reports / "2026-01-01T000000"
    old.mkdir(parents=True)
    (old / f".results.json.sensreport-{_host()}-{dead}-x1.tmp").write_text("{")
    empty = reports / "2026-01-02T000000-2"
    empty.mkdir()
    stamp = time.time() - EMPTY_AFTER - 5
    os.utime(empty, (stamp, stamp))
    fresh = reports / "2026-01-03T000000"
    fresh.mkdir()  # maybe a run that is just starting to write: kept
    mine = reports / "notes"
    mine.mkdir()  # not a run folder: kept
    (reports / f".arrays.sensreport-{_host()}-{dead}-x2.tmp").mkdir()
    other_host = reports / f".x.sensreport-00000000-{dead}-x3.tmp"
    other_host.write_text("")  # another machine's: kept until it is a day old
    Outputs(reports / "{datetime}", _dt.datetime.now()).clean()
    assert sorted(p.name for p in reports.iterdir()) == sorted([fresh.name, mine.name, other_host.name])


def test_two_runs_in_the_same_second_get_their_own_folders(cli, write_spec, tmp_path, monkeypatch):
    import sensreport.runner

    frozen = _dt.datetime(2026, 11, 27, 12, 0, 0)

    class Clock:
        class datetime:
            @staticmethod
            def now():
                return frozen

    monkeypatch.setattr(sensreport.runner, "_dt", Clock)
    spec = write_spec(GOOD + "report: {dir: 'reports/{datetime}'}\n", f__py=FUNCTIONS)
    assert cli("run", spec, "--quiet").exit_code == 0
    assert cli("run", spec, "--quiet").exit_code == 0
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["2026-11-27T120000", "2026-11-27T120000-2", "latest"]
    for name in ("2026-11-27T120000", "2026-11-27T120000-2"):
        assert sorted(p.name for p in (reports / name).iterdir()) == sorted(FILES)
    assert os.readlink(reports / "latest") == "2026-11-27T120000-2"
    result = json.loads((reports / "latest" / "results.json").read_text())
    assert result["status"] == "ok"


def _host() -> str:
    from sensreport.files import host_tag

    return host_tag()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
