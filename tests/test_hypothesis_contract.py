"""The CLI's contract under generated specs and input files (hypothesis): every run exits
0, 1, 2 or 3 with a message, never 4, never with a traceback, and leaves either a
complete report or nothing (no half-written file, no temporary file)."""

from __future__ import annotations

import json
import string
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sensreport.cli import main
from sensreport.files import is_temp

FUNCTIONS = textwrap.dedent('''
    import numpy as np
    import tensorflow as tf

    def poly(x):
        return tf.stack([x[0] ** 3 - 2 * x[0] * x[1], x[1] ** 2])

    def first(x):
        return x[0] * 2.0

    def root(x):
        return tf.sqrt(x)            # NaN/Inf derivatives at 0 and below

    def broken(x):
        raise RuntimeError("model exploded")

    def blackbox(x):
        return tf.numpy_function(lambda a: np.sin(a), [x], x.dtype)

    def nothing(x):
        pass
''')
FILES = {"report.html", "results.json", "arrays.npz"}
# derandomize: the same examples on every run, so that make test is deterministic
SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ strategies
finite = st.one_of(st.integers(-5, 5), st.floats(-10, 10, allow_nan=False, allow_infinity=False))
numbers = st.one_of(finite, st.sampled_from([0.0, float("nan"), float("inf"), -float("inf"), 1e308, -1e308]))
junk = st.one_of(st.none(), st.booleans(), st.text(string.printable, max_size=6), st.integers(-10**21, 10**21),
                 st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.sampled_from(["a", "mode", "x"]),
                                                                             st.integers(0, 2), max_size=2))


def pick(draw, valid: bool, good: list, bad: list):
    """One of ``good``; in a spec drawn to be broken anywhere, one of ``good`` or ``bad``."""
    return draw(st.sampled_from(good if valid else good + bad))


@st.composite
def csv_files(draw, valid: bool = False) -> bytes:
    header = pick(draw, valid, [["a", "b"]], [["a", "a"], ["1", "2"], ["a", ""], ["a", "b", "c"], ["a"]])
    cell = finite.map(str) if valid else st.one_of(numbers.map(str), st.sampled_from(["x", "", "1_0", "nan", " 2 "]))
    rows = draw(st.lists(st.lists(cell, min_size=2 if valid else 1, max_size=2 if valid else 3),
                         min_size=1 if valid else 0, max_size=4))
    text = "\n".join(",".join(r) for r in [header] + rows) + draw(st.sampled_from(["", "\n", "\n\n"]))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode("utf-8")


@st.composite
def npy_arrays(draw, valid: bool = False, clean: bool = False) -> np.ndarray:
    # points of shape [1, 2] suit no model here (poly takes x[1] of a point): not in a clean spec
    shape = pick(draw, valid, [(3, 2), (2, 2), (1, 2)] + ([] if clean else [(2, 1, 2)]), [(2,), (0, 2), (2, 3), ()])
    dtype = pick(draw, valid, ["float64", "float32", "int64"], ["complex128", "bool", "float16"])
    size = int(np.prod(shape))
    values = draw(st.lists(finite if valid else numbers, min_size=size, max_size=size))
    with np.errstate(all="ignore"):
        return np.array(values, dtype=np.float64).reshape(shape).astype(dtype)


