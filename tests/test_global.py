"""Global sensitivity from exact derivatives: confidence intervals of the measures, Sobol'
bounds and active subspaces, against closed forms.

Closed forms used:
- ``f(x) = sum_j c_j x_j^2`` on U(0, 1)^n: ``df/dx_j = 2 c_j x_j``, so mean |df/dx_j| =
  ``c_j``, E[(df/dx_j)^2] = ``4 c_j^2 / 3``; its shares of mean |df/dx| are ``c / sum c``.
- The Ishigami function on U(-pi, pi)^3 (a = 7, b = 0.1): total Sobol' indices 0.5576,
  0.4424, 0.2437 (Saltelli et al., Global Sensitivity Analysis: The Primer, 2008), DGSM
  ``nu_1 = (1 + 2 b pi^4 / 5 + b^2 pi^8 / 9) / 2``, ``nu_2 = a^2 / 2``,
  ``nu_3 = 8 b^2 pi^6 / 7``, variance ``a^2 / 8 + b pi^4 / 5 + b^2 pi^8 / 18 + 1 / 2``.
- ``f(x) = sin(w . x)``: every gradient is parallel to ``w``, so ``E[g g^T]`` has rank one.
"""

from __future__ import annotations

import numpy as np
import pytest

from sensreport.analysis import globalsa as G
from sensreport.analysis.measures import Batches, MeasureAccumulator

A, B = 7.0, 0.1
ISHIGAMI_TOTAL = np.array([0.5576, 0.4424, 0.2437])
ISHIGAMI_NU = np.array([(1 + 2 * B * np.pi**4 / 5 + B**2 * np.pi**8 / 9) / 2, A**2 / 2, 8 * B**2 * np.pi**6 / 7])
ISHIGAMI_VAR = A**2 / 8 + B * np.pi**4 / 5 + B**2 * np.pi**8 / 18 + 0.5


def ishigami(x):
    return np.sin(x[:, 0]) + A * np.sin(x[:, 1]) ** 2 + B * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_grad(x):
    return np.stack([np.cos(x[:, 0]) * (1 + B * x[:, 2] ** 4), A * np.sin(2 * x[:, 1]),
                     4 * B * x[:, 2] ** 3 * np.sin(x[:, 0])], axis=1)


def accumulate(jac, points, outputs, chunk=None, batches=G.INTERVAL_BATCHES):
    acc = MeasureAccumulator(jac.shape[1], jac.shape[2], np.zeros(jac.shape[1]), Batches(len(jac), batches))
    step = chunk or len(jac)
    for s in range(0, len(jac), step):
        acc.update(jac[s:s + step], points[s:s + step], outputs[s:s + step], s)
    return acc


def intervals(acc, spread, seed=0, level=0.95):
    return G.batch_intervals(acc.batch_sums(), spread, level, seed)


def quadratic(rng, points, c):
    x = rng.uniform(0, 1, (points, len(c)))
    jac = (2 * c * x)[:, None, :]
    y = (c * x**2).sum(1, keepdims=True) + 1.0
    return x, jac, y


def test_measure_intervals_cover_the_closed_form_in_at_least_90_percent_of_50_designs():
    c = np.array([1.0, 0.5, 2.0])
    truth = {"mean_abs": c, "rms": np.sqrt(4 * c**2 / 3)}
    covered = {m: np.zeros(3) for m in truth}
    for seed in range(50):
        x, jac, y = quadratic(np.random.default_rng(seed), 256, c)
        iv = intervals(accumulate(jac, x, y), np.ones(3), seed)
        for m, t in truth.items():
            low, high = iv.measures[m]
            covered[m] += (low[0] <= t) & (t <= high[0])
    for m, hits in covered.items():  # 150 intervals per measure at a nominal 95 %
        assert hits.sum() / 150 >= 0.9, (m, hits)


