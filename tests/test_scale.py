"""Bounded memory: chunked, streamed and on-disk runs report the same numbers."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import EXAMPLES

TABULAR = (EXAMPLES / "tabular").resolve()
SPEC = f"""\
model:
  keras: {TABULAR / 'credit.keras'}
  output_names: [p_default, p_late]
inputs:
  points: {{csv: {TABULAR / 'points.csv'}}}
methods:
  jacobian: {{mode: auto}}
  rows: {{outputs: [p_late]}}
  finite_difference: {{}}
"""


def run(cli, write_spec, tmp_path, name, execution):
    spec = write_spec(SPEC + execution, name=f"{name}.yaml")
    out = tmp_path / name
    r = cli("run", spec, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    return json.loads((out / "results.json").read_text()), out


def test_streamed_and_disk_runs_match_the_in_memory_run(cli, write_spec, tmp_path):
    whole, whole_out = run(cli, write_spec, tmp_path, "memory", "")
    streamed, streamed_out = run(cli, write_spec, tmp_path, "none", "execution: {memory_budget: 8KiB}\n")
    disk, disk_out = run(cli, write_spec, tmp_path, "disk", "execution: {memory_budget: 8KiB, arrays: disk}\n")

    assert whole["memory"]["arrays"] == "memory" and whole["memory"]["chunk_points"] == 40
    assert streamed["memory"]["arrays"] == "none" and streamed["memory"]["chunk_points"] < 10
    assert disk["memory"]["arrays"] == "disk"
    assert any("not kept (measures computed by streaming" in w for w in streamed["notes"])
    assert streamed["methods"]["jacobian"]["model_calls"] > 4

    # the float32 model itself rounds differently for different batch sizes (oneDNN
    # blocking), so values agree to float32 rounding, not bit for bit
    for other in (streamed, disk):
        for measure, values in whole["measures"]["values"].items():
            for output, row in values["per_output"].items():
                got = other["measures"]["values"][measure]["per_output"][output]
                np.testing.assert_allclose([got[k] for k in row], list(row.values()), rtol=1e-6, err_msg=measure)
        assert other["rankings"] == whole["rankings"]
        a, b = other["agreement"], whole["agreement"]
        assert a["entries"] == b["entries"] and a["share_within_tolerance"] == b["share_within_tolerance"]
        assert a["max_rel_error"] == pytest.approx(b["max_rel_error"], rel=1e-3)
        assert a["max_z"] == pytest.approx(b["max_z"], rel=1e-2) and a["kinks"]["count"] == b["kinks"]["count"]
        # the worst entries by z: the same ones, up to float32 rounding reordering near-ties
        assert a["worst"][0]["point"] == b["worst"][0]["point"]
        same = {(w["point"], w["output"], w["input"]) for w in a["worst"]} & \
               {(w["point"], w["output"], w["input"]) for w in b["worst"]}
        assert len(same) >= 7

    memory_arrays = np.load(whole_out / "arrays.npz")
    streamed_arrays = np.load(streamed_out / "arrays.npz")
    assert "jacobian" in memory_arrays and "jacobian" not in streamed_arrays
    assert streamed["methods"]["jacobian"]["array"] is None
    for name in ("jacobian", "rows", "finite_difference"):
        on_disk = np.load(disk_out / f"{name}.npy", mmap_mode="r")
        np.testing.assert_allclose(on_disk, memory_arrays[name], rtol=1e-5, atol=1e-7)
        assert disk["methods"][name]["array"] == f"{name}.npy"
    assert not [p for p in disk_out.iterdir() if p.name.startswith(".")]  # staging cleaned up


def test_arrays_memory_that_cannot_fit_is_a_clear_error(cli, write_spec, tmp_path):
    spec = write_spec(SPEC + "execution: {memory_budget: 8KiB, arrays: memory}\n")
    r = cli("run", spec, "--out", tmp_path / "out")
    assert r.exit_code == 3
    assert "execution.arrays: keeping the derivative arrays in memory needs" in r.stderr
    assert not (tmp_path / "out" / "report.html").exists()


def test_failed_disk_run_leaves_no_arrays_behind(cli, write_spec, functions_py, tmp_path):
    spec = write_spec("model: {callable: f.py:broken}\ninputs: {points: {values: [[1, 2]]}}\n"
                      "methods: {jacobian: {}}\nexecution: {arrays: disk}\n", f__py=functions_py)
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out).exit_code == 2
    assert list(out.iterdir()) == []


POLY_POINTS = [[1.0, 2.0], [0.5, -1.0], [-2.0, 0.25]]


def _poly_jacobian(points):
    x0, x1 = np.asarray(points).T
    return np.stack([np.stack([3 * x0**2 - 2 * x1, -2 * x0], -1), np.stack([0 * x0, 2 * x1], -1)], 1)


@pytest.mark.parametrize("compress", [None, False, True])
def test_arrays_npz_is_stored_uncompressed_unless_compress_arrays(cli, write_spec, functions_py, tmp_path, compress):
    import zipfile

    execution = "" if compress is None else f"execution: {{compress_arrays: {str(compress).lower()}}}\n"
    spec = write_spec(f"model: {{callable: f.py:poly}}\ninputs: {{points: {{values: {POLY_POINTS}}}}}\n"
                      "methods: {jacobian: {}, finite_difference: {}}\n" + execution, f__py=functions_py)
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out).exit_code == 0
    with zipfile.ZipFile(out / "arrays.npz") as z:
        kinds = {i.filename: i.compress_type for i in z.infolist()}
    want = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    assert set(kinds) >= {"jacobian.npy", "finite_difference.npy", "points.npy"}
    assert set(kinds.values()) == {want}
    arrays = np.load(out / "arrays.npz")
    np.testing.assert_allclose(arrays["jacobian"], _poly_jacobian(POLY_POINTS), rtol=1e-12)
    np.testing.assert_allclose(arrays["finite_difference"], _poly_jacobian(POLY_POINTS), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(arrays["points"], POLY_POINTS)


def test_timings_cover_every_stage_up_to_writing_the_report_and_the_arrays(cli, write_spec, functions_py, tmp_path,
                                                                            monkeypatch):
    import sensreport

    spec = write_spec(f"model: {{callable: f.py:poly}}\ninputs: {{points: {{values: {POLY_POINTS}}}}}\n"
                      "methods: {jacobian: {}}\n", f__py=functions_py)
    out = tmp_path / "out"
    assert cli("run", spec, "--out", out).exit_code == 0
    timings = json.loads((out / "results.json").read_text())["timings"]
    stages = ("load_points", "import_tensorflow", "load_model", "evaluate", "derivatives", "measures",
              "point_stats", "render_report", "write_report", "write_arrays")
    assert set(stages) <= set(timings) and all(timings[k] >= 0 for k in stages)
    # the Python API's result also knows how long results.json took (the file cannot hold it)
    import gc

    frozen = []
    real_write = sensreport.outputs.Outputs.write

    def write(self, *args, **kwargs):  # the objects alive before writing are left out of full collections
        frozen.append(gc.get_freeze_count())
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(sensreport.outputs.Outputs, "write", write)
    result = sensreport.run(spec, out=tmp_path / "api")
    assert set(stages) | {"write_results"} <= set(result.timings)
    assert frozen[0] > 10_000 and gc.get_freeze_count() == 0 and gc.isenabled()  # and put back after


def test_chunks_are_reduced_with_numpy_blas_on_one_thread(cli, write_spec, tmp_path, monkeypatch):
    """Every chunk runs with numpy's BLAS on one thread (OpenBLAS's idle threads would spin
    on the cores TensorFlow needs for the next chunk); after the sweep it has its threads back."""
    from threadpoolctl import threadpool_info

    from sensreport.analysis import measures as M

    def blas_threads():
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen = []
    update = M.MeasureAccumulator.update

    def spy(self, *args, **kwargs):
        seen.append(blas_threads())
        return update(self, *args, **kwargs)

    monkeypatch.setattr(M.MeasureAccumulator, "update", spy)
    before = blas_threads()
    run(cli, write_spec, tmp_path, "blas", "execution: {memory_budget: 8KiB}\n")
    assert len(seen) > 4 and all(s == {1} for s in seen)  # several chunks, each on one BLAS thread
    assert blas_threads() == before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_freed_temporaries_are_reused_after_keep_freed_memory():
    """A fresh process: 1 MiB temporaries made and freed in a loop take fresh pages from
    the system every time (glibc returns them), and after keep_freed_memory (called at the
    start of every run) they reuse the memory freed before."""
    import resource

    code = textwrap.dedent("""
        import resource
        import numpy as np
        from sensreport.engine import keep_freed_memory

        def churn():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(20):
                a = np.ones(1 << 17)
                b = a * 2.0
                del a, b
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

        fresh = churn()
        keep_freed_memory()
        print(fresh, churn())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fresh, kept = map(int, out.split())
    pages = 20 * 2 * (1 << 20) // resource.getpagesize()  # two 1 MiB arrays per round
    assert fresh > pages // 2  # the problem this solves: most rounds faulted their pages afresh
    assert kept < pages // 20