@st.composite
def specs(draw, how: str | None = None) -> tuple[dict, dict[str, bytes]]:
    """A spec and its files: drawn from valid choices only (``valid``: they run), or from
    valid and broken choices anywhere (``anything``); ``fault``: a clean valid spec
    (one that passes) with one fault of :data:`FAULTS`, its name in ``files["fault"]``."""
    how = how or draw(st.sampled_from(["valid", "anything"]))
    valid = how != "anything"
    clean = how == "fault"
    files: dict[str, bytes] = {"f.py": FUNCTIONS.encode()}
    model = pick(draw, valid, [
        {"callable": "f.py:poly"}, {"callable": "f.py:first"}, {"callable": "f.py:poly", "dtype": "float32"},
        {"callable": "f.py:poly", "output_names": ["p", "q"]},
    ] + ([] if clean else [{"callable": "f.py:root"}, {"callable": "f.py:blackbox"}]), [
        {"callable": "f.py:broken"}, {"callable": "f.py:nothing"}, {"callable": "f.py:nope"}, {"callable": "g.py:f"},
        {"callable": "f.py:poly", "batched": True}, {"keras": "m.keras"}, {"keras": "missing.keras"},
        {"callable": "f.py:poly", "output_names": ["p"]}, {"callable": 3},
    ])
    if model.get("keras") == "m.keras":
        files["m.keras"] = draw(st.binary(max_size=64))
    kind = draw(st.sampled_from(["values", "values", "csv", "npy", "sample"]))
    inputs: dict = {}
    if kind == "values":
        point = st.lists(finite, min_size=2, max_size=2)
        inputs["points"] = {"values": draw(st.lists(point, min_size=1, max_size=4) if valid else st.one_of(
            st.lists(st.lists(numbers, min_size=2, max_size=2), min_size=1, max_size=4),
            st.lists(junk, min_size=1, max_size=2),
            st.lists(st.lists(st.one_of(numbers, junk), min_size=1, max_size=3), min_size=1, max_size=3)))}
    elif kind == "csv":
        files["p.csv"] = draw(csv_files(valid))
        inputs["points"] = {"csv": "p.csv"}
    elif kind == "npy":
        buf = tempfile.SpooledTemporaryFile()
        np.save(buf, draw(npy_arrays(valid, clean)))
        buf.seek(0)
        files["p.npy"] = buf.read()
        inputs["points"] = {"npy": "p.npy"}
    else:
        dist = draw(st.sampled_from(["uniform", "normal"]))
        bounds = [0, 1] if valid else draw(st.lists(numbers, min_size=2, max_size=2))
        inputs["points"] = {"sample": {"n": pick(draw, valid, [1, 3, 5], [10**12, 10**20, 0, -1]),
                                       "seed": draw(st.integers(0, 3)),
                                       "distributions": {"default": {dist: bounds}}}}
    if kind == "sample" or draw(st.booleans()):
        inputs["names"] = pick(draw, valid, [["a", "b"]], [["a"], ["a", "a"], ["a", "b", "c"]])
    methods = {}
    mode = st.sampled_from(["auto", "forward", "reverse", "reverse-tiled"] + ([] if valid else ["sideways"]))
    rows = st.lists(st.integers(0, 0 if clean else 1) if valid else st.one_of(st.integers(-1, 3), st.sampled_from(["p", "y[0]"])),
                    min_size=1, max_size=2)
    step = st.one_of(st.just("auto"), st.sampled_from([1e-4, 0.01]) if valid else numbers)
    for name, options in (("jacobian", st.fixed_dictionaries({}, optional={"mode": mode})),
                          ("rows", st.fixed_dictionaries({"outputs": rows})),
                          ("finite_difference", st.fixed_dictionaries({}, optional={
                              "scheme": st.sampled_from(["central", "forward"]), "step": step}))):
        if draw(st.booleans()):
            methods[name] = draw(options if valid else st.one_of(options, junk))
    if valid and not methods:
        methods["jacobian"] = {}
    spec: dict = {"model": model, "inputs": inputs, "methods": methods}
    execution = draw(st.fixed_dictionaries({}, optional={
        "memory_budget": st.sampled_from(["64MiB", "4GiB"] + ([] if valid else [1, 100, "1KiB", "1.2.3GiB"])),
        "arrays": st.sampled_from(["auto", "memory", "disk", "none"] + ([] if valid else ["tape"])),
        "timeout": st.sampled_from([600] if clean else [0.01] + ([] if valid else [-1, 0, "soon", float("nan")])),
    }))
    if execution:
        spec["execution"] = execution
    if draw(st.booleans()):
        spec["checks"] = draw(st.fixed_dictionaries({}, optional={
            "nonfinite": st.sampled_from([False, {"severity": "warn"}] + ([] if valid else [{"severity": "loud"}])),
            "dead_inputs": st.sampled_from([False, {"max_count": 1}] + ([] if valid else [{"max_count": -1}])),
            "baseline": st.sampled_from([{"path": "missing.json"}] + ([] if valid else [{"path": "bad.json"},
                                                                                        {"measure": "x"}])),
        }))
        files["bad.json"] = draw(st.sampled_from([b"{", b"[]", b'{"schema_version": 1, "measures": 3}',
                                                 b'{"schema_version": 1, "measures": {"values": {}}, '
                                                 b'"inputs": {"names": ["x[0]"]}}']))
    if draw(st.booleans()):
        spec["report"] = {"plotlyjs": pick(draw, valid, ["cdn", "inline"], ["both"])}
    if not valid and draw(st.integers(0, 9)) == 0:
        spec[draw(st.sampled_from(["extra", "modle", "method"]))] = 1
    if clean and "timeout" in spec.get("execution", {}):
        del spec["execution"]["timeout"]  # a child process per example would take too long
    if how == "fault":
        name = draw(st.sampled_from(sorted(FAULTS)))
        FAULTS[name][0](draw, spec, files)
        files["fault"] = name.encode()
    return spec, files


