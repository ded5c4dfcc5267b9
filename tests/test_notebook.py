"""The notebook path: sensreport.run() on in-memory objects, the result's repr, HTML and
DataFrame, save() later, and a library that leaves TensorFlow's logging and the
environment as it found them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import sensreport
from sensreport.errors import InputError, SpecError

from conftest import ROOT

pd = pytest.importorskip("pandas", reason="pandas is in the test extra (sensreport[pandas]); not installed here")

XSS = '<img src=x onerror="alert(1)">'
HTML_LIMIT = 300_000


def linear_keras_model(n_in: int = 3, n_out: int = 2):
    """A Keras model built in memory whose derivatives are known: dy_i/dx_j = W[j, i]."""
    import keras

    inp = keras.Input((n_in,), name="features")
    out = keras.layers.Dense(n_out, name="scores")(inp)
    model = keras.Model(inp, out, name="in_memory")
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(n_in, n_out)).astype("float32")
    model.get_layer("scores").set_weights([kernel, np.zeros(n_out, "float32")])
    return model, kernel


@pytest.fixture
def tf_logger_at():
    """Set TensorFlow's logger to a level of the test's choosing; restore it after the test."""
    tf_logger = logging.getLogger("tensorflow")
    saved = tf_logger.level

    def set_level(level: int) -> logging.Logger:
        tf_logger.setLevel(level)
        return tf_logger

    yield set_level
    tf_logger.setLevel(saved)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs


def test_notebook_session_in_memory_keras_model_and_dataframe(tmp_path, monkeypatch, tf_logger_at):
    """What a notebook does: a model built in memory, a DataFrame, run, display, a DataFrame back."""
    monkeypatch.chdir(tmp_path)
    tf_logger = tf_logger_at(logging.INFO)  # the notebook's own choice
    env_before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")

    model, kernel = linear_keras_model()
    rng = np.random.default_rng(0)
    names = ["age", XSS, "debt ratio"]
    frame = pd.DataFrame(rng.normal(size=(25, 3)), columns=names)
    spec = {"title": "Notebook audit <script>alert(2)</script>",
            "model": {"keras": model, "output_names": ["p_default", "p_late"]},
            "inputs": {"points": {"values": frame}},
            "methods": {"jacobian": None, "finite_difference": None}}
    result = sensreport.run(spec, write=False)

    # TensorFlow's logging and the environment are as the notebook left them
    assert tf_logger.level == logging.INFO
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == env_before
    # write=False wrote nothing, anywhere under the working directory
    assert list(tmp_path.iterdir()) == [] and result.out_dir is None

    assert result.input_names == names  # the DataFrame's columns name the inputs
    assert result.verdict.status == "passed"
    jac = result.methods["jacobian"].values
    assert np.allclose(jac, np.broadcast_to(kernel.T, jac.shape), atol=1e-6)

    text = repr(result)
    assert len(text) < 400 and "\n" not in text
    assert text.startswith("<RunResult 'Notebook audit") and "Checks passed (exit 0)" in text

    page = result._repr_html_()
    assert len(page.encode()) < HTML_LIMIT
    assert "Checks passed" in page and "p_default" in page
    assert XSS not in page and "<script" not in page
    assert html_escape(XSS) in page and "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    tags = Tags()
    tags.feed(page)
    assert "script" not in tags.tags and "img" not in tags.tags
    assert not [a for a, _ in tags.attrs if a.startswith("on")]
    # the heatmap: one coloured cell per output and input (3 inputs, all shown)
    assert page.count('<td title="') == 2 * 3

    df = result.to_pandas()
    assert list(df.columns) == ["output", "input", "measure", "value", "rank", "p25", "p75"]
    assert len(df) == 2 * 3 * len(result.measures)
    mean_abs = df[df.measure == "mean_abs"].set_index(["output", "input"])["value"]
    for i, o in enumerate(["p_default", "p_late"]):
        for j, name in enumerate(names):
            assert mean_abs[(o, name)] == pytest.approx(abs(kernel[j, i]), rel=1e-5)
    # the numbers are results.json's, the ranks follow them, the spread brackets the median
    doc = result.to_dict()
    for row in df.itertuples():
        assert row.value == doc["measures"]["values"][row.measure]["per_output"][row.output][row.input]
    for (o, m), group in df[df.measure != "positive_share"].groupby(["output", "measure"]):
        assert list(group.sort_values("rank")["input"]) == result.rankings()[m]["per_output"][o]
    ranked = df[df.measure != "positive_share"]
    assert ranked.p25.notna().all() and (ranked.p25 <= ranked.p75 + 1e-12).all()
    assert (ranked.p75 > ranked.p25).any()  # the inputs' effects vary from point to point (std_scaled, elasticity)
    shares = df[df.measure == "positive_share"]  # a share of points, not a ranking: no rank, no spread
    assert shares["rank"].isna().all() and shares.p25.isna().all()
    overall = result.to_pandas(overall=True)
    assert overall.output.isna().sum() == 3 * len(result.measures)


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_save_writes_the_report_of_a_run_that_wrote_nothing(tmp_path):
    model, _ = linear_keras_model()
    points = np.random.default_rng(1).normal(size=(6, 3))
    result = sensreport.run({"model": {"keras": model}, "inputs": {"points": {"values": points}},
                             "methods": {"jacobian": None}, "report": {"plotlyjs": "cdn"}}, write=False)
    out = result.save(tmp_path / "reports" / "{date}")
    assert out.parent == tmp_path / "reports" and out.name != "{date}"
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "report.html", "results.json"]
    assert (tmp_path / "reports" / "latest").resolve() == out.resolve()
    assert result.out_dir == out and str(out) in repr(result)
    doc = json.loads((out / "results.json").read_text())
    assert doc["verdict"] == result.verdict.to_dict()
    html = (out / "report.html").read_text()
    assert len(html) < 1_000_000  # the run's report.plotlyjs: cdn is kept
    assert "in_memory" in html and "&lt;in-memory numpy.ndarray float64 [6, 3]" in html  # the spec text, escaped
    assert np.array_equal(np.load(out / "arrays.npz")["points"], points)
    inline = result.save(tmp_path / "inline", plotlyjs="inline")
    assert (inline / "report.html").stat().st_size > 4_000_000


def point_function(x):
    import tensorflow as tf

    return tf.stack([x[0] ** 2 * x[1], tf.sin(x[1])])


def test_numpy_points_and_an_in_memory_function(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    points = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.25]])
    spec = {"model": {"callable": point_function, "output_names": ["a", "b"]},
            "inputs": {"names": ["u", "v"], "points": {"values": points}},
            "methods": {"jacobian": {"mode": "forward"}}}
    result = sensreport.run(spec, write=False)
    points[:] = 0  # the caller changes its array afterwards: the result keeps its own copy
    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.25]])
    expected = np.stack([np.stack([2 * x[:, 0] * x[:, 1], x[:, 0] ** 2], 1),
                         np.stack([np.zeros(3), np.cos(x[:, 1])], 1)], 1)
    assert np.allclose(result.methods["jacobian"].values, expected)
    assert np.array_equal(result.points, x)
    # the spec's text describes the objects (and identifies the array by its sha256)
    assert "callable: <in-memory function" in result.spec_text and "point_function" in result.spec_text
    assert "<in-memory numpy.ndarray float64 [3, 2], sha256 " in result.spec_text
    assert result.model["summary"].startswith("Python function point_function (per-point, float64)")
    assert result.provenance["model_sha256"]  # the file the function was defined in
    assert list(tmp_path.iterdir()) == []


def test_objects_in_a_spec_mapping_are_validated_all_at_once():
    frame = pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]})
    spec = {"title": object(),
            "model": {"keras": lambda x: x},
            "inputs": {"names": ["x", "z"], "points": {"values": frame}},
            "methods": {"jacobian": None}}
    with pytest.raises(SpecError) as err:
        sensreport.run(spec, write=False)
    problems = {p.key: p.message for p in err.value.problems}
    assert "a function or another callable goes under model.callable" in problems["model.keras"]
    assert "'label' are not numeric" in problems["inputs.points.values"]
    assert "differ from the DataFrame's columns (x, label)" in problems["inputs.names"]
    assert "objects are accepted only under model.keras, model.callable, inputs.points.values" in problems["title"]
    assert len(str(err.value)) < 2000  # no object's repr dumped into the message
    with pytest.raises(SpecError, match="model.callable: expected .* or a callable, got object"):
        sensreport.parse_spec({"model": {"callable": object()}, "inputs": {"points": {"values": [[1.0]]}},
                               "methods": {"jacobian": None}})


def test_in_memory_model_on_ray_is_refused_before_any_work():
    spec = {"model": {"callable": point_function}, "inputs": {"points": {"values": np.ones((2, 2))}},
            "methods": {"jacobian": None}, "execution": {"engine": "ray"}}
    with pytest.raises(InputError, match="execution.engine: Ray workers load the model from a file"):
        sensreport.run(spec, write=False)


def test_a_large_result_displays_in_a_small_page():
    """2,000 inputs and 60 outputs with long names: the HTML stays small, says what it left out."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    w = tf.constant(rng.normal(size=(2000, 60)))
    spec = {"model": {"callable": lambda x: tf.matmul(x, w), "batched": True,
                      "output_names": [f"output {i} " + "o" * 80 for i in range(60)]},
            "inputs": {"names": [f"input {j} " + "i" * 80 for j in range(2000)],
                       "points": {"values": rng.normal(size=(3, 2000))}},
            "methods": {"jacobian": {"mode": "reverse"}}}
    result = sensreport.run(spec, write=False)
    page = result._repr_html_()
    assert len(page.encode()) < HTML_LIMIT, len(page.encode())
    assert page.count('<td title="') == 20 * 12  # the first 20 outputs x the 12 most influential inputs
    assert "and 40 more outputs" in page and "the 12 most influential of 2,000 inputs" in page
    assert len(repr(result)) < 400
    assert len(result.to_pandas()) == 60 * 2000 * len(result.measures)


