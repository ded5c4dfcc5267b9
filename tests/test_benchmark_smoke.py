"""The benchmark script's workloads at tiny sizes: every method runs and all agree.

Timings are not asserted (machines here are noisy); only that each strategy the
benchmark compares computes the same Jacobians. JAX is a benchmark-only extra: its
part is skipped when it is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_engine", ROOT / "benchmarks" / "bench_engine.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

TINY = {
    "mlp-wide-in": lambda: bench.mlp_workload("mlp-wide-in", [6, 16, 3], points=4),
    "mlp-wide-out": lambda: bench.mlp_workload("mlp-wide-out", [3, 16, 12], points=4),
    "cnn": lambda: bench.cnn_workload("cnn", 3, image=(8, 8, 2), filters=(4, 4), outputs=3),
}


def _check(results, groups):
    assert {r.group for r in results} >= groups
    for r in results:
        assert r.error is None, f"{r.method}: {r.error}"
        assert r.samples, f"{r.method} was not timed"
        if r.group == "fd-floor":
            continue
        assert r.max_abs_diff is not None, f"{r.method} was not compared"
        assert r.agrees, f"{r.method}: max abs diff {r.max_abs_diff:.2e} > {r.tolerance:.2e} vs {r.reference}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_tensorflow_methods_agree(name):
    w = TINY[name]()
    opts = bench.Options(repeats=1, budget_s=0.0, jax=False, naive_ad_calls=8, naive_fd_calls=16)
    results = bench.run_workload(w, opts)
    _check(results, {"sensreport", "sensreport-mode", "tf", "naive", "fd", "fd-floor", "naive-fd", "naive-fd-entry"})
    auto = next(r for r in results if r.method == "sensreport auto")
    assert auto.strategy.split(" ")[0] in bench.engine.MODES[3:]  # one of the kernels (+ XLA), never "auto"
    # The report renders from these results (no timing is judged here).
    shapes = {w.name: (len(w.points), w.n, w.m, w.macs)}
    assert bench.table(results) and bench.targets(results) and bench.summaries(results)
    assert len(bench.arithmetic(results, shapes, {"tf": 100.0})) == 7  # six lines of header, this workload's row


def test_naive_loops_are_extrapolated_from_a_subset():
    w = TINY["mlp-wide-out"]()
    results = bench.run_workload(w, bench.Options(repeats=1, budget_s=0.0, jax=False, xla=False,
                                                  naive_ad_calls=12, naive_fd_calls=6))
    naive = {r.group: r for r in results if r.group in ("naive", "naive-fd", "naive-fd-entry")}
    assert naive["naive"].extrapolated_from == 1 and naive["naive-fd"].extrapolated_from == 1
    assert all(r.points == 4 for r in naive.values())
    # the per-(input, output) loop: 3 entries (6 calls) timed, each scaled to all 4 x 3 x 12 entries
    entry = naive["naive-fd-entry"]
    assert entry.extrapolated_from == 3 and entry.unit == "entries" and len(entry.samples) == 3


def test_forward_pass_arithmetic_counts_dense_and_conv_layers():
    assert TINY["mlp-wide-in"]().macs == 6 * 16 + 16 * 3
    # 8x8x2 -> conv 3x3/2 -> 4x4x4 -> conv 3x3/2 -> 2x2x4 -> flatten 16 -> 3
    assert TINY["cnn"]().macs == 4 * 4 * (3 * 3 * 2 * 4) + 2 * 2 * (3 * 3 * 4 * 4) + 16 * 3


def test_paired_ratio_and_its_interval():
    a = bench.Result("w", "a", "tf", 1, samples=[2.0, 4.0, 2.2, 6.0, 2.0])
    b = bench.Result("w", "b", "tf", 1, samples=[1.0, 2.0, 1.0, 3.0, 1.0])
    median, lo, hi = bench.paired_ratio(a, b)
    # per-round ratios 2, 2, 2.2, 2, 2: the load that moved both rounds cancels
    assert median == 2.0 and lo == 2.0 and 2.0 <= hi <= 2.2
    assert bench.paired_ratio(a, bench.Result("w", "c", "tf", 1, samples=[1.0, 1.0])) is None


@pytest.mark.skipif(not bench.HAVE_JAX, reason="JAX is the benchmark-only extra: pip install -e .[bench]")
@pytest.mark.parametrize("name", sorted(TINY))
def test_jax_agrees_with_the_same_weights(name):
    w = TINY[name]()
    opts = bench.Options(repeats=1, budget_s=0.0, xla=False, naive=False)
    results = bench.run_workload(w, opts)
    _check(results, {"jax"})
    assert {r.method for r in results if r.group == "jax"} == {"jax jit(vmap(jacrev))", "jax jit(vmap(jacfwd))"}
    auto = next(r for r in results if r.method == "sensreport auto")
    assert auto.reference == "jax jit(vmap(jacrev))"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dgsm = _load("bench_dgsm")


def test_dgsm_closed_forms_and_sensreports_estimate_at_a_small_sobol_design():
    dgsm.self_check(points=200_000)
    case = dgsm.run_case(256, salib=False)
    # 256 Sobol' points already give each DGSM within 5 %
    assert abs(case.sensreport / dgsm.closed_form() - 1).max() < 0.05, case.sensreport
    assert "| 2^8 | x1 | 7.7196 |" in dgsm.table([case])


@pytest.mark.skipif(not dgsm.have_salib(), reason="SALib is the benchmark-only extra: pip install -e .[bench]")
def test_dgsm_salib_reference_runs():
    theirs, _ = dgsm.salib_dgsm(256)
    assert abs(theirs / dgsm.closed_form() - 1).max() < 0.2, theirs