def _nested(depth: int) -> list:
    value: list = [1, 2]
    for _ in range(depth):
        value = [value]
    return value


def _values(draw, spec, files):
    spec["inputs"] = {"points": {"values": draw(st.sampled_from([
        [[1, "2"]], [[1, float("nan")]], [[1, True]], [[1, 2], [3]], [[1, None]], [[]],
        [_nested(45)]]))}}


def _sample(draw, spec, files):
    n, dist = draw(st.sampled_from([(10**20, [0, 1]), (10**12, [0, 1]), (3, [float("-inf"), float("inf")]),
                                    (3, [-1e308, 1e308]), (3, [1, 0]), (3, [0, float("nan")])]))
    spec["inputs"] = {"names": ["a", "b"], "points": {"sample": {"n": n, "distributions": {
        "default": {draw(st.sampled_from(["uniform", "normal"])): dist}}}}}


def _csv(draw, spec, files):
    files["p.csv"] = draw(st.sampled_from([b"a,a\n1,2\n", b"1,2\n3,4\n", b"\xef\xbb\xbfa,a\n1,2\n", b"a,b\n1,x\n",
                                           b"a,b\n1\n", b"a,b\n", b"\xff\xfe\n", b"a,b\n1,inf\n", b",b\n1,2\n"]))
    spec["inputs"] = {"points": {"csv": "p.csv"}}


def _npy(draw, spec, files):
    array = draw(st.sampled_from([np.array([[1 + 1j, 2]]), np.array([[True, False]]), np.array(3.0),
                                  np.zeros((0, 2)), np.array([[np.nan, 1.0]])]))
    buf = tempfile.SpooledTemporaryFile()
    np.save(buf, array)
    buf.seek(0)
    files["p.npy"] = draw(st.sampled_from([buf.read(), b"\x93NUMPY garbage", b""]))
    spec["inputs"] = {"points": {"npy": "p.npy"}}