def test_intervals_do_not_depend_on_chunking_and_shrink_as_one_over_root_points():
    c = np.array([1.0, 0.5])
    x, jac, y = quadratic(np.random.default_rng(3), 4096, c)
    whole = intervals(accumulate(jac, x, y), np.ones(2))
    chunked = intervals(accumulate(jac, x, y, chunk=100), np.ones(2))  # chunks cross the batches' edges
    for m in whole.measures:
        for a, b in zip(whole.measures[m], chunked.measures[m]):
            np.testing.assert_allclose(b, a, rtol=1e-12, equal_nan=True)
    # mean |df/dx_j| = c_j mean(2x): sd of 2 c_j x is 2 c_j / sqrt(12); a 95 % interval is about
    # 2 x 1.96 sd / sqrt(P) wide (within the bootstrap's own noise over 32 batches)
    low, high = whole.measures["mean_abs"]
    expected = 2 * 1.959964 * 2 * c / np.sqrt(12) / np.sqrt(4096)
    np.testing.assert_allclose(high[0] - low[0], expected, rtol=0.35)
    quarter = intervals(accumulate(jac[:1024], x[:1024], y[:1024]), np.ones(2)).measures["mean_abs"]
    ratio = (quarter[1] - quarter[0]) / (high - low)
    assert np.all((ratio > 1.3) & (ratio < 3.0)), ratio  # about 2: a quarter of the points
    # share positive is 1 in every batch: its interval is [1, 1]
    np.testing.assert_allclose(np.asarray(whole.measures["positive_share"]), 1.0)


def test_batches_split_chunks_at_fixed_point_indices():
    b = Batches(10, 4)
    assert list(b.edges) == [0, 2, 5, 7, 10]
    assert list(b.pieces(0, 10)) == [(0, slice(0, 2)), (1, slice(2, 5)), (2, slice(5, 7)), (3, slice(7, 10))]
    assert list(b.pieces(4, 4)) == [(1, slice(0, 1)), (2, slice(1, 3)), (3, slice(3, 4))]
    assert Batches(3, 32).count == 3
    c = np.array([1.0, 2.0])
    x, jac, y = quadratic(np.random.default_rng(0), 100, c)
    plain = MeasureAccumulator(1, 2, np.zeros(1))
    plain.update(jac, x, y)
    batched = accumulate(jac, x, y, chunk=7)
    np.testing.assert_allclose(batched.sum_abs, plain.sum_abs, rtol=1e-12)
    np.testing.assert_allclose(batched.batch_sums()["sum_abs"].sum(0), plain.sum_abs, rtol=1e-12)
    assert batched.batch_sums()["count"].shape == (32, 1, 2)


def test_share_and_rank_intervals_cover_the_closed_form_shares():
    c = np.array([1.0, 0.5, 2.0])
    truth = c / c.sum()
    hits = np.zeros(3)
    for seed in range(50):
        x, jac, y = quadratic(np.random.default_rng(100 + seed), 256, c)
        iv = intervals(accumulate(jac, x, y), np.ones(3), seed)
        low, high = iv.shares["mean_abs"]
        hits += (low[0] <= truth) & (truth <= high[0])
        ranks_low, ranks_high = iv.overall_ranks["mean_abs"]
        assert ranks_low[2] == ranks_high[2] == 1  # input 2 is far ahead in every replicate
    assert hits.sum() / 150 >= 0.9, hits


def test_ishigami_dgsm_and_sobol_bounds_from_a_sobol_design():
    qmc = pytest.importorskip("scipy.stats.qmc")
    u = qmc.Sobol(3, scramble=True, seed=7).random(2**14)
    x = -np.pi + 2 * np.pi * u
    grad = ishigami_grad(x)[:, None, :]
    y = ishigami(x)[:, None]
    acc = accumulate(grad, x, y, chunk=1000)
    rms = acc.result(np.full(3, np.nan))["rms"]
    iv = intervals(acc, np.ones(3)).measures
    np.testing.assert_allclose(rms[0] ** 2, ISHIGAMI_NU, rtol=1e-3)  # DGSM within 0.1 % at 2^14 points
    constants = np.full(3, (2 * np.pi) ** 2 / np.pi**2)  # uniform on [-pi, pi]: (b - a)^2 / pi^2
    sb = G.sobol_bounds(rms, iv["rms"], constants, y, [0])
    np.testing.assert_allclose(sb.bound[0], constants * rms[0] ** 2 / np.var(y[:, 0], ddof=1), rtol=1e-12)
    np.testing.assert_allclose(sb.bound[0], constants * ISHIGAMI_NU / ISHIGAMI_VAR, rtol=2e-3)
    assert np.all(sb.bound[0] >= ISHIGAMI_TOTAL)
    assert np.all(sb.low[0] <= sb.bound[0]) and np.all(sb.bound[0] <= sb.high[0])
    none = G.sobol_bounds(rms, iv["rms"], np.full(3, np.nan), y, [0])
    assert none is None


def test_group_bound_is_the_sum_of_its_members_bounds():
    rms = np.array([[1.0, 2.0, 3.0]])
    y = np.random.default_rng(0).normal(0, 2, (500, 1))
    sb = G.sobol_bounds(rms, (rms * 0.9, rms * 1.1), np.array([1.0, 0.5, np.nan]), y, [0], {"ab": (0, 1), "c": (2,)})
    np.testing.assert_allclose(sb.groups["ab"][0], sb.bound[0, 0] + sb.bound[0, 1])
    assert np.isnan(sb.bound[0, 2]) and np.isnan(sb.groups["c"][0])


