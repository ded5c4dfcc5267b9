"""Each report statistic against a hand computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sensreport.analysis import stats
from sensreport.analysis import measures as M
from sensreport.analysis import summaries as S

from test_measures import J, X, Y  # 3 points, 2 outputs, 2 inputs, computed by hand there


def test_local_values_by_hand():
    np.testing.assert_array_equal(S.local_values("mean_abs", J, X, Y)[1], [[3.0, 2.0], [0.5, 0.0]])
    sx = np.array([np.std([1, 2, 3]), np.std([2, 4, 6])])  # sqrt(2/3), sqrt(8/3)
    np.testing.assert_allclose(S.local_values("std_scaled", J, X, Y)[0, 0], [1 * sx[0], 2 * sx[1]])
    e = S.local_values("elasticity", J, X, Y)
    assert e[0, 0, 1] == pytest.approx(abs(-2.0 * 2.0 / 2.0))  # |x / y * dy/dx| = 2
    assert e[2, 1, 0] == pytest.approx(1.5 * 3.0 / 2.0)
    assert np.isnan(e[1, 1]).all()  # y = 1e-12 is below the guard: left out, as in the measure


def test_local_values_average_to_the_measures():
    m = M.sensitivity_measures(J, X, Y)
    for name in ("mean_abs", "std_scaled", "elasticity"):
        np.testing.assert_allclose(np.nanmean(S.local_values(name, J, X, Y), axis=0), m[name])
    np.testing.assert_allclose(np.sqrt(np.mean(S.local_values("rms", J, X, Y) ** 2, axis=0)), m["rms"])
    with pytest.raises(ValueError):
        S.local_values("positive_share", J, X, Y)


def test_nonfinite_derivatives_become_nan():
    j = J.copy()
    j[0, 0, 0] = np.inf
    assert np.isnan(S.local_values("mean_abs", j, X, Y)[0, 0, 0])


def test_shares_and_overall_local():
    np.testing.assert_allclose(stats.shares(np.array([[3.0, 1.0], [0.0, 0.0]])), [[0.75, 0.25], [np.nan, np.nan]])
    np.testing.assert_allclose(stats.shares(np.array([1.0, np.nan, 3.0])), [0.25, np.nan, 0.75])
    local = np.array([[[3.0, 1.0], [1.0, 1.0]],   # point 0: shares [.75 .25] and [.5 .5] -> [.625 .375]
                      [[0.0, 2.0], [0.0, 0.0]]])  # point 1: [0 1], second output all zero (left out) -> [0 1]
    np.testing.assert_allclose(S.overall_local(local), [[0.625, 0.375], [0.0, 1.0]])


def test_overall_local_matches_measures_overall_for_one_point():
    local = np.abs(J[:1])
    np.testing.assert_allclose(S.overall_local(local)[0], M.overall(local[0]))


def test_quantiles_linear_interpolation_and_nan():
    np.testing.assert_allclose(stats.quantiles(np.array([1.0, 2.0, 3.0, 4.0])), [1.75, 2.5, 3.25])
    q = stats.quantiles(np.array([[1.0, np.nan], [2.0, np.nan], [3.0, 5.0]]))
    np.testing.assert_allclose(q[:, 0], [1.5, 2.0, 2.5])
    np.testing.assert_allclose(q[:, 1], [5.0, 5.0, 5.0])
    assert np.isnan(stats.quantiles(np.array([[np.nan], [np.nan]]))).all()


def test_rank_positions_inverse_of_ranking():
    v = np.array([0.1, np.nan, 0.5, 0.1])
    assert stats.rank_positions(v).tolist() == [2, 4, 1, 3]
    order = stats.ranking(v)
    assert [int(stats.rank_positions(v)[j]) for j in order] == [1, 2, 3, 4]
    np.testing.assert_array_equal(stats.rank_positions(np.array([[1.0, 3.0], [5.0, 4.0]]), axis=0), [[2, 2], [1, 1]])


def test_average_ranks_ties():
    assert stats.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert stats.average_ranks(np.array([[1.0, 1.0, 1.0], [np.nan, 2.0, 2.0]])).tolist() == [[2, 2, 2], [1, 2.5, 2.5]]


def test_ranks_and_rank_agreement_match_scipy_with_ties_and_nan():
    # rows with and without ties (zero derivatives of dead units), NaN in some: the fast
    # path (positions) and the tie path must both give scipy's average ranks
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(7)
    local = np.abs(rng.normal(size=(40, 3, 9)))
    local[::3, :, :4] = 0.0  # ties
    local[5, 1, 2] = np.nan
    local[7, 2, :] = 1.0  # a constant row: no order, NaN correlation
    local[8, 0, 5:] = 5.0  # the three largest tied with a fourth: input order decides the top 3
    local[10, 1, [1, 6]] = 9.0  # a tie at the top only
    aggregate = np.abs(rng.normal(size=(3, 9)))
    aggregate[1, :2] = 0.0
    keyed = np.where(np.isnan(local), -np.inf, local)
    np.testing.assert_array_equal(stats.average_ranks(local), rankdata(keyed, axis=-1))
    rho, overlap = stats.rank_agreement(local, aggregate[None], 3)
    for p in range(40):
        for i in range(3):
            want = spearmanr(keyed[p, i], aggregate[i]).statistic if p != 7 or i != 2 else np.nan
            np.testing.assert_allclose(rho[p, i], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(rho, stats.spearman(local, aggregate[None]))
    np.testing.assert_array_equal(overlap, stats.top_k_overlap(local, aggregate[None], 3))
    for empty in (local[:0], local[:, :0]):  # no points, or no outputs: empty results of the right shape
        got = stats.rank_agreement(empty, aggregate[None, : empty.shape[1]], 3)
        assert got[0].shape == got[1].shape == empty.shape[:2]


def test_spearman_by_hand():
    # no ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert stats.spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4])) == pytest.approx(0.8)
    # ties: Pearson of ranks [1.5, 1.5, 3] and [1, 2, 3] = 1.5 / sqrt(1.5 * 2)
    assert stats.spearman(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(1.5 / np.sqrt(3.0))
    assert stats.spearman(np.array([4.0, 3, 2]), np.array([1.0, 2, 3])) == pytest.approx(-1.0)
    assert np.isnan(stats.spearman(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])))


def test_top_k_overlap():
    a = np.array([5.0, 4, 3, 2, 1])
    assert stats.top_k_overlap(a, np.array([1.0, 4, 3, 2, 5]), 2) == 0.5  # {0, 1} vs {4, 1}
    assert stats.top_k_overlap(a, a, 3) == 1.0
    assert stats.top_k_overlap(a, -a, 2) == 0.0


def test_rank_stability_same_and_reversed_order():
    aggregate = np.array([[3.0, 2.0, 1.0]])
    local = np.array([[[30.0, 20.0, 10.0]],   # same order as the aggregate
                      [[1.0, 2.0, 3.0]]])     # reversed
    s = S.rank_stability(local, aggregate, k=1)
    np.testing.assert_allclose(s["spearman"], [[1.0], [-1.0]])
    np.testing.assert_allclose(s["overlap"], [[1.0], [0.0]])
    np.testing.assert_allclose(s["median_spearman"], [0.0])
    np.testing.assert_allclose(s["mean_overlap"], [0.5])


def test_sign_shares_and_signed_mean():
    pos, neg = S.sign_shares(J)
    np.testing.assert_allclose(pos, [[2 / 3, 2 / 3], [2 / 3, 0.0]])
    np.testing.assert_allclose(neg, [[1 / 3, 1 / 3], [1 / 3, 0.0]])  # zeros are neither
    d = np.array([[[1.0]], [[np.nan]], [[-2.0]]])
    assert [float(v) for v in S.sign_shares(d)[0].ravel()] == [0.5]
    np.testing.assert_allclose(S.signed_mean(J), [[1.0, 4 / 3], [0.5, 0.0]])
    assert S.signed_mean(d)[0, 0] == -0.5


def test_direction_stats_in_chunks_equal_the_whole_array():
    d = np.random.default_rng(0).normal(size=(11, 2, 3))
    d[4, 1, 2] = np.nan
    d[5, 0, 0] = 0.0
    stats = S.direction_stats(d, chunk_points=3)
    np.testing.assert_allclose(stats["mean"], S.signed_mean(d))
    np.testing.assert_allclose(stats["positive"], S.sign_shares(d)[0])
    np.testing.assert_allclose(stats["negative"], S.sign_shares(d)[1])


def test_local_values_of_some_points_use_the_whole_runs_spread_and_guard():
    spread, guard = np.array([10.0, 20.0]), np.array([100.0, 0.0])
    np.testing.assert_allclose(S.local_values("std_scaled", J[:1], X[:1], Y[:1], spread=spread)[0, 0], [10.0, 40.0])
    e = S.local_values("elasticity", J[:1], X[:1], Y[:1], guard=guard)
    assert np.isnan(e[0, 0]).all()  # |y| = 2 is below the guard 100
    assert e[0, 1, 0] == pytest.approx(0.5 * 1.0 / 1.0)


def test_clip_range_percentile_symmetric_and_small():
    c = S.clip_range(np.arange(101.0), min_count=1)
    assert c == {"low": 0.0, "high": 98.0, "clipped": 2, "total": 101}
    s = S.clip_range(np.array([-3.0, 1.0, 2.0, -100.0, np.nan]), percentile=50, symmetric=True, min_count=1)
    assert s == {"low": -2.5, "high": 2.5, "clipped": 2, "total": 4}  # median of |v| = 2.5
    # a handful of cells: nothing is an outlier, the full range is used
    assert S.clip_range(np.array([-3.0, 1.0, 2.0, -100.0]), symmetric=True) == {
        "low": -100.0, "high": 100.0, "clipped": 0, "total": 4}
    assert S.clip_range(np.zeros(5), symmetric=True)["high"] == 1.0
    assert S.clip_range(np.array([np.nan]))["total"] == 0


def test_subsample_indices():
    assert S.subsample_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert S.subsample_indices(3, 5).tolist() == [0, 1, 2]
    assert S.subsample_indices(2000, 1).tolist() == [0]
    idx = S.subsample_indices(2000, 30)
    assert len(idx) == 30 and idx[0] == 0 and idx[-1] == 1999 and np.all(np.diff(idx) > 0)


def test_image_axes():
    assert S.image_axes([5]) is None
    assert S.image_axes([4, 6]) == {"height": 4, "width": 6, "reduced": []}
    assert S.image_axes([28, 28, 1]) == {"height": 28, "width": 28, "reduced": [2]}
    assert S.image_axes([32, 32, 3]) == {"height": 32, "width": 32, "reduced": [2]}
    assert S.image_axes([3, 32, 32]) == {"height": 32, "width": 32, "reduced": [0]}
    assert S.image_axes([2, 3, 4, 5]) == {"height": 2, "width": 3, "reduced": [2, 3]}


def test_to_image_reduces_channels_by_mean_abs():
    v = np.array([1.0, -3.0, 2.0, 2.0, 0.0, 0.0, -1.0, 5.0])  # shape [2, 2, 2], channels last
    np.testing.assert_allclose(S.to_image(v, [2, 2, 2]), [[2.0, 2.0], [0.0, 3.0]])
    np.testing.assert_allclose(S.to_image(v, [2, 2, 2], absolute=False), [[-1.0, 2.0], [0.0, 2.0]])
    batch = np.stack([v, 2 * v])
    assert S.to_image(batch, [2, 2, 2]).shape == (2, 2, 2)
    np.testing.assert_allclose(S.to_image(np.arange(6.0), [2, 3]), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(ValueError):
        S.to_image(v, [8])


def test_interaction_partners_from_one_rank_correlation_matrix():
    # y = x0 * x1 + x2: d/dx0 = x1 goes with x1, d/dx1 = x0 with x0, d/dx2 = 1 is constant
    rng = np.random.default_rng(11)
    x = rng.normal(size=(50, 4))
    d = np.stack([x[:, 1], x[:, 0], np.ones(50), np.round(x[:, 3] ** 2)], axis=1)  # ties in the last
    corr = S.slope_correlations(d, x)
    np.testing.assert_allclose(corr, stats.spearman(d.T[:, None, :], x.T[None, :, :]), rtol=1e-12, atol=1e-13)
    assert np.isnan(corr[2]).all()  # a constant derivative has no order
    partners = S.interaction_partners(d, x)
    assert partners[:3].tolist() == [1, 0, 2]  # the constant one keeps itself
    assert S.interaction_partners(d, x, [3, 0]).tolist() == [partners[3], 1]



def test_quantiles_are_numpys_nanpercentile_with_nan_inf_and_ties():
    """The sorted-copy percentiles give np.nanpercentile's numbers exactly, whatever the
    axis, with NaN (left out per slice, all-NaN slices NaN), infinities and ties."""
    rng = np.random.default_rng(7)
    for trial in range(120):
        shape = tuple(int(s) for s in rng.integers(1, 9, size=rng.integers(1, 4)))
        v = rng.random(shape) * 10.0 ** rng.integers(-3, 3)
        if trial % 3 == 0:
            v[rng.random(shape) < 0.3] = np.nan
        if trial % 5 == 0:
            v = np.round(v, 1)
        if trial % 7 == 0 and v.size > 2:
            v.flat[1], v.flat[2] = np.inf, -np.inf
        axis = int(rng.integers(0, v.ndim))
        q = [(25, 50, 75), (2.5, 97.5), (0, 100), (33.3,)][trial % 4]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            expected = np.nanpercentile(v, q, axis=axis)
        got = stats.quantiles(v, q, axis)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("case", ["finite float32", "nan and zero outputs", "float64, a constant input"])
def test_point_stats_spread_is_the_quartiles_of_every_measures_local_values(case, monkeypatch):
    """point_stats sorts |dy/dx| once (in float32 when every derivative is finite) for mean
    |dy/dx|, RMS and std-scaled (its order statistics times each input's spread): the
    quartiles are those of each measure's own per-point values, exactly; so are the
    elasticities' with outputs at zero (NaN left out) and the overall shares'."""
    from sensreport.analysis import pointstats as PS

    rng = np.random.default_rng(3)
    P, k, n = 150, 6, 5
    jac = rng.normal(size=(P, k, n)).astype(np.float32 if case == "finite float32" else np.float64)
    x = rng.normal(size=(P, n))
    y = rng.normal(size=(P, k))
    if case == "nan and zero outputs":
        jac[4, 1, 2], jac[9, 0, 0] = np.nan, np.inf
        y[::7, 2] = 0.0  # a ReLU head at zero: no elasticity there
    if case == "float64, a constant input":
        x[:, 3] = 2.0  # zero spread: std-scaled values of 0
    monkeypatch.setattr(PS, "BLOCK_ENTRIES", 2 * P * n)  # blocks of 2 outputs
    measures = {m: np.abs(rng.normal(size=(k, n))) for m in S.LOCAL_MEASURES}
    order = ["std_scaled", "mean_abs", "rms", "elasticity"]
    ps = PS.point_stats(jac, x, y, measures, order, "std_scaled")
    spread, guard = M.input_spread(x), M.elasticity_guard(y)
    for m in order:
        local = S.local_values(m, jac, x, y, spread=spread, guard=guard)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            np.testing.assert_array_equal(ps.spread[m], np.nanpercentile(local, (25, 50, 75), axis=0))
            np.testing.assert_array_equal(ps.spread_overall[m],
                                          np.nanpercentile(S.overall_local(local), (25, 50, 75), axis=0))
    if case == "nan and zero outputs":
        assert np.isnan(S.local_values("elasticity", jac, x, y)[::7, 2]).all()
        assert np.isfinite(ps.spread["elasticity"]).all()
