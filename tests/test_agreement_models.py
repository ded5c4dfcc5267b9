"""The FD-vs-AD verdict on the models people audit: no false alarm on healthy float32
Keras models (ReLU, GELU, tanh, LSTM), no wrong derivative let through, and derivatives
that equal tf.GradientTape's whatever the kernel, custom gradients included."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from sensreport import engine
from sensreport.analysis.agreement import AgreementAccumulator

keras = pytest.importorskip("keras")


def _train(model, rng):
    shape = model.inputs[0].shape[1:]
    X = rng.normal(size=(256, *shape)).astype("float32")
    Y = model.predict(X, verbose=0) + 0.1 * rng.normal(size=(256, model.outputs[0].shape[-1])).astype("float32")
    model.compile("adam", "mse")
    model.fit(X, Y, epochs=3, verbose=0)
    return model


def _mlp(act):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation=act),
                             keras.layers.Dense(32, activation=act), keras.layers.Dense(4)])


HEALTHY = {
    "relu": lambda: _mlp("relu"),
    "gelu": lambda: _mlp("gelu"),
    "tanh": lambda: _mlp("tanh"),
    "lstm": lambda: keras.Sequential([keras.Input((12, 3)), keras.layers.LSTM(8), keras.layers.Dense(2)]),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", sorted(HEALTHY))
def test_default_checks_pass_on_healthy_float32_models(kind, seed, cli, write_spec, tmp_path):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = _train(HEALTHY[kind](), rng)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "points.npy", rng.normal(size=(200, *model.inputs[0].shape[1:])))
    spec = write_spec("model: {keras: m.keras}\ninputs: {points: {npy: points.npy}}\n"
                      "methods: {jacobian: {}, finite_difference: {}}\n")
    r = cli("run", spec, "--out", tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    a = doc["agreement"]
    assert r.exit_code == 0, (kind, a["max_z"], a["worst"][:2], r.stderr)
    assert doc["verdict"]["status"] in ("passed", "passed_with_warnings")
    assert a["share_within_tolerance"] == 1.0 and a["max_z"] <= 3.0
    if kind == "relu":
        assert a["kinks"]["count"] > 0  # ReLUs switch within the step at some entries: shown, not judged
    else:
        assert a["kinks"]["count"] <= a["entries"] * 1e-3


WRONG = '''
import tensorflow as tf

@tf.custom_gradient
def softplus_5pc_off(x):          # log(1 + e^x), with a gradient 5 % too large
    y = tf.math.log1p(tf.exp(-tf.abs(x))) + tf.maximum(x, 0.0)
    return y, lambda dy: dy * 1.05 * tf.sigmoid(x)

def batched(x):                    # [B, 3] -> [B, 2]
    return tf.stack([softplus_5pc_off(x[:, 0] * x[:, 1]), tf.tanh(x[:, 2]) + x[:, 0]], axis=1)

def float32_model(x):              # computes in float32 whatever it is given, as Keras models do
    return batched(tf.cast(x, tf.float32))

def per_point(x):                  # [3] -> [2]
    return tf.stack([softplus_5pc_off(x[0] * x[1]), tf.tanh(x[2]) + x[0]])
'''


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fn", ["batched", "float32_model", "per_point"])
def test_a_custom_gradient_5_percent_off_fails(fn, dtype, cli, write_spec, tmp_path):
    pts = np.random.default_rng(3).uniform(-1.5, 1.5, (30, 3)).round(6).tolist()
    batched = "false" if fn == "per_point" else "true"
    spec = write_spec(f"model: {{callable: f.py:{fn}, batched: {batched}, dtype: {dtype}}}\n"
                      f"inputs: {{points: {{values: {pts}}}}}\nmethods: {{jacobian: {{}}, finite_difference: {{}}}}\n",
                      f__py=WRONG)
    r = cli("run", spec, "--out", tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert r.exit_code == 1 and doc["verdict"]["failing"] == ["fd_vs_ad"], r.output
    check = next(c for c in doc["checks"] if c["id"] == "fd_vs_ad")
    assert check["items"] and "y[0]" in check["items"][0]  # the wrong entries are named
    assert "custom gradients" in check["message"]  # and the finding says why its sensitivities mislead
    assert doc["custom_gradients"]
    # the derivative reported is TensorFlow's own (the custom one), in whatever kernel ran
    assert doc["methods"]["jacobian"]["strategy"].startswith("reverse")
    # finite differences evaluate in the dtype the model computes in
    assert doc["methods"]["finite_difference"]["dtype"] == ("float32" if fn == "float32_model" else "float64")


def test_one_entry_off_by_one_percent_is_caught_where_the_estimate_allows():
    f = lambda x: tf.stack([tf.sin(x[0]) * tf.exp(x[1]), x[0] * x[1] ** 2, tf.cos(x[1] + x[2])])  # noqa: E731
    target = engine.as_target(f, (3,), dtype="float64", jit_compile=False)
    pts = np.random.default_rng(4).uniform(-1, 1, (20, 3))
    ad = np.array(engine.jacobian(target, pts).values)
    est = engine.finite_difference(target, pts).estimate
    rel_est = est.error / np.maximum(np.abs(ad), 1e-300)
    p, i, j = np.unravel_index(np.argmax(np.where(rel_est < 3e-3, np.abs(ad), 0)), ad.shape)
    assert rel_est[p, i, j] < 3e-3
    healthy = AgreementAccumulator(3, 3, "float64")
    healthy.update(ad, est.fd, est.error, est.kinks())
    assert healthy.summary()["share_within_tolerance"] == 1.0
    ad[p, i, j] *= 1.01
    acc = AgreementAccumulator(3, 3, "float64")
    acc.update(ad, est.fd, est.error, est.kinks())
    s = acc.summary()
    assert s["share_within_tolerance"] < 1.0
    assert (s["worst"][0]["point"], s["worst"][0]["output"], s["worst"][0]["input"]) == (p, i, j)


RAMP = """
import tensorflow as tf

