"""Models as people train them: several named inputs and outputs, held categories, groups,
discrete effects and sequences, checked against tf.GradientTape on the original model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import EXAMPLES

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

P = 16


def multi_model(dtype: str = "float32") -> "keras.Model":
    """Inputs: age (1,), numeric (3,), region (int, Embedding); outputs: a dict of p (1,) and risk (2,)."""
    keras.utils.set_random_seed(0)
    age = keras.Input(shape=(1,), name="age", dtype=dtype)
    numeric = keras.Input(shape=(3,), name="numeric", dtype=dtype)
    region = keras.Input(shape=(1,), name="region", dtype="int32")
    emb = keras.layers.Flatten(dtype=dtype)(keras.layers.Embedding(4, 2, dtype=dtype)(region))
    h = keras.layers.Concatenate(dtype=dtype)([age, numeric, emb])
    h = keras.layers.Dense(8, activation="gelu", dtype=dtype)(h)
    h = keras.layers.Dense(6, activation="tanh", dtype=dtype)(h)
    p = keras.layers.Dense(1, activation="sigmoid", name="p", dtype=dtype)(h)
    risk = keras.layers.Dense(2, name="risk", dtype=dtype)(h)
    return keras.Model([age, numeric, region], {"p": p, "risk": risk}, name="multi")


def multi_points(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"age": rng.uniform(-1, 1, (P, 1)), "numeric": rng.normal(size=(P, 3)),
            "region": rng.integers(0, 4, (P, 1)).astype("int32")}


def tape_jacobian(model, feeds: dict[str, np.ndarray], dtype="float32") -> dict[tuple[str, str], np.ndarray]:
    """d output element / d input element at every point, by name, from tf.GradientTape."""
    x = {k: tf.constant(v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in feeds.items()}
    out = {}
    with tf.GradientTape(persistent=True) as tape:
        for k, v in x.items():
            if v.dtype.is_floating:
                tape.watch(v)
        y = model(x)
    for oname, ot in y.items():
        for iname, it in x.items():
            if not it.dtype.is_floating:
                continue
            jac = tape.batch_jacobian(ot, it).numpy()  # [P, out, in]
            for a in range(jac.shape[1]):
                for b in range(jac.shape[2]):
                    on = oname if ot.shape[1] == 1 else f"{oname}[{a}]"
                    inn = iname if it.shape[1] == 1 else f"{iname}[{b}]"
                    out[(on, inn)] = jac[:, a, b]
    return out


def run_saved(tmp_path, seed: int, inputs: dict | None = None, methods: dict | None = None, dtype="float32"):
    """Save ``multi_model(dtype)``, write its points to an npz file and run a spec on them:
    (the model, the points, the result)."""
    from sensreport import run

    model = multi_model(dtype)
    model.save(tmp_path / "m.keras")
    feeds = multi_points(np.random.default_rng(seed))
    np.savez(tmp_path / "p.npz", **feeds)
    result = run({"model": {"keras": str(tmp_path / "m.keras")},
                  "inputs": {"points": {"npz": str(tmp_path / "p.npz")}, **(inputs or {})},
                  "methods": methods or {"jacobian": {}}}, write=False)
    return model, feeds, result


def compare_by_name(result, expected, rtol=2e-5, atol=1e-6):
    jac = result.methods["jacobian"].values
    assert jac.shape == (P, len(result.output_names), len(result.input_names))
    seen = 0
    for (on, inn), want in expected.items():
        got = jac[:, result.output_names.index(on), result.input_names.index(inn)]
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"d{on}/d{inn}")
        seen += 1
    assert seen == len(result.output_names) * len(result.input_names)


def test_multi_input_multi_output_keras_matches_gradient_tape_by_name(tmp_path):
    from sensreport import run

    model = multi_model()
    model.save(tmp_path / "m.keras")
    feeds = multi_points(np.random.default_rng(1))
    values = [{k: v[i].tolist() for k, v in feeds.items()} for i in range(P)]
    result = run({"model": {"keras": str(tmp_path / "m.keras")}, "inputs": {"points": {"values": values}},
                  "methods": {"jacobian": {"mode": "reverse"}, "finite_difference": {}}}, write=False)
    assert result.input_names == ["age", "numeric[0]", "numeric[1]", "numeric[2]"]
    assert result.output_names == ["p", "risk[0]", "risk[1]"]
    compare_by_name(result, tape_jacobian(model, feeds))
    assert result.verdict.status in ("passed", "passed_with_warnings"), result.verdict.headline
    d = result.to_dict()
    assert [t["name"] for t in d["inputs"]["tensors"]] == ["age", "numeric", "region"]
    assert d["inputs"]["tensors"][1]["names"] == ["numeric[0]", "numeric[1]", "numeric[2]"]
    assert d["inputs"]["fixed"] == [{"name": "region", "dtype": "int32", "shape": [1],
                                     "distinct": len(np.unique(feeds["region"])),
                                     "values": sorted(int(v) for v in np.unique(feeds["region"]))}]
    arrays = result.arrays()
    np.testing.assert_array_equal(arrays["points_region"], feeds["region"])
    np.testing.assert_allclose(arrays["points_numeric"], feeds["numeric"])


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_saved_model_export_with_several_inputs_matches_gradient_tape(tmp_path, mode):
    from sensreport import run

    model = multi_model()
    model.export(str(tmp_path / "sm"), verbose=False)
    feeds = multi_points(np.random.default_rng(2))
    np.savez(tmp_path / "p.npz", **feeds)
    result = run({"model": {"saved_model": str(tmp_path / "sm")}, "inputs": {"points": {"npz": str(tmp_path / "p.npz")}},
                  "methods": {"jacobian": {"mode": mode}}}, write=False)
    assert sorted(result.output_names) == ["p", "risk[0]", "risk[1]"]
    compare_by_name(result, tape_jacobian(model, feeds))
    # input_key and output_key filter: only numeric is differentiated, only risk is an output
    only = run({"model": {"saved_model": str(tmp_path / "sm"), "input_key": "numeric", "output_key": "risk"},
                "inputs": {"points": {"npz": str(tmp_path / "p.npz")}}, "methods": {"jacobian": {}}}, write=False)
    assert only.input_names == ["numeric[0]", "numeric[1]", "numeric[2]"]
    assert only.output_names == ["risk[0]", "risk[1]"]
    full = tape_jacobian(model, feeds)
    compare_by_name(only, {k: v for k, v in full.items() if k[0].startswith("risk") and k[1].startswith("numeric")})


def test_float64_model_and_inputs_fixed_hold_a_float_input(tmp_path):
    model, feeds, result = run_saved(tmp_path, 3, {"fixed": ["age"]}, dtype="float64")
    assert result.input_names == ["numeric[0]", "numeric[1]", "numeric[2]"]
    assert result.methods["jacobian"].run.dtype == "float64"
    expected = {k: v for k, v in tape_jacobian(model, feeds, "float64").items() if k[1] != "age"}
    compare_by_name(result, expected, rtol=1e-10, atol=1e-12)
    assert [f["name"] for f in result.to_dict()["inputs"]["fixed"]] == ["age", "region"]  # the model's order


def write_csv(path, feeds, order):
    cols = {"age": feeds["age"][:, 0], "region": feeds["region"][:, 0],
            **{f"numeric[{j}]": feeds["numeric"][:, j] for j in range(3)}}
    with open(path, "w") as fh:
        fh.write(",".join(order) + "\n")
        for i in range(P):
            fh.write(",".join(repr(int(cols[c][i])) if c == "region" else repr(float(cols[c][i])) for c in order) + "\n")


def test_csv_columns_bind_by_name_in_any_order_and_bad_columns_are_spec_errors(cli, write_spec, tmp_path):
    model = multi_model()
    model.save(tmp_path / "m.keras")
    feeds = multi_points(np.random.default_rng(4))
    write_csv(tmp_path / "p.csv", feeds, ["numeric[2]", "region", "age", "numeric[0]", "numeric[1]"])
    spec = write_spec("model: {keras: m.keras}\ninputs: {points: {csv: p.csv}}\nmethods: {jacobian: {}}\n")
    r = cli("run", spec, "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    jac = np.load(tmp_path / "out" / "arrays.npz")["jacobian"]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    expected = tape_jacobian(model, feeds)
    for (on, inn), want in expected.items():
        got = jac[:, res["outputs"]["names"].index(on), res["inputs"]["names"].index(inn)]
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    write_csv(tmp_path / "p.csv", feeds, ["region", "age", "numeric[0]", "numeric[1]"])
    r = cli("run", spec, "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "inputs.points.csv: no column 'numeric[2]' in the CSV; the model takes: age [1] float32, numeric [3] " \
           "float32, region [1] int32" in r.stderr
    write_csv(tmp_path / "p.csv", feeds, ["region", "age", "numeric[0]", "numeric[1]", "numeric[2]"])
    (tmp_path / "p.csv").write_text((tmp_path / "p.csv").read_text().replace("numeric[2]", "numeric[2],zip", 1)
                                    .replace("\n", ",1\n").replace("numeric[2],zip,1", "numeric[2],zip"))
    r = cli("run", spec, "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "column 'zip' is not an input of the model" in r.stderr, r.stderr
    assert not (tmp_path / "bad").exists()


def test_group_measures_add_up_their_members(tmp_path):
    _, _, result = run_saved(tmp_path, 5, {"groups": {"num": ["numeric[*]"], "two": ["age", "numeric[1]"],
                                                      "all": ["age", "numeric"]}})
    d = result.to_dict()
    assert d["inputs"]["groups"] == {"num": ["numeric[0]", "numeric[1]", "numeric[2]"], "two": ["age", "numeric[1]"],
                                     "all": ["age", "numeric[0]", "numeric[1]", "numeric[2]"]}
    g, m = d["group_measures"]["values"], d["measures"]["values"]
    assert set(d["group_measures"]) == set(d["measures"])
    members = d["inputs"]["groups"]
    for out in result.output_names:
        for name, names in members.items():
            for measure in ("mean_abs", "std_scaled", "elasticity"):
                want = sum(m[measure]["per_output"][out][n] for n in names)
                assert g[measure]["per_output"][out][name] == pytest.approx(want, rel=1e-12)
            want = np.sqrt(sum(m["rms"]["per_output"][out][n] ** 2 for n in names))
            assert g["rms"]["per_output"][out][name] == pytest.approx(want, rel=1e-12)
            assert g["positive_share"]["per_output"][out][name] is None
    # the DGSM of the whole input set is the RMS of the gradient's norm, from the derivatives themselves
    jac = result.methods["jacobian"].values.astype(np.float64)
    for k, out in enumerate(result.output_names):
        assert g["rms"]["per_output"][out]["all"] == pytest.approx(np.sqrt((jac[:, k] ** 2).sum(1).mean()), rel=1e-9)
    for name, names in members.items():
        assert g["std_scaled"]["overall"][name] == pytest.approx(sum(m["std_scaled"]["overall"][n] for n in names))


def test_bad_groups_fixed_and_discrete_keys_are_named(cli, write_spec, tmp_path):
    multi_model().save(tmp_path / "m.keras")
    np.savez(tmp_path / "p.npz", **multi_points(np.random.default_rng(6)))
    cases = {
        "inputs: {points: {npz: p.npz}, groups: {g: [nope*]}}\nmethods: {jacobian: {}}":
            "inputs.groups.g[0]: 'nope*' matches no differentiated input",
        "inputs: {points: {npz: p.npz}, groups: {g: [region]}}\nmethods: {jacobian: {}}":
            "inputs.groups.g[0]: 'region' is a held (fixed) input",
        "inputs: {points: {npz: p.npz}, fixed: [agee]}\nmethods: {jacobian: {}}":
            "inputs.fixed[0]: 'agee' is not an input of the model; it takes: age, numeric, region",
        "inputs: {points: {npz: p.npz}}\nmethods: {jacobian: {}, discrete: {inputs: [age]}}":
            "methods.discrete.inputs[0]: 'age' is not a held input",
        "inputs: {points: {npz: p.npz}, axes: {numeric: {time: 3}}}\nmethods: {jacobian: {}}":
            "inputs.axes.numeric: input 'numeric' has shape [3]; named axes (time, feature) need a sequence input",
    }
    for body, message in cases.items():
        spec = write_spec("model: {keras: m.keras}\n" + body + "\n")
        r = cli("run", spec, "--out", tmp_path / "out")
        assert r.exit_code == 2, (body, r.output)
        assert message in r.stderr, (body, r.stderr)
        assert "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


def test_discrete_effects_are_the_model_at_each_other_value(tmp_path):
    model, feeds, result = run_saved(tmp_path, 7, methods={"jacobian": {}, "discrete": {"inputs": ["region"]}})
    (effect,) = result.discrete
    labels = effect.labels
    assert labels == sorted(int(v) for v in np.unique(feeds["region"]))
    for u, value in enumerate(labels):
        y = model({**{k: v.astype("float32") for k, v in feeds.items() if k != "region"},
                   "region": np.full((P, 1), value, "int32")})
        want = np.concatenate([y["p"].numpy(), y["risk"].numpy()], axis=1)
        np.testing.assert_allclose(effect.values[:, u], want, rtol=1e-5, atol=1e-6)
    d = result.to_dict()["discrete"]["region"]
    own = effect.values[np.arange(P), effect.codes]
    a, b = 0, len(labels) - 1
    rows = effect.codes == a
    want = (effect.values[rows, b, 0] - own[rows, 0]).mean()
    assert d["mean_effect"]["p"][a][b] == pytest.approx(want, rel=1e-9)
    assert d["mean_effect"]["p"][a][a] == 0
    assert result.arrays()["discrete_region"].shape == (P, len(labels), 3)


def test_structured_example_end_to_end(cli, tmp_path):
    r = cli("run", EXAMPLES / "structured" / "spec.yaml", "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["verdict"]["status"] == "passed"
    assert {c["id"]: c["status"] for c in res["checks"]}["fd_vs_ad"] == "pass"
    assert res["inputs"]["names"] == ["age", "income", "debt_ratio", "tenure"]
    assert res["outputs"]["names"] == ["p_default", "risk[0]", "risk[1]"]
    assert res["inputs"]["fixed"][0]["name"] == "region" and res["inputs"]["fixed"][0]["values"] == [0, 1, 2, 3, 4]
    assert set(res["group_measures"]["values"]["rms"]["overall"]) == {"finances", "history"}
    assert set(res["categories"]["region"]["measures"]["mean_abs"]["p_default"]) == set(res["inputs"]["names"])
    arrays = np.load(tmp_path / "out" / "arrays.npz")
    assert arrays["points_region"].dtype == np.int32 and arrays["discrete_region"].shape == (120, 5, 3)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Discrete effects: region" in html and "Feature groups" in html
    # the same model as a SavedModel export and the same points as npz give the same Jacobian
    spec = (EXAMPLES / "structured" / "spec.yaml").read_text().replace("keras: model.keras",
                                                                      "saved_model: saved_model")
    spec = spec.replace("csv: points.csv", "npz: points.npz")
    (EXAMPLES / "structured" / "_saved.yaml").write_text(spec)
    try:
        r = cli("run", EXAMPLES / "structured" / "_saved.yaml", "--out", tmp_path / "sm", "--quiet")
    finally:
        (EXAMPLES / "structured" / "_saved.yaml").unlink()
    assert r.exit_code == 0, r.output
    sm = json.loads((tmp_path / "sm" / "results.json").read_text())
    order = [sm["outputs"]["names"].index(n) for n in res["outputs"]["names"]]
    cols = [sm["inputs"]["names"].index(n) for n in res["inputs"]["names"]]
    # float32 models, and the CSV holds the points to 6 significant digits while the npz holds them exactly
    np.testing.assert_allclose(np.load(tmp_path / "sm" / "arrays.npz")["jacobian"][:, order][:, :, cols],
                               arrays["jacobian"], rtol=1e-4, atol=1e-6)


def test_sequence_example_names_axes_and_groups(cli, tmp_path):
    r = cli("run", EXAMPLES / "sequence" / "spec.yaml", "--out", tmp_path / "out", "--quiet")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["verdict"]["status"] == "passed"
    assert res["inputs"]["names"][:2] == ["series[t=m01, balance]", "series[t=m01, utilization]"]
    groups = res["inputs"]["groups"]
    assert groups["series[t=m12, *]"] == ["series[t=m12, balance]", "series[t=m12, utilization]",
                                          "series[t=m12, late_payments]"]
    assert len(groups["series[*, utilization]"]) == 12
    # the LSTM against tf.GradientTape on the original model
    model = keras.saving.load_model(EXAMPLES / "sequence" / "model.keras")
    x = tf.constant(np.load(EXAMPLES / "sequence" / "points.npz")["series"])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
    want = tape.batch_jacobian(y, x).numpy().reshape(len(x), 1, -1)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "arrays.npz")["jacobian"], want, rtol=1e-4, atol=1e-6)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Time steps × features" in html


def test_a_wrong_gradient_behind_one_of_several_inputs_fails_the_check():
    """A custom gradient that is off by a factor on input ``a`` (and right on ``b``): the
    FD-vs-AD check fails and names that column, while a healthy twin passes."""
    from sensreport import run

    @tf.custom_gradient
    def wrong_square(x):
        return x * x, lambda dy: dy * 3.0 * x  # the true derivative is 2x

    class Wrong(keras.layers.Layer):
        def call(self, x):
            return wrong_square(x)

    def model(layer):
        a, b = keras.Input(shape=(1,), name="a"), keras.Input(shape=(2,), name="b")
        h = keras.layers.Concatenate()([layer(a), b])
        return keras.Model([a, b], {"y": keras.layers.Dense(1, kernel_initializer="ones")(h)})

    rng = np.random.default_rng(8)
    values = [{"a": [float(rng.uniform(0.5, 2))], "b": rng.normal(size=2).tolist()} for _ in range(12)]
    spec = {"inputs": {"points": {"values": values}}, "methods": {"jacobian": {}, "finite_difference": {}}}
    bad = run({**spec, "model": {"keras": model(Wrong())}}, write=False)
    check = next(c for c in bad.checks if c.id == "fd_vs_ad")
    assert check.status == "fail" and bad.verdict.status == "failed"
    worst = bad.agreement.summary["worst"][0]
    assert bad.input_names[worst["input"]] == "a"
    good = run({**spec, "model": {"keras": model(keras.layers.Lambda(lambda x: x * x))}}, write=False)
    assert next(c for c in good.checks if c.id == "fd_vs_ad").status == "pass"


def test_sampled_points_bind_to_named_inputs_with_distributions_by_tensor_name(tmp_path):
    from sensreport import run

    keras.utils.set_random_seed(1)
    a, v = keras.Input(shape=(1,), name="a"), keras.Input(shape=(2,), name="v")
    model = keras.Model([a, v], keras.layers.Dense(2, activation="tanh")(keras.layers.Concatenate()([a, v])))
    model.save(tmp_path / "m.keras")
    result = run({"model": {"keras": str(tmp_path / "m.keras")},
                  "inputs": {"names": ["a", "v[0]", "v[1]"],
                             "points": {"sample": {"n": 40, "seed": 4, "distributions": {
                                 "a": {"uniform": [0, 1]}, "v": {"normal": [5, 0.1]}}}}},
                  "methods": {"jacobian": {}}}, write=False)
    assert (result.points[:, 0] >= 0).all() and (result.points[:, 0] <= 1).all()
    assert abs(result.points[:, 1:].mean() - 5) < 0.1  # v's elements drawn from v's distribution
    x = {"a": tf.constant(result.points[:, :1], tf.float32), "v": tf.constant(result.points[:, 1:], tf.float32)}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x["a"]), tape.watch(x["v"])
        y = model([x["a"], x["v"]])
    want = np.concatenate([tape.batch_jacobian(y, x["a"]).numpy(), tape.batch_jacobian(y, x["v"]).numpy()], axis=2)
    np.testing.assert_allclose(result.methods["jacobian"].values, want, rtol=2e-5, atol=1e-6)