def test_active_subspace_of_sin_w_dot_x_is_w_direction_whatever_the_chunks():
    rng = np.random.default_rng(5)
    w = np.array([0.5, -1.0, 2.0, 0.1, 0.0])
    x = rng.normal(0, [1.0, 2.0, 0.5, 3.0, 1.0], (3000, 5))
    grad = (np.cos(x @ w)[:, None] * w)[:, None, :]
    spread = x.std(0)
    whole = G.SubspaceAccumulator(1, 5, spread)
    whole.update(grad)
    parts = [G.SubspaceAccumulator(1, 5, spread) for _ in range(3)]
    for part, sl in zip(parts, np.array_split(np.arange(3000), 3)):
        part.update(grad[sl])
    merged = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_allclose(merged.matrix(), whole.matrix(), rtol=1e-10, atol=1e-14)
    sub = G.active_subspace(whole, [0], x)
    ev, v1 = sub.eigenvalues[0], sub.eigenvectors[0, 0]
    direction = w * spread / np.linalg.norm(w * spread)  # gradients w.r.t. x / std are w * std
    np.testing.assert_allclose(np.abs(v1 @ direction), 1.0, atol=1e-10)
    assert ev[1] < 1e-6 * ev[0]
    np.testing.assert_allclose(ev[0], np.mean(np.cos(x @ w) ** 2) * np.sum((w * spread) ** 2), rtol=1e-10)
    assert np.all(np.diff(ev) <= 1e-12)  # descending
    assert v1[np.argmax(np.abs(v1))] > 0  # the sign convention: the largest weight positive
    # the summary plot's first active variable is w1 . (x - mean) / std at the sampled points
    z = ((x[sub.sample] - x.mean(0)) / spread) @ v1
    np.testing.assert_allclose(sub.first_variable[0], z, rtol=1e-10, atol=1e-12)


def test_eigenvalue_intervals_cover_the_closed_form_eigenvalues():
    # f = x1^2 + 0.3 x2 on U(0,1)^2 with unit scale: E[g g^T] = [[4/3, 0.3], [0.3, 0.09]]
    c = np.array([[4 / 3, 0.3], [0.3, 0.09]])
    truth = np.linalg.eigvalsh(c)[::-1]
    hits = np.zeros(2)
    for seed in range(50):
        x = np.random.default_rng(seed).uniform(0, 1, (400, 2))
        grad = np.stack([2 * x[:, 0], np.full(400, 0.3)], axis=1)[:, None, :]
        acc = G.SubspaceAccumulator(1, 2, np.ones(2), Batches(400, G.INTERVAL_BATCHES))
        for s in range(0, 400, 64):
            acc.update(grad[s:s + 64], s)
        sub = G.active_subspace(acc, [0], x)
        G.eigen_intervals(sub, acc, 0.95, seed)
        hits += (sub.low[0] <= truth) & (truth <= sub.high[0])
    assert hits.sum() / 100 >= 0.9, hits


def test_non_finite_gradients_are_left_out_of_the_subspace():
    grad = np.ones((10, 1, 2))
    grad[3, 0, 1] = np.nan
    acc = G.SubspaceAccumulator(1, 2, np.ones(2))
    acc.update(grad)
    assert acc.count[0] == 9
    np.testing.assert_allclose(acc.matrix()[0], np.ones((2, 2)))


def test_overlaps_name_neighbours_whose_intervals_meet():
    low, high = np.array([0.5, 0.45, 0.1]), np.array([0.7, 0.6, 0.2])
    assert G.overlaps([0, 1, 2], low, high) == [(0, 1)]
    assert G.overlaps([0, 2], low, high) == []


def test_sizes_decide_what_is_computed():
    assert G.subspace_outputs(64, 128, 1 << 30) == G.SUBSPACE_OUTPUTS
    assert G.subspace_outputs(3, 128, 1 << 30) == 3
    assert G.subspace_outputs(10, G.SUBSPACE_MAX_INPUTS + 1, 1 << 40) == 0
    assert G.subspace_outputs(20, 2000, 1 << 30) == 0  # 640 MB of matrices in a 1 GiB budget
    assert G.interval_batches(4096, 64, 128, 1 << 30) == G.INTERVAL_BATCHES
    assert G.interval_batches(5, 1, 3, 1 << 30) == 0  # too few points for batches
    assert G.interval_batches(10_000, 1000, 10_000, 1 << 30) == 0  # sums would not fit
    assert G.eigen_batches(4, 10, 32) and not G.eigen_batches(20, 128, 32)