D = 0.003

def ramp(x):                       # [B, 2] -> [B, 1]: slope 1 within D of x0 = 0.3, flat outside
    u = x[:, 0] - 0.3
    return tf.stack([tf.nn.relu(u + D) - tf.nn.relu(u - D) + tf.sin(x[:, 1])], axis=1)

@tf.custom_gradient
def steep(u):                      # the same ramp, with a gradient 5 % too large inside it
    return tf.nn.relu(u + D) - tf.nn.relu(u - D), lambda dy: dy * 1.05 * tf.cast(tf.abs(u) < D, u.dtype)

def wrong_ramp(x):
    return tf.stack([steep(x[:, 0] - 0.3) + tf.sin(x[:, 1])], axis=1)
"""


@pytest.mark.parametrize("fn", ["ramp", "wrong_ramp"])
def test_kinks_on_both_sides_within_the_step_are_differenced_again(fn, cli, write_spec, tmp_path):
    # at x0 and near it the step (0.01) spans both kinks of the ramp (at x0 -+ 0.003): at x0
    # both one-sided slopes are 0.3 (no kink seen), the quotients at h and 2h are 0.3 and
    # 0.15, so z = 0.7 / 0.15 = 4.7. Differenced again at h/8 (and 2h/8) the quotients see
    # the slope itself: the right derivative agrees, one 5 % off still fails
    pts = [[0.3, 0.1], [0.3003, -0.2], [1.0, 0.5], [-0.4, 0.3]]
    spec = write_spec(f"model: {{callable: f.py:{fn}, batched: true, dtype: float64}}\n"
                      f"inputs: {{points: {{values: {pts}}}}}\n"
                      "methods: {jacobian: {}, finite_difference: {step: 0.01}}\n", f__py=RAMP)
    r = cli("run", spec, "--out", tmp_path / "out")
    a = json.loads((tmp_path / "out" / "results.json").read_text())["agreement"]
    assert a["retested"] == 2  # input 0 at the two points on the ramp
    assert a["kinks"]["count"] == 0
    if fn == "ramp":
        assert r.exit_code == 0 and a["max_z"] <= 3.0 and a["share_within_tolerance"] == 1.0, r.output
    else:
        assert r.exit_code == 1 and a["share_within_tolerance"] == 6 / 8, r.output
        assert {(w["point"], w["input"]) for w in a["worst"][:2]} == {(0, 0), (1, 0)}
        assert a["worst"][0]["ad"] == pytest.approx(1.05) and a["worst"][0]["fd"] == pytest.approx(1.0, abs=1e-9)


def test_relu_kinks_are_findings_not_failures():
    target = engine.as_target(lambda x: 2.0 * tf.nn.relu(x), (3,), dtype="float64", jit_compile=False)
    est = engine.finite_difference(target, np.array([[1e-12, 0.5, -0.5]])).estimate
    assert est.kinks()[0].diagonal().tolist() == [True, False, False]
    assert est.backward[0, 0, 0] == pytest.approx(0.0, abs=1e-6) and est.forward[0, 0, 0] == pytest.approx(2.0)
    ad = np.array(engine.jacobian(target, np.array([[1e-12, 0.5, -0.5]])).values)
    acc = AgreementAccumulator(3, 3, "float64")
    acc.update(ad, est.fd, est.error, est.kinks(), est.backward, est.forward)
    s = acc.summary()
    assert s["share_within_tolerance"] == 1.0 and s["kinks"]["count"] == 1
    assert s["kinks"]["worst"][0]["benign"]  # d relu at 0+ is the right-hand slope: between the two


@tf.custom_gradient
def _stable_softplus(x):
    # log1p(exp(x)) without overflow, with its exact (stable) gradient
    return tf.math.log1p(tf.exp(-tf.abs(x))) + tf.maximum(x, 0.0), lambda dy: dy * tf.sigmoid(x)


@tf.custom_gradient
def _straight_through_round(x):
    return tf.round(x), lambda dy: dy  # a deliberate custom gradient


CUSTOM = {
    "stable_softplus": (lambda x: tf.stack([_stable_softplus(3.0 * x[0] * x[1]), x[2] ** 2]),
                        lambda X: tf.stack([_stable_softplus(3.0 * X[:, 0] * X[:, 1]), X[:, 2] ** 2], axis=1)),
    "straight_through": (lambda x: tf.stack([_straight_through_round(x[0]) * x[1], x[2]]),
                         lambda X: tf.stack([_straight_through_round(X[:, 0]) * X[:, 1], X[:, 2]], axis=1)),
    "stop_gradient": (lambda x: tf.stack([tf.stop_gradient(x[0]) * x[1], x[2] * x[0]]),
                      lambda X: tf.stack([tf.stop_gradient(X[:, 0]) * X[:, 1], X[:, 2] * X[:, 0]], axis=1)),
}


def _tape(fn_batched, pts):
    x = tf.constant(pts)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn_batched(x)
    return tape.batch_jacobian(y, x).numpy()


@pytest.mark.parametrize("xla", [False, True])
@pytest.mark.parametrize("mode", ["forward-pfor", "forward-tiled", "reverse-pfor", "reverse-tiled"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("case", sorted(CUSTOM))
def test_every_kernel_returns_what_gradient_tape_returns(case, batched, mode, xla):
    per_point, whole = CUSTOM[case]
    pts = np.random.default_rng(5).uniform(-1.2, 1.2, (5, 3))
    target = (engine.Target(whole, (3,), batched=True, dtype="float64", jit_compile=xla) if batched
              else engine.as_target(per_point, (3,), dtype="float64", jit_compile=xla))
    d = engine.jacobian(target, pts, mode=mode)
    np.testing.assert_allclose(d.values, _tape(whole, pts), rtol=1e-12, atol=1e-12)
    if case != "stop_gradient":
        assert target.custom_gradients and d.strategy.startswith("reverse")
        if mode.startswith("forward"):
            assert any("forward mode cannot honour" in n for n in d.notes)
    rows = engine.rows(target, pts, [0])
    np.testing.assert_allclose(rows.values, _tape(whole, pts)[:, [0]], rtol=1e-12, atol=1e-12)
