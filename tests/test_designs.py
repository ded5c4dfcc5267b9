"""Sampling designs and input distributions: sobol, halton, lhs and random samples, the
distributions' inverse CDFs, moments and Poincaré constants, the spec keys that declare
them, and what a run records of them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from conftest import EXAMPLES, FUNCTIONS
from sensreport.distributions import Distribution, resolve
from sensreport.errors import InputError, SpecError
from sensreport.inputs.points import design, load_points
from sensreport.spec import parse_spec

PI = math.pi


def sample_spec(sample: dict, names=("a", "b", "c"), **inputs) -> dict:
    return {"model": {"callable": "f:g"}, "inputs": {"names": list(names), "points": {"sample": sample}, **inputs},
            "methods": {"jacobian": {}}}


def sampled(sample: dict, names=("a", "b", "c")):
    spec = parse_spec(sample_spec(sample, names))
    return load_points(spec.points, spec.input_names)


def spec_problems(data: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return [p.format() for p in info.value.problems]


# --- the designs ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sobol", "halton", "lhs"])
def test_designs_give_n_points_in_the_unit_cube_fixed_by_the_seed(method):
    u = design(method, 256, 3, seed=5)
    assert u.shape == (256, 3) and u.dtype == np.float64
    assert (u >= 0).all() and (u < 1).all()
    np.testing.assert_array_equal(u, design(method, 256, 3, seed=5))
    assert not np.array_equal(u, design(method, 256, 3, seed=6))


@pytest.mark.parametrize("method", ["sobol", "lhs"])
def test_sobol_at_a_power_of_two_and_lhs_put_one_point_in_each_of_n_equal_bins(method):
    # a scrambled Sobol' net of 2^k points projects onto each axis as one point per 1/2^k
    # slice; a Latin hypercube does so by construction, for any n
    n = 1024 if method == "sobol" else 1000
    u = design(method, n, 4, seed=1)
    for j in range(4):
        assert (np.bincount((u[:, j] * n).astype(int), minlength=n) == 1).all(), j


def test_sobol_means_are_within_1e_3_of_a_half_at_2_to_the_12():
    u = design("sobol", 2 ** 12, 5, seed=3)
    assert np.abs(u.mean(axis=0) - 0.5).max() < 1e-3
    # random numbers are ~1/sqrt(12 n) = 4.5e-3 off; the design is far closer
    assert np.abs(u.mean(axis=0) - 0.5).max() < 1e-4


def test_sample_methods_map_the_design_through_each_inputs_inverse_cdf():
    dists = {"a": {"uniform": [-PI, PI]}, "b": {"normal": [1, 2]}, "c": {"triangular": [0, 1, 4]}}
    pts = sampled({"n": 512, "seed": 9, "method": "lhs", "distributions": dists})
    u = design("lhs", 512, 3, seed=9)
    np.testing.assert_allclose(pts.values[:, 0], -PI + 2 * PI * u[:, 0], rtol=1e-15)
    np.testing.assert_allclose(pts.values[:, 1], stats.norm.ppf(u[:, 1], 1, 2), rtol=1e-15)
    np.testing.assert_allclose(pts.values[:, 2], stats.triang.ppf(u[:, 2], 0.25, loc=0, scale=4), rtol=1e-15)
    assert pts.design == "lhs" and pts.seed == 9 and pts.warnings == []


def test_random_uniform_and_normal_are_the_same_numbers_as_before_designs():
    dists = {"a": {"uniform": [-1, 3]}, "b": {"normal": [2, 0.5]}, "default": {"uniform": [0, 1]}}
    pts = sampled({"n": 100, "seed": 42, "distributions": dists})
    rng = np.random.default_rng(42)
    expected = np.stack([rng.uniform(-1.0, 3.0, 100), rng.normal(2.0, 0.5, 100), rng.uniform(0.0, 1.0, 100)], axis=1)
    np.testing.assert_array_equal(pts.values, expected)
    assert pts.design == "random"
    explicit = sampled({"n": 100, "seed": 42, "method": "random", "distributions": dists})
    np.testing.assert_array_equal(explicit.values, expected)


def test_random_with_other_distributions_maps_uniform_draws_column_by_column():
    pts = sampled({"n": 50, "seed": 4, "distributions": {"a": {"uniform": [0, 2]}, "b": {"lognormal": [0, 0.5]},
                                                           "c": {"truncnormal": [0, 1, -1, 1]}}})
    rng = np.random.default_rng(4)
    np.testing.assert_array_equal(pts.values[:, 0], rng.uniform(0.0, 2.0, 50))
    np.testing.assert_allclose(pts.values[:, 1], stats.lognorm.ppf(rng.random(50), 0.5), rtol=1e-15)
    np.testing.assert_allclose(pts.values[:, 2], stats.truncnorm.ppf(rng.random(50), -1, 1), rtol=1e-15)


def test_sobol_with_n_not_a_power_of_two_warns_naming_the_nearest_powers():
    pts = sampled({"n": 1000, "method": "sobol", "distributions": {"default": {"normal": [0, 1]}}})
    assert pts.values.shape == (1000, 3) and np.isfinite(pts.values).all()
    (warning,) = pts.warnings
    assert "balance properties" in warning and "n: 512 or n: 1,024" in warning
    assert sampled({"n": 1024, "method": "sobol", "distributions": {"default": {"normal": [0, 1]}}}).warnings == []
    assert sampled({"n": 1000, "method": "halton", "distributions": {"default": {"normal": [0, 1]}}}).warnings == []


# --- the distributions ---------------------------------------------------------------------

DISTRIBUTIONS = [
    Distribution("uniform", (-2.0, 5.0)),
    Distribution("normal", (1.5, 2.0)),
    Distribution("lognormal", (0.2, 0.4)),
    Distribution("truncnormal", (0.5, 2.0, -1.0, 3.0)),
    Distribution("triangular", (-1.0, 0.0, 5.0)),
]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.kind)
def test_inverse_cdfs_over_a_sobol_design_give_the_closed_form_moments(dist):
    n = 2 ** 14
    x = dist.ppf(design("sobol", n, 1, seed=11)[:, 0])
    assert x.dtype == np.float64 and np.isfinite(x).all()
    closed = {"uniform": (1.5, 49 / 12), "normal": (1.5, 4.0),
              "lognormal": (math.exp(0.2 + 0.08), math.expm1(0.16) * math.exp(0.4 + 0.16)),
              "truncnormal": tuple(float(v) for v in stats.truncnorm.stats(-0.75, 1.25, loc=0.5, scale=2.0)),
              "triangular": ((-1 + 0 + 5) / 3, (1 + 25 + 0 + 5 - 0 - 0) / 18)}[dist.kind]
    mean, var = closed
    assert dist.mean() == pytest.approx(mean, rel=1e-12)
    assert dist.variance() == pytest.approx(var, rel=1e-12)
    # within three standard errors of random sampling (the design does far better)
    kurt = float(stats.kurtosis(x))
    assert abs(x.mean() - mean) < 3 * math.sqrt(var / n)
    assert abs(x.var() - var) < 3 * var * math.sqrt((kurt + 2) / n)


def test_poincare_constants():
    assert Distribution("uniform", (-PI, PI)).poincare_constant() == pytest.approx(4.0)
    assert Distribution("normal", (3.0, 2.0)).poincare_constant() == 4.0
    assert Distribution("lognormal", (0.0, 1.0)).poincare_constant() is None
    # truncated normal: the smaller of the Gaussian and the interval's bound
    assert Distribution("truncnormal", (0.0, 1.0, -10.0, 10.0)).poincare_constant() == 1.0
    assert Distribution("truncnormal", (0.0, 1.0, -1.0, 1.0)).poincare_constant() == pytest.approx(4 / PI ** 2)
    assert Distribution("triangular", (0.0, 1.0, 3.0)).poincare_constant() == pytest.approx(9 / PI ** 2)
    # a constant bounds the variance of f(x) = x by E[f'^2] = 1
    for d in DISTRIBUTIONS:
        c = d.poincare_constant()
        assert c is None or d.variance() <= c * (1 + 1e-12), d


def test_describe_and_to_json():
    assert Distribution("uniform", (0.0, 1.0)).describe() == "uniform on [0, 1]"
    assert Distribution("normal", (0.0, 2.0)).describe() == "normal (mean 0, std 2)"
    assert Distribution("triangular", (0.0, 1.0, 3.0)).describe() == "triangular on [0, 3] with mode 1"
    assert Distribution("uniform", (0.0, 1.0)).to_json() == {"uniform": [0.0, 1.0]}
    assert Distribution("truncnormal", (0, 1, -1, 2)).to_json() == {"truncnormal": [0.0, 1.0, -1.0, 2.0]}


def test_resolve_by_name_then_tensor_then_default():
    u, n, t = Distribution("uniform", (0.0, 1.0)), Distribution("normal", (0.0, 1.0)), Distribution("triangular",
                                                                                                   (0.0, 1.0, 2.0))
    names = ["age", "numeric[0]", "numeric[1]", "income"]
    assert resolve({"numeric[1]": t, "numeric": n, "default": u}, names) == [u, n, t, u]
    assert resolve({"age": t}, names) == [t, None, None, None]
    assert resolve({}, names) == [None] * 4


# --- the spec ------------------------------------------------------------------------------


def test_spec_builds_typed_distributions_and_the_method():
    spec = parse_spec(sample_spec({"n": 8, "method": "halton", "distributions": {
        "a": {"lognormal": [0, 1]}, "default": {"truncnormal": [0, 1, -2, 2]}}}))
    assert spec.points.method == "halton"
    assert spec.points.distributions == {"a": Distribution("lognormal", (0.0, 1.0)),
                                         "default": Distribution("truncnormal", (0.0, 1.0, -2.0, 2.0))}
    assert spec.distributions == spec.points.distributions
    assert parse_spec(sample_spec({"n": 8, "distributions": {"default": {"normal": [0, 1]}}})).points.method == "random"
    given = parse_spec({"model": {"callable": "f:g"}, "methods": {"jacobian": {}},
                        "inputs": {"names": ["a", "b"], "points": {"values": [[1, 2]]},
                                   "distributions": {"b": {"triangular": [0, 1, 2]}}}})
    assert given.distributions == {"b": Distribution("triangular", (0.0, 1.0, 2.0))}
    assert given.points.distributions == {}


@pytest.mark.parametrize("dist, message", [
    ({"uniform": [1, 1]}, "uniform: expected low < high, got [1, 1]"),
    ({"normal": [0, 0]}, "normal: expected a positive std, got 0"),
    ({"lognormal": [0, -1]}, "lognormal: expected a positive sigma (the std of the logarithm), got -1"),
    ({"truncnormal": [0, 1, 2, -2]}, "truncnormal: expected low < high, got low 2 and high -2"),
    ({"truncnormal": [0, -1, -2, 2]}, "truncnormal: expected a positive std, got -1"),
    ({"triangular": [0, 3, 2]}, "triangular: expected low <= mode <= high with low < high, got [0, 3, 2]"),
    ({"triangular": [1, 1, 1]}, "triangular: expected low <= mode <= high with low < high, got [1, 1, 1]"),
    ({"triangular": [0, 1]}, "triangular: expected 3 numbers [low, mode, high], got a list"),
    ({"truncnormal": [0, 1, 2, 3, 4]}, "truncnormal: expected 4 numbers [mean, std, low, high], got a list"),
    ({"gamma": [1, 2]}, "gamma: unknown key 'gamma'; allowed keys: uniform, normal, lognormal, truncnormal"),
    ({"uniform": [0, 1], "normal": [0, 1]}, "give exactly one of uniform, normal, lognormal, truncnormal, triangular"),
])
def test_bad_distributions_are_spec_errors_naming_the_key(dist, message):
    found = spec_problems(sample_spec({"n": 4, "distributions": {"default": dist}}))
    assert len(found) == 1, found
    assert any(f"inputs.points.sample.distributions.default.{message}" in p
               or f"inputs.points.sample.distributions.default: {message}" in p for p in found), found
    found = spec_problems({"model": {"callable": "f:g"}, "methods": {"jacobian": {}},
                           "inputs": {"names": ["a"], "points": {"values": [[1]]}, "distributions": {"a": dist}}})
    assert any(f"inputs.distributions.a.{message}" in p or f"inputs.distributions.a: {message}" in p
               for p in found), found


def test_unknown_method_and_names_and_both_distributions_are_spec_errors():
    found = spec_problems(sample_spec({"n": 4, "method": "sobel", "distributions": {"default": {"normal": [0, 1]}}}))
    assert found == ["inputs.points.sample.method: expected one of random, sobol, halton, lhs, got \"sobel\""]
    found = spec_problems({"model": {"callable": "f:g"}, "methods": {"jacobian": {}},
                           "inputs": {"names": ["age", "income"], "points": {"values": [[1, 2]]},
                                      "distributions": {"incme": {"normal": [0, 1]}}}})
    assert found == ["inputs.distributions.incme: not an input name (did you mean 'income'?)"]
    found = spec_problems(sample_spec({"n": 4, "distributions": {"default": {"normal": [0, 1]}}},
                                      distributions={"a": {"normal": [0, 1]}}))
    assert len(found) == 1 and found[0].startswith("inputs.distributions: a sample's distributions are those in "
                                                   "inputs.points.sample.distributions; give them there only")


# --- a run ---------------------------------------------------------------------------------


def test_a_run_records_the_design_and_the_distributions(tmp_path):
    import sensreport

    (tmp_path / "f.py").write_text(FUNCTIONS)
    result = sensreport.run({"model": {"callable": str(tmp_path / "f.py") + ":poly"}, "methods": {"jacobian": {}},
                             "inputs": {"names": ["a", "b"], "points": {"sample": {
                                 "n": 100, "seed": 2, "method": "sobol",
                                 "distributions": {"a": {"triangular": [0, 1, 2]}, "default": {"uniform": [0, 1]}}}}}},
                            write=False)
    assert any("balance properties" in w for w in result.warnings)
    assert result.input_distributions == [Distribution("triangular", (0.0, 1.0, 2.0)),
                                          Distribution("uniform", (0.0, 1.0))]
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["inputs"]["distributions"] == {"a": {"triangular": [0.0, 1.0, 2.0]}, "b": {"uniform": [0.0, 1.0]}}
    assert doc["provenance"]["design"] == "sobol" and doc["provenance"]["seed"] == 2

    points = tmp_path / "p.csv"
    points.write_text("a,b\n1,2\n3,4\n")
    given = {"model": {"callable": str(tmp_path / "f.py") + ":poly"}, "methods": {"jacobian": {}},
             "inputs": {"points": {"csv": str(points)}, "distributions": {"b": {"normal": [0, 1]}}}}
    result = sensreport.run(given, write=False)
    assert result.to_dict()["inputs"]["distributions"] == {"b": {"normal": [0.0, 1.0]}}
    assert result.provenance["design"] is None
    given["inputs"]["distributions"] = {"c": {"normal": [0, 1]}}
    with pytest.raises(InputError) as info:
        sensreport.run(given, write=False)
    assert "inputs.distributions.c" in str(info.value) and "not a name of the model's differentiated inputs" in str(
        info.value)


def test_ishigami_example_runs_and_its_dgsm_match_the_closed_form(cli, tmp_path):
    r = cli("run", EXAMPLES / "ishigami" / "spec.yaml", "--out", tmp_path, "--quiet")
    assert r.exit_code == 0, r.output
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["verdict"]["status"] == "passed" and results["warnings"] == []
    assert results["provenance"]["design"] == "sobol"
    a, b = 7.0, 0.1
    exact = {"x1": (1 + 2 * b * PI ** 4 / 5 + b ** 2 * PI ** 8 / 9) / 2, "x2": a ** 2 / 2,
             "x3": 16 * b ** 2 * PI ** 6 / 7 / 2}
    rms = results["measures"]["values"]["rms"]["per_output"]["f"]
    for name, nu in exact.items():
        assert rms[name] ** 2 == pytest.approx(nu, rel=1e-3), name
