"""execution.engine: ray on a local two-CPU cluster started by the suite."""

from __future__ import annotations

import gc
import json
import os
import signal
import time

import numpy as np
import pytest

from conftest import EXAMPLES

ray = pytest.importorskip("ray", reason="Ray is the optional extra sensreport[ray]; make test installs it")
TABULAR = (EXAMPLES / "tabular").resolve()

SLOW = '''
import time
import numpy as np
import tensorflow as tf

def _slow_sin(a):
    time.sleep(0.05)
    return np.sin(a)

def slow(x):
    return tf.numpy_function(_slow_sin, [x], x.dtype)
'''


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20,
             logging_level="ERROR")
    yield
    ray.shutdown()


def run_spec(tmp_path, name, text, **kw):
    from sensreport import runner

    spec_path = tmp_path / f"{name}.yaml"
    spec_path.write_text(text)
    return runner.run(spec_path, out=tmp_path / name, **kw)


def assert_same_finite_differences(a, b):
    """Finite differences of a float32 model: a batch's composition changes the model's
    float32 rounding (oneDNN), and a quotient over a small step magnifies it up to the
    estimate's own error bound. Two runs agree within the sum of their error estimates."""
    fa, fb = a.methods["finite_difference"], b.methods["finite_difference"]
    bound = 2 * (fa.error + fb.error) + 1e-9
    worst = float(np.max(np.abs(fa.values - fb.values) / bound))
    assert worst <= 1, f"finite differences differ by {worst:.3g} times their estimated errors"


def test_ray_run_matches_local_run(cluster, tmp_path):
    text = (f"model: {{keras: {TABULAR / 'credit.keras'}, output_names: [p_default, p_late]}}\n"
            f"inputs: {{points: {{csv: {TABULAR / 'points.csv'}}}}}\n"
            "methods: {jacobian: {}, rows: {outputs: [p_late]}, finite_difference: {}}\n")
    local = run_spec(tmp_path, "local", text)
    remote = run_spec(tmp_path, "ray", text + "execution: {engine: ray, ray: {workers: 2, chunk_points: 6}}\n")
    facts = remote.memory["execution"]
    assert facts["engine"] == "ray" and facts["workers"] == 2 and facts["chunks"] == 7
    for name in ("jacobian", "rows"):
        # float32 model: batches of 6 and of 40 round differently in oneDNN
        np.testing.assert_allclose(remote.methods[name].values, local.methods[name].values, rtol=1e-5, atol=1e-7)
    assert_same_finite_differences(remote, local)
    for measure, values in local.measures.items():
        np.testing.assert_allclose(remote.measures[measure], values, rtol=1e-5, err_msg=measure)
    assert remote.rankings() == local.rankings()
    saved = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert saved["memory"]["execution"]["chunks"] == 7


def test_float64_ray_run_is_identical_to_local(cluster, tmp_path):
    (tmp_path / "f.py").write_text((EXAMPLES / "seed" / "functions.py").read_text())
    pts = np.random.default_rng(0).uniform(0.5, 2.0, (30, 3)).tolist()
    text = (f"model: {{callable: f.py:vector}}\ninputs: {{points: {{values: {pts}}}}}\n"
            "methods: {jacobian: {}, finite_difference: {}}\n")
    local = run_spec(tmp_path, "local", text + "execution: {memory_budget: 4KiB}\n")
    remote = run_spec(tmp_path, "ray", text + "execution: {memory_budget: 4KiB, engine: ray, "
                                               f"ray: {{chunk_points: {local.memory['chunk_points']}}}}}\n")
    assert local.memory["chunk_points"] < 30  # several chunks, merged in the same order
    np.testing.assert_array_equal(remote.methods["jacobian"].values, local.methods["jacobian"].values)
    for measure, values in local.measures.items():
        np.testing.assert_array_equal(remote.measures[measure], values)
    assert remote.agreement.summary == local.agreement.summary


def test_killed_worker_has_its_chunks_retried(cluster, tmp_path):
    from sensreport import runner
    from sensreport.spec import load_spec

    (tmp_path / "slow.py").write_text(SLOW)
    x = np.linspace(0.1, 3.0, 24).reshape(24, 1).tolist()
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(f"model: {{callable: slow.py:slow}}\ninputs: {{points: {{values: {x}}}}}\n"
                         "methods: {finite_difference: {}}\nexecution: {engine: ray, ray: {chunk_points: 1}}\n")
    killed = []

    def kill_first_worker(done, pids):
        if done == 2 and not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    result = runner.compute(load_spec(spec_path), on_chunk=kill_first_worker)
    assert killed and result.memory["execution"]["restarts"] == 1
    assert result.status == "ok"
    np.testing.assert_allclose(result.methods["finite_difference"].values[:, 0, 0], np.cos(np.array(x)[:, 0]),
                               rtol=1e-7)