#: One fault each: how to put it into a clean spec, the exit codes it must give, and what
#: the message must name.
FAULTS = {
    "step": (lambda draw, spec, files: spec["methods"].__setitem__("finite_difference", {"step": draw(
        st.sampled_from([float("nan"), float("inf"), -float("inf"), 0, -1, "big"]))}),
        {2}, "methods.finite_difference.step"),
    "values": (_values, {2}, "inputs.points.values"),
    "sample": (_sample, {2}, "inputs.points.sample"),
    "csv": (_csv, {2}, "inputs.points.csv"),
    "npy": (_npy, {2}, "inputs.points.npy"),
    "model": (lambda draw, spec, files: spec.__setitem__("model", draw(st.sampled_from([
        {"callable": "f.py:broken"}, {"callable": "f.py:nothing"}, {"callable": "f.py:nope"},
        {"callable": "g.py:f"}, {"keras": "missing.keras"}, {"keras": "f.py"},
        {"callable": "f.py:poly", "output_names": ["p"]}]))), {2}, "model"),
    "budget": (lambda draw, spec, files: spec.setdefault("execution", {}).__setitem__("memory_budget", draw(
        st.sampled_from([10, 16, "1.2.3GiB", "-1B", "lots"]))), {2, 3}, "memory_budget"),
    "timeout": (lambda draw, spec, files: spec.setdefault("execution", {}).__setitem__("timeout", draw(
        st.sampled_from([float("nan"), -1, 0, "1s", float("inf")]))), {2}, "execution.timeout"),
    "names": (lambda draw, spec, files: spec["inputs"].__setitem__("names", draw(st.sampled_from(
        [["a", "a"], [1, 2], [], "a"]))), {2}, "inputs.names"),
    "rows": (lambda draw, spec, files: spec["methods"].__setitem__("rows", {"outputs": draw(st.sampled_from(
        [[5], [-1], ["nope"], []]))}), {2}, "methods.rows.outputs"),
    "baseline": (lambda draw, spec, files: (
        spec.setdefault("checks", {}).__setitem__("baseline", {"path": "bad.json"}),
        files.__setitem__("bad.json", draw(st.sampled_from([
            b"{", b"[]", b'{"schema_version": 1, "measures": 3}', b"NaN", b'{"schema_version": 2, "measures": {}}',
            b'{"schema_version": 1, "measures": {"values": {}}, "inputs": {"names": ["x[0]", "x[0]"]}}'])))),
        {2}, "checks.baseline.path"),
    "key": (lambda draw, spec, files: spec["methods"].setdefault("jacobian", {}).update({"mdoe": "auto"}),
            {2}, "methods.jacobian.mdoe"),
}