def test_direction_changes_compare_leading_eigenvectors_by_input_name():
    from sensreport.analysis.baseline import direction_changes

    def doc(names, v):
        return {"inputs": {"names": names},
                "global": {"active_subspace": {"per_output": {"y": {"eigenvectors": [v]}}}}}

    same = direction_changes(doc(["a", "b"], [0.6, 0.8]), doc(["b", "a"], [-0.8, -0.6]))
    np.testing.assert_allclose(same["y"]["cosine"], 1.0)
    assert not same["y"]["changed"]
    turned = direction_changes(doc(["a", "b"], [1.0, 0.0]), doc(["a", "b"], [0.6, 0.8]))
    np.testing.assert_allclose(turned["y"]["cosine"], 0.6)
    assert turned["y"]["changed"]
    assert direction_changes({"global": {"active_subspace": None}}, doc(["a"], [1.0])) == {}


W = [0.5, -1.0, 2.0, 0.1]


def sine(x):
    import tensorflow as tf

    return tf.stack([tf.sin(tf.reduce_sum(x * tf.constant(W, x.dtype), axis=1)), x[:, 0] ** 2 + x[:, 1]], axis=1)


def test_a_run_reports_intervals_and_active_subspaces_in_results_and_report(tmp_path):
    import json

    import sensreport

    spec = {"title": "global", "model": {"callable": sine, "dtype": "float64", "batched": True},
            "inputs": {"names": ["a", "b", "c", "d"],
                       "points": {"sample": {"n": 512, "seed": 3, "distributions": {"default": {"uniform": [-1, 1]}}}}},
            "methods": {"jacobian": {}}, "sensitivity": {"confidence": 0.9}}
    result = sensreport.run(spec, out=tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    conf = doc["measures"]["confidence"]
    assert conf["level"] == 0.9 and conf["batches"] == 32
    for m in ("mean_abs", "rms", "std_scaled", "elasticity", "positive_share"):
        for out, by_input in conf[m]["per_output"].items():
            for name, (low, high) in by_input.items():
                value = doc["measures"]["values"][m]["per_output"][out][name]
                assert low <= value <= high, (m, out, name)
    assert set(conf["ranks"]["mean_abs"]["overall"]) == {"a", "b", "c", "d"}
    sub = doc["global"]["active_subspace"]["per_output"]["y[0]"]
    w = np.array(W) * result.subspace.scale
    np.testing.assert_allclose(np.abs(np.array(sub["eigenvectors"][0]) @ (w / np.linalg.norm(w))), 1.0, atol=1e-10)
    assert sub["eigenvalues"][1] < 1e-6 * sub["eigenvalues"][0]
    low, high = sub["eigenvalue_intervals"][0]
    assert low <= sub["eigenvalues"][0] <= high
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="global"' in html and "varies along one direction only" in html
    with np.load(tmp_path / "out" / "arrays.npz") as arrays:
        np.testing.assert_allclose(arrays["active_subspace_eigenvectors"], result.subspace.eigenvectors)


def test_group_intervals_are_those_of_the_summed_members():
    c = np.array([1.0, 0.5, 2.0])
    x, jac, y = quadratic(np.random.default_rng(9), 512, c)
    acc = accumulate(jac, x, y)
    spread = x.std(0)
    got = G.group_intervals(acc.batch_sums(), {"ab": (0, 1), "c": (2,)}, spread, 0.95, seed=4)
    alone = intervals(acc, spread, seed=4)
    for m in ("mean_abs", "rms", "std_scaled", "elasticity"):  # a one-member group is its member
        np.testing.assert_allclose(got[m][0][:, 1], alone.measures[m][0][:, 2], rtol=1e-12)
        np.testing.assert_allclose(got[m][1][:, 1], alone.measures[m][1][:, 2], rtol=1e-12)
    value = acc.result(spread)["mean_abs"][0, :2].sum()
    assert got["mean_abs"][0][0, 0] <= value <= got["mean_abs"][1][0, 0]


G_A = [0.0, 1.0, 4.5, 9.0]


def g_function(x):
    import tensorflow as tf

    a = tf.constant(G_A, x.dtype)
    return tf.reduce_prod((tf.abs(4 * x - 2) + a) / (1 + a), axis=1, keepdims=True)


def test_sobol_g_function_dgsm_bounds_and_total_indices_through_a_run():
    """Sobol' g-function on U(0, 1)^4 through the engine (a Sobol' design of 2^14 points):
    nu_i = 16 / (1 + a_i)^2 prod_{j != i} (1 + 1 / (3 (1 + a_j)^2)); the total index
    S_T,i = V_i prod_{j != i} (1 + V_j) / V with V_i = 1 / (3 (1 + a_i)^2) and
    V = prod (1 + V_i) - 1 (Saltelli et al. 2008, sec. 3.6); the Poincaré constant of
    U(0, 1) is 1 / pi^2."""
    import sensreport

    a = np.array(G_A)
    vi = 1 / (3 * (1 + a) ** 2)
    second = 1 + vi  # E[g_j^2]
    nu = np.array([16 / (1 + a[i]) ** 2 * np.prod(np.delete(second, i)) for i in range(4)])
    var = np.prod(1 + vi) - 1
    total = np.array([vi[i] * np.prod(np.delete(1 + vi, i)) / var for i in range(4)])
    spec = {"model": {"callable": g_function, "dtype": "float64", "batched": True},
            "inputs": {"names": ["x1", "x2", "x3", "x4"],
                       "points": {"sample": {"n": 2**14, "seed": 5, "method": "sobol",
                                             "distributions": {"default": {"uniform": [0, 1]}}}}},
            "methods": {"jacobian": {}}}
    result = sensreport.run(spec, write=False)
    rms = result.measures["rms"][0]
    np.testing.assert_allclose(rms**2, nu, rtol=1e-3)  # DGSM within 0.1 %
    bound = result.sobol.bound[0]
    np.testing.assert_allclose(result.sobol.constants, 1 / np.pi**2)
    np.testing.assert_allclose(bound, rms**2 / np.pi**2 / np.var(result.outputs[:, 0], ddof=1), rtol=1e-12)
    assert np.all(bound >= total), (bound, total)
    assert list(np.argsort(-bound)) == list(np.argsort(-total))
    low, high = result.sobol.low[0], result.sobol.high[0]
    assert np.all((low <= bound) & (bound <= high))


def test_t_quantile_matches_scipy():
    from scipy.stats import t

    for dof in (7, 10, 31, 100):
        for q in (0.9, 0.95, 0.975, 0.995):
            assert G.t_quantile(q, dof) == pytest.approx(t.ppf(q, dof), abs=2e-3 if dof < 10 else 1e-4)
    assert G.widening(32, 0.95) == pytest.approx(np.sqrt(32 / 31) * t.ppf(0.975, 31) / 1.959964, rel=1e-4)


def test_intervals_do_not_depend_on_the_blocks_of_outputs_or_the_threads(monkeypatch):
    """The bootstrap works a block of outputs at a time on the reduction threads. The
    same blocks on one thread and on three give the same intervals, bit for bit; one
    output per block and all of them in one block give them to the last bits of the
    sums' rounding (each block is its own product over the batches and adds its outputs'
    shares before they join the others')."""
    from sensreport.analysis import measures as M

    rng = np.random.default_rng(9)
    P, k, n = 640, 7, 5
    x = rng.uniform(0, 1, (P, n))
    jac = rng.normal(size=(P, k, n)) * rng.uniform(0.1, 3, (k, n))
    jac[::11, 2, 1] = 0.0
    y = rng.normal(size=(P, k)) + 4
    sums = accumulate(jac, x, y).batch_sums()
    spread = x.std(0)

    def bootstrap(block_values, threads):
        monkeypatch.setattr(G, "INTERVAL_BLOCK_VALUES", block_values)
        monkeypatch.setattr(M, "REDUCTION_THREADS", threads)
        return G.batch_intervals(sums, spread, 0.9, seed=4)

    one = bootstrap(1, 1)  # a block per output
    threaded = bootstrap(1, 3)
    whole = bootstrap(1 << 30, 3)
    for field in ("measures", "shares", "overall", "overall_ranks"):
        for m, pair in getattr(one, field).items():
            for a, b in zip(pair, getattr(threaded, field)[m]):
                np.testing.assert_array_equal(a, b)
    for field in ("measures", "shares", "overall", "overall_ranks"):
        a, b = getattr(one, field), getattr(whole, field)
        assert list(a) == list(b) and a
        for m in a:
            for lo_hi_a, lo_hi_b in zip(a[m], b[m]):
                np.testing.assert_allclose(lo_hi_a, lo_hi_b, rtol=1e-13, atol=1e-15)
    assert list(one.overall) == ["mean_abs", "rms", "std_scaled", "elasticity"]
    low, high = one.overall["mean_abs"]
    assert (low <= high).all() and (high <= 1).all()