def test_tensorflow_logger_is_quiet_only_while_a_run_runs(tf_logger_at):
    tf_logger = tf_logger_at(logging.DEBUG)
    seen = []

    def f(x):
        seen.append(logging.getLogger("tensorflow").getEffectiveLevel())
        return x * 2.0

    sensreport.run({"model": {"callable": f}, "inputs": {"points": {"values": [1.0, 2.0]}},
                    "methods": {"jacobian": None}}, write=False)
    assert seen and set(seen) == {logging.ERROR}
    assert tf_logger.level == logging.DEBUG

    def broken(x):
        raise RuntimeError("model exploded")

    with pytest.raises(InputError, match="model exploded"):
        sensreport.run({"model": {"callable": broken}, "inputs": {"points": {"values": [1.0]}},
                        "methods": {"jacobian": None}}, write=False)
    assert tf_logger.level == logging.DEBUG  # restored when the run fails too


def test_a_fresh_process_keeps_its_environment_and_logging(tmp_path):
    """In a new interpreter (sensreport imports TensorFlow itself): TF_CPP_MIN_LOG_LEVEL and
    TF_CPU_ALLOCATOR_USE_BFC stay unset (the allocator they chose is TensorFlow's BFC one: it
    reports statistics), TensorFlow's logger keeps its level, the `sensreport` logger reports
    the run, and pandas is not needed for anything but to_pandas()."""
    script = textwrap.dedent('''
        import json, logging, os, sys
        sys.modules["pandas"] = None  # as if pandas were not installed
        import sensreport
        records = []
        handler = logging.Handler()
        handler.emit = lambda r: records.append((r.name, r.levelname, r.getMessage()))
        logging.getLogger("sensreport").addHandler(handler)
        logging.getLogger("sensreport").setLevel(logging.INFO)
        own = [type(h).__name__ for h in logging.getLogger("sensreport").handlers]

        def f(x):
            import tensorflow as tf
            return tf.stack([x[0] ** 2, x[0] * x[1]])

        r = sensreport.run({"model": {"callable": f}, "inputs": {"points": {"values": [[1.0, 2.0], [3.0, 4.0]]}},
                            "methods": {"jacobian": None}}, write=False)
        html = r._repr_html_()
        try:
            r.to_pandas()
            pandas = "imported"
        except ImportError as exc:
            pandas = str(exc)
        import tensorflow as tf
        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]  # ValueError unless BFC
        print(json.dumps({"env": os.environ.get("TF_CPP_MIN_LOG_LEVEL"), "tf_imported": "tensorflow" in sys.modules,
                          "allocator_env": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"), "peak": peak,
                          "tf_level": logging.getLogger("tensorflow").level, "records": records, "own": own,
                          "pandas": pandas, "html": len(html), "status": r.verdict.status}))
    ''')
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_CPU_ALLOCATOR_USE_BFC")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tf_imported"] and out["env"] is None and out["tf_level"] == logging.NOTSET
    assert out["allocator_env"] is None and out["peak"] > 0
    assert out["own"][0] == "NullHandler"  # a library: no output unless the application configures logging
    assert [r[0] for r in out["records"]] == ["sensreport", "sensreport"]
    assert out["records"][0][2].startswith("running a spec mapping (callable model, values points)")
    assert out["records"][1][2] == "Checks passed; wrote nothing (write=False)"
    assert out["pandas"] == "to_pandas() needs pandas: pip install 'sensreport[pandas]'"
    assert out["status"] == "passed" and out["html"] > 0
    assert list(tmp_path.iterdir()) == []


def test_python_dash_m_sensreport_is_the_command_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    version = subprocess.run([sys.executable, "-m", "sensreport", "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout == f"sensreport, version {sensreport.__version__}\n"
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {keras: missing.keras}\ninputs: {points: {values: [1.0]}}\nmethods: {jacobian: }\n")
    bad = subprocess.run([sys.executable, "-m", "sensreport", "validate", str(spec)], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "model.keras: file not found" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "sensreport", "--help"], capture_output=True, text=True, env=env)
    assert usage.stdout.startswith("Usage: sensreport ")  # the program's name, not __main__.py


def test_the_wheel_ships_py_typed_and_main(tmp_path):
    """PEP 561: type checkers read sensreport's annotations when the wheel holds py.typed."""
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, cwd=tmp_path)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel without build isolation here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("sensreport-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sensreport/py.typed", "sensreport/__main__.py", "sensreport/notebook.py",
            "sensreport/mlflow_log.py"} <= names
    assert (ROOT / "sensreport" / "py.typed").is_file()