# ------------------------------------------------------------------ the contract
def run_cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_contract(r, folder: Path, out: Path) -> None:
    event(f"exit {r.exit_code}")
    text = r.stdout + r.stderr
    assert r.exit_code in (0, 1, 2, 3), text
    assert "Traceback" not in text and "internal error" not in text, text
    assert not [p for p in folder.rglob("*") if is_temp(p.name)], "temporary files left behind"
    written = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if r.exit_code in (0, 1) or (r.exit_code == 3 and written):
        assert FILES <= written, (r.exit_code, written, text)  # a complete report
        doc = json.loads((out / "results.json").read_text())
        assert doc["verdict"]["exit_code"] == r.exit_code
        names = doc["inputs"]["names"]
        assert len(set(names)) == len(names) == int(np.prod(doc["inputs"]["shape"])), names  # no input lost
    else:
        assert not written & FILES, (r.exit_code, written, text)  # nothing at all
        assert [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")], text  # and a message


def write(folder: Path, spec_text: str, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).write_bytes(data)
    path = folder / "spec.yaml"
    path.write_text(spec_text)
    return path


def dump(spec: dict) -> str:
    # .nan and .inf are written the way a person writes them in YAML
    return yaml.safe_dump(spec, sort_keys=False)


@settings(max_examples=30, **SETTINGS)
@given(specs())
def test_run_with_generated_specs_keeps_the_contract(generated):
    spec, files = generated
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write(folder, dump(spec), files)
        r = run_cli("run", path, "--out", folder / "out", "--quiet")
        assert_contract(r, folder, folder / "out")
        v = run_cli("validate", path)
        assert v.exit_code in (0, 2) and "Traceback" not in v.stdout + v.stderr
        if r.exit_code != 2 and v.exit_code == 2:
            raise AssertionError(f"validate refused what run accepted: {v.stderr}")
        if v.exit_code == 2:  # validate finds every input problem run can find without the model
            assert r.exit_code in (2, 3), r.stdout + r.stderr


@settings(max_examples=150, **SETTINGS)
@given(specs("fault"))
def test_one_fault_in_a_good_spec_is_refused_and_named(generated):
    spec, files = generated
    fault = files.pop("fault").decode()
    _, codes, key = FAULTS[fault]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write(folder, dump(spec), files)
        r = run_cli("run", path, "--out", folder / "out", "--quiet")
        assert_contract(r, folder, folder / "out")
        assert r.exit_code in codes, (fault, r.stdout + r.stderr)
        assert key in r.stderr, (fault, r.stderr)
        event(f"fault {fault}: exit {r.exit_code}")


@settings(max_examples=150, **SETTINGS)
@given(specs(), st.data())
def test_mangled_spec_text_keeps_the_contract(generated, data):
    spec, files = generated
    text = dump(spec)
    # cut, duplicate or replace a stretch of the text: broken YAML, wrong types, odd keys
    i = data.draw(st.integers(0, len(text)))
    j = data.draw(st.integers(i, min(len(text), i + 12)))
    edit = data.draw(st.sampled_from(["cut", "dup", "junk", "alias", "tab"]))
    if edit == "cut":
        text = text[:i] + text[j:]
    elif edit == "dup":
        text = text[:j] + text[i:j] + text[j:]
    elif edit == "junk":
        text = text[:i] + data.draw(st.text(string.printable + "&*!|>%@`\u00e9\ufeff", max_size=8)) + text[j:]
    elif edit == "alias":
        text = "x: &x [1, 2, 3]\n" + text.replace("jacobian: {}", "jacobian: *x", 1)
    else:
        text = text.replace("  ", "\t", 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = write(folder, text, files)
        v = run_cli("validate", path)
        assert v.exit_code in (0, 2), v.stdout + v.stderr
        assert "Traceback" not in v.stdout + v.stderr
        if v.exit_code == 2:  # a spec validate refuses is refused by run too, before any work
            r = run_cli("run", path, "--out", folder / "out", "--quiet")
            assert r.exit_code == 2 and not (folder / "out").exists(), r.stdout + r.stderr
            assert_contract(r, folder, folder / "out")


@settings(max_examples=30, **SETTINGS)
@given(st.one_of(st.booleans().flatmap(lambda v: csv_files(v).map(lambda b: ("csv", b))),
                 st.booleans().flatmap(lambda v: npy_arrays(v).map(lambda a: ("npy", a)))),
       st.sampled_from([None, ["a", "b"], ["income", "debt"]]))
def test_generated_point_files_keep_the_contract(points, names):
    kind, content = points
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if kind == "npy":
            np.save(folder / "p.npy", content)
            content = (folder / "p.npy").read_bytes()
        spec = {"model": {"callable": "f.py:poly"}, "inputs": {"points": {kind: f"p.{kind}"}},
                "methods": {"jacobian": {}}}
        if names:
            spec["inputs"]["names"] = names
        path = write(folder, dump(spec), {"f.py": FUNCTIONS.encode(), f"p.{kind}": content})
        # a previous good report in the folder: a failed run must leave it as it was
        out = folder / "out"
        out.mkdir()
        for name in FILES:
            (out / name).write_text("previous")
        r = run_cli("run", path, "--out", out, "--quiet")
        text = r.stdout + r.stderr
        assert r.exit_code in (0, 1, 2, 3) and "Traceback" not in text and "internal error" not in text, text
        assert not [p for p in folder.rglob("*") if is_temp(p.name)], "temporary files left behind"
        if (out / "results.json").read_text() == "previous":  # failed before writing: nothing replaced
            assert r.exit_code in (2, 3), text
            assert {p.name: p.read_text() for p in out.iterdir()} == dict.fromkeys(FILES, "previous")
            assert "inputs." in r.stderr or "model." in r.stderr or "execution." in r.stderr, text  # names the key
        else:
            assert_contract(r, folder, out)
            doc = json.loads((out / "results.json").read_text())
            assert len(doc["inputs"]["names"]) == len(set(doc["inputs"]["names"]))  # no input lost to a name
            if names and r.exit_code in (0, 1):
                assert doc["inputs"]["names"] == names
