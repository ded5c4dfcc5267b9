"""Each measure against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from sensreport.analysis import agreement as A
from sensreport.analysis import stats
from sensreport.analysis import measures as M

# 3 points, 2 outputs, 2 inputs
J = np.array([
    [[1.0, -2.0], [0.5, 0.0]],
    [[3.0, 2.0], [-0.5, 0.0]],
    [[-1.0, 4.0], [1.5, 0.0]],
])
X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
Y = np.array([[2.0, 1.0], [4.0, 1e-12], [8.0, 2.0]])


def test_mean_abs_rms_std_scaled():
    m = M.sensitivity_measures(J, X, Y)
    np.testing.assert_allclose(m["mean_abs"], [[5 / 3, 8 / 3], [2.5 / 3, 0]])
    np.testing.assert_allclose(m["rms"], [[np.sqrt(11 / 3), np.sqrt(24 / 3)], [np.sqrt(2.75 / 3), 0]])
    sx = np.array([np.std([1, 2, 3]), np.std([2, 4, 6])])
    np.testing.assert_allclose(m["std_scaled"], m["mean_abs"] * sx)


def test_elasticity_guards_near_zero_output():
    m = M.sensitivity_measures(J, X, Y)
    # output 0: all points usable
    e00 = np.mean([abs(1 * 1 / 2), abs(3 * 2 / 4), abs(-1 * 3 / 8)])
    # output 1: point 1 has y = 1e-12 (< 1e-6 * max|y|), left out
    e10 = np.mean([abs(0.5 * 1 / 1), abs(1.5 * 3 / 2)])
    np.testing.assert_allclose(m["elasticity"][0, 0], e00)
    np.testing.assert_allclose(m["elasticity"][1, 0], e10)


def test_positive_share():
    m = M.sensitivity_measures(J, X, Y)
    np.testing.assert_allclose(m["positive_share"], [[2 / 3, 2 / 3], [2 / 3, 0]])


def test_std_scaled_is_nan_for_one_point():
    m = M.sensitivity_measures(J[:1], X[:1], Y[:1])
    assert np.isnan(m["std_scaled"]).all()


def test_nonfinite_derivatives_are_left_out_of_averages():
    j = J.copy()
    j[0, 0, 0] = np.nan
    m = M.sensitivity_measures(j, X, Y)
    np.testing.assert_allclose(m["mean_abs"][0, 0], 2.0)
    found = M.nonfinite(j)
    assert found == {"count": 1, "nan": 1, "inf": 0, "locations": [[0, 0, 0]]}


def test_overall_gives_each_output_equal_weight():
    measure = np.array([[3.0, 1.0], [100.0, 300.0]])
    np.testing.assert_allclose(M.overall(measure), [(0.75 + 0.25) / 2, (0.25 + 0.75) / 2])
    np.testing.assert_allclose(M.overall(np.array([[1.0, 0.0], [0.0, 0.0]])), [1.0, 0.0])
    np.testing.assert_allclose(M.overall(np.array([[1.0, 0.0], [0.0, 1.0]]), "positive_share"), [0.5, 0.5])


def test_ranking_orders_desc_nan_last_stable():
    assert stats.ranking(np.array([0.1, np.nan, 0.5, 0.1])) == [2, 0, 3, 1]


def test_agreement_judges_each_entry_against_its_error_estimate():
    ad = np.ones((1, 1, 3))
    fd = np.array([[[1.0, 1.001, 1.1]]])
    error = np.array([[[1e-6, 1e-3, 1e-2]]])  # the third entry is 10 estimated errors off
    s = A.agreement(ad, fd, error)["summary"]
    assert s["entries"] == s["smooth_entries"] == 3
    assert s["share_within_tolerance"] == pytest.approx(2 / 3)
    assert s["max_z"] == pytest.approx(0.1 / (1e-2 + A.FLOOR_ULPS * 2.0**-53), rel=1e-9)
    assert s["worst"][0]["input"] == 2 and s["worst"][0]["z"] == pytest.approx(10.0, rel=1e-9)
    assert s["worst"][0]["error_estimate"] == 1e-2 and s["max_rel_error"] == pytest.approx(0.1)
    # an extra bound on the relative error, when the spec gives one
    strict = A.agreement(ad, fd, error, max_rel_error=5e-4)["summary"]
    assert strict["share_within_tolerance"] == pytest.approx(1 / 3)


def test_agreement_floor_covers_the_automatic_derivatives_round_off():
    ad = np.array([[[1.0, 1e-9]]])
    fd = np.array([[[1.0, 1e-9 + 1e-12]]])  # off by far less than float32 round-off of the row's scale
    zero = np.zeros_like(ad)
    assert A.agreement(ad, fd, zero, ad_dtype="float32")["summary"]["share_within_tolerance"] == 1.0
    assert A.agreement(ad, fd, zero, ad_dtype="float64")["summary"]["share_within_tolerance"] == 0.5


def test_kinks_are_counted_apart_and_left_out():
    ad = np.ones((1, 1, 3))
    fd = np.array([[[1.0, 1.5, 1.0]]])
    kinks = np.array([[[False, True, False]]])
    s = A.agreement(ad, fd, np.full_like(ad, 1e-6), kinks)["summary"]
    assert s["smooth_entries"] == 2 and s["share_within_tolerance"] == 1.0 and s["kinks"]["count"] == 1


def test_dead_inputs():
    j = np.zeros((2, 2, 3))
    j[1, 0, 1] = 0.3
    assert M.dead_inputs(j) == [0, 2]


def test_chunked_and_merged_accumulators_equal_the_whole():
    rng = np.random.default_rng(5)
    jac = rng.normal(size=(50, 3, 4))
    jac[7, 1, 2] = np.nan
    x = rng.normal(size=(50, 4))
    y = rng.normal(size=(50, 3))
    whole = M.sensitivity_measures(jac, x, y)
    guard = M.elasticity_guard(y)
    parts = []
    for s in range(0, 50, 13):
        acc = M.MeasureAccumulator(3, 4, guard)
        acc.update(jac[s:s + 13], x[s:s + 13], y[s:s + 13])
        parts.append(acc)
    merged = parts[0]
    for acc in parts[1:]:
        merged.merge(acc)
    for name, values in merged.result(M.input_spread(x)).items():
        np.testing.assert_allclose(values, whole[name], rtol=1e-12, err_msg=name)
    ad = jac
    fd = jac + rng.normal(scale=1e-4, size=jac.shape)
    err = np.full(jac.shape, 1e-4)
    kinks = rng.uniform(size=jac.shape) < 0.05
    full = A.agreement(ad, fd, err, kinks)["summary"]
    chunks = [A.AgreementAccumulator(3, 4, "float64") for _ in range(4)]
    for c, s in zip(chunks, range(0, 50, 13)):
        c.update(ad[s:s + 13], fd[s:s + 13], err[s:s + 13], kinks[s:s + 13], offset=s)
    for c in chunks[1:]:
        chunks[0].merge(c)
    assert chunks[0].summary() == full
    nf = [M.NonfiniteAccumulator() for _ in range(2)]
    nf[0].update(jac[:25])
    nf[1].update(jac[25:], offset=25)
    assert nf[0].merge(nf[1]).summary() == M.nonfinite(jac)


def test_median_z_from_histogram_is_within_three_percent():
    rng = np.random.default_rng(6)
    ad = np.ones((200, 1, 5))
    fd = ad + 10 ** rng.uniform(-9, -2, size=ad.shape)
    err = np.full(ad.shape, 1e-4)
    s = A.agreement(ad, fd, err)
    exact = np.median(s["z"])
    assert s["summary"]["median_z"] == pytest.approx(exact, rel=0.03)  # 100 bins per decade


def test_agreement_in_many_chunks_keeps_the_whole_arrays_worst_entries_and_sample():
    # chunks after the first keep only entries at or above the least kept one: the worst
    # entries, the scatter's sample and the counts must be those of one update of everything,
    # with all-finite chunks (the mask-free path) and a chunk holding NaN and kinks
    rng = np.random.default_rng(8)
    P, k, n = 300, 3, 4  # 3,600 entries: past the scatter's 2,000, so its worst 200 are kept too
    ad = rng.normal(size=(P, k, n))
    fd = ad + rng.normal(scale=1e-6, size=ad.shape) * rng.uniform(0.1, 100, size=ad.shape)
    err = np.full(ad.shape, 1e-6)
    kinks = np.zeros(ad.shape, dtype=bool)
    fd[150, 1, 2] = np.nan
    kinks[151, 0, :2] = True
    whole = A.AgreementAccumulator(k, n, "float64", points=P)
    whole.update(ad, fd, err, kinks)
    streamed = A.AgreementAccumulator(k, n, "float64", points=P)
    for s in range(0, P, 7):
        streamed.update(ad[s:s + 7], fd[s:s + 7], err[s:s + 7], kinks[s:s + 7], offset=s)
    assert streamed.summary() == whole.summary()
    assert streamed.summary()["kinks"]["count"] == 2 and streamed.nonfinite_entries == 1
    np.testing.assert_array_equal(streamed.cell_z, whole.cell_z)
    a, b = streamed.sample(), whole.sample()
    for field in ("point", "output", "input", "ad", "fd", "z"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_reductions_give_the_same_bits_on_one_thread_and_on_several(monkeypatch):
    """The streaming reductions and the per-point statistics spread blocks of outputs and
    batches of points over threads; every number is the same as on one thread (each block
    writes its own rows, shared sums are added in order)."""
    import threading

    from sensreport.analysis import pointstats as PS
    from sensreport.analysis.globalsa import SubspaceAccumulator

    rng = np.random.default_rng(11)
    P, k, n = 300, 12, 10
    jac = rng.normal(size=(P, k, n)).astype(np.float32)
    jac[17, 5, 3] = np.nan  # one block takes the masked path
    jac[:, :, 7] = 0.0  # a dead input
    x = rng.normal(size=(P, n))
    y = rng.normal(size=(P, k)) + 3
    monkeypatch.setattr(M, "BLOCK_VALUES", 2 * P * n)  # blocks of 2 outputs
    monkeypatch.setattr(PS, "BLOCK_ENTRIES", 2 * P * n)

    def run(threads):
        monkeypatch.setattr(M, "REDUCTION_THREADS", threads)
        acc = M.MeasureAccumulator(k, n, M.elasticity_guard(y), M.Batches(P, 8))
        sub = SubspaceAccumulator(6, n, M.input_spread(x), M.Batches(P, 8))
        nf = M.NonfiniteAccumulator()
        for s in range(0, P, 130):
            acc.update(jac[s:s + 130], x[s:s + 130], y[s:s + 130], s)
            sub.update(jac[s:s + 130], s)
            nf.update(jac[s:s + 130], s)
        measures = acc.result(M.input_spread(x))
        ps = PS.point_stats(jac, x, y, measures, ["mean_abs", "std_scaled", "elasticity"], "mean_abs",
                            acc.directions())
        assert acc.dead_inputs() == [7]
        return ([acc.sum_abs, *measures.values(), *acc.batch_sums().values(), sub.sum, sub.count,
                 *ps.spread.values(), *ps.spread_overall.values(), *ps.stability.values()], nf.summary())

    one, nf_one = run(1)
    several, nf_several = run(3)
    assert any(t.name.startswith("sensreport-reduce") for t in threading.enumerate())  # the threads ran
    assert nf_one == nf_several and nf_one["count"] == 1 and nf_one["locations"] == [[17, 5, 3]]
    assert len(one) == len(several)
    for a, b in zip(one, several):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(one[1]).all()  # mean_abs: the NaN is left out, not spread


def test_tiled_sums_equal_float64_sums_and_exact_counts(monkeypatch):
    """The streaming sums go through groups of outputs and tiles of points (counted in
    uint8 per tile); against plain float64 sums of the whole chunk: the same values to
    1e-12 and exactly the same counts, with zeros, with tiles capped at 255 points, and
    with a NaN that sends one tile down the masked path."""
    rng = np.random.default_rng(21)
    P, k, n = 1100, 7, 3  # groups of all 7 outputs; tiles of at most 255 points: 5 of 220
    jac = rng.normal(size=(P, k, n)).astype(np.float32)
    jac[rng.uniform(size=jac.shape) < 0.2] = 0.0  # neither positive nor negative
    x = rng.normal(size=(P, n)).astype(np.float32)
    y = rng.normal(size=(P, k)) + 5.0
    assert M.tiles(jac.shape) == ([slice(0, 7)], 220)
    acc = M.MeasureAccumulator(k, n, M.elasticity_guard(y))
    assert acc.update(jac, x, y) is True
    j = jac.astype(np.float64)
    np.testing.assert_allclose(acc.sum_abs, np.abs(j).sum(0), rtol=1e-12)
    np.testing.assert_allclose(acc.sum_sq, (j**2).sum(0), rtol=1e-12)
    np.testing.assert_allclose(acc.sum, j.sum(0), rtol=1e-10, atol=1e-12)
    elastic = np.abs(j * x.astype(np.float64)[:, None, :] / y[:, :, None]).sum(0)
    np.testing.assert_allclose(acc.sum_elastic, elastic, rtol=1e-12)
    np.testing.assert_array_equal(acc.positive, (jac > 0).sum(0))
    np.testing.assert_array_equal(acc.negative, (jac < 0).sum(0))
    assert (acc.positive > 255).any()  # more than a byte holds, across tiles
    np.testing.assert_array_equal(acc.count, np.full((k, n), P))

    monkeypatch.setattr(M, "GROUP_VALUES", 6)  # groups of 2 outputs: 4 groups
    bad = jac.copy()
    bad[300, 4, 1] = np.nan
    acc = M.MeasureAccumulator(k, n, M.elasticity_guard(y))
    assert acc.update(bad, x, y) is False  # a NaN seen: the caller scans for it
    count = np.full((k, n), P)
    count[4, 1] -= 1
    np.testing.assert_array_equal(acc.count, count)
    np.testing.assert_allclose(acc.sum_abs, np.nansum(np.abs(bad.astype(np.float64)), 0), rtol=1e-12)
    np.testing.assert_array_equal(acc.positive, (bad > 0).sum(0))


def test_serial_blas_sets_one_thread_and_restores():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before  # numpy's OpenBLAS is found
    with M.serial_blas():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