def test_worker_deaths_beyond_retries_fail_the_run_cleanly(cluster, tmp_path, monkeypatch):
    from sensreport import runner
    from sensreport.errors import ComputeError

    (tmp_path / "slow.py").write_text(SLOW)
    x = np.linspace(0.1, 3.0, 12).reshape(12, 1).tolist()
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(f"model: {{callable: slow.py:slow}}\ninputs: {{points: {{values: {x}}}}}\n"
                         "methods: {finite_difference: {}}\n"
                         "execution: {engine: ray, ray: {chunk_points: 1, max_retries: 0}}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("previous good report")
    real = runner.compute

    def compute(spec, **kw):
        return real(spec, on_chunk=lambda done, pids: done == 1 and os.kill(pids[1], signal.SIGKILL), **kw)

    monkeypatch.setattr(runner, "compute", compute)
    with pytest.raises(ComputeError, match=r"execution.ray: Ray workers died 1 times .* no result was written"):
        runner.run(spec_path, out=out)
    assert (out / "report.html").read_text() == "previous good report"
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    # the failed run's workers are gone and the cluster's CPUs free again, without the
    # garbage collector's help: the next run freezes what is alive (gc.freeze), and a
    # run's actors left to the collector then held their CPUs and hung every later run
    gc.freeze()
    try:
        deadline = time.monotonic() + 30
        while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get("CPU", 0) == 2
    finally:
        gc.unfreeze()


def test_missing_ray_says_how_to_install(cli, write_spec, functions_py, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    spec = write_spec("model: {callable: f.py:poly}\ninputs: {points: {values: [[1, 2]]}}\n"
                      "methods: {jacobian: {}}\nexecution: {engine: ray}\n", f__py=functions_py)
    r = cli("run", spec, "--out", spec.parent / "out")
    assert r.exit_code == 2
    assert "execution.engine: Ray is not installed: pip install 'sensreport[ray]'" in r.stderr


def test_ray_runs_a_model_with_named_inputs_and_a_held_category(cluster, tmp_path):
    structured = (EXAMPLES / "structured").resolve()
    text = (f"model: {{keras: {structured / 'model.keras'}}}\n"
            f"inputs: {{points: {{npz: {structured / 'points.npz'}}}, groups: {{finances: [income, debt_ratio]}}}}\n"
            "methods: {jacobian: {}, finite_difference: {}}\n")
    local = run_spec(tmp_path, "local", text)
    remote = run_spec(tmp_path, "ray", text + "execution: {engine: ray, ray: {workers: 2, chunk_points: 50}}\n")
    assert remote.memory["execution"]["engine"] == "ray" and remote.input_names == local.input_names
    np.testing.assert_allclose(remote.methods["jacobian"].values, local.methods["jacobian"].values, rtol=1e-5,
                               atol=1e-7)
    assert_same_finite_differences(remote, local)
    np.testing.assert_allclose(remote.groups.measures["rms"], local.groups.measures["rms"], rtol=1e-5)
    assert remote.verdict.status == "passed"


def test_ray_intervals_and_active_subspaces_match_local(cluster, tmp_path):
    """The batch sums behind the confidence intervals and the subspace matrices merge
    across workers: the same intervals and eigenvalues as one local sweep."""
    (tmp_path / "f.py").write_text((EXAMPLES / "seed" / "functions.py").read_text())
    pts = np.random.default_rng(1).uniform(0.5, 2.0, (64, 3)).tolist()
    text = (f"model: {{callable: f.py:vector}}\ninputs: {{points: {{values: {pts}}}}}\n"
            "methods: {jacobian: {}}\n")
    local = run_spec(tmp_path, "local", text)
    remote = run_spec(tmp_path, "ray", text + "execution: {engine: ray, ray: {chunk_points: 10}}\n")
    assert local.intervals is not None and local.intervals.batches == 32
    for m, (low, high) in local.intervals.measures.items():
        np.testing.assert_allclose(remote.intervals.measures[m][0], low, rtol=1e-10, err_msg=m)
        np.testing.assert_allclose(remote.intervals.measures[m][1], high, rtol=1e-10, err_msg=m)
    np.testing.assert_allclose(remote.subspace.eigenvalues, local.subspace.eigenvalues, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(remote.subspace.low, local.subspace.low, rtol=1e-10, atol=1e-14)
