"""Engine: Jacobians against closed forms, modes against each other, FD within tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from sensreport import engine
from sensreport.errors import ComputeError

RNG = np.random.default_rng(0)
MODES = ["forward-pfor", "forward-tiled", "reverse-pfor", "reverse-tiled"]

# (per-point function, closed-form Jacobian at x, n)
A = RNG.normal(size=(4, 3))
W = RNG.normal(size=(5, 3))
B = RNG.normal(size=5)
CASES = {
    "polynomial": (lambda x: tf.stack([x[0] ** 3 + x[1] * x[2], 2 * x[1] ** 2]),
                   lambda x: np.array([[3 * x[0] ** 2, x[2], x[1]], [0, 4 * x[1], 0]])),
    "trig": (lambda x: tf.stack([tf.sin(x[0]) * tf.cos(x[1]), tf.tan(x[2])]),
             lambda x: np.array([[np.cos(x[0]) * np.cos(x[1]), -np.sin(x[0]) * np.sin(x[1]), 0],
                                 [0, 0, 1 / np.cos(x[2]) ** 2]])),
    "exponential": (lambda x: tf.stack([tf.exp(x[0] * x[1]), tf.math.log(1 + x[2] ** 2)]),
                    lambda x: np.array([[x[1] * np.exp(x[0] * x[1]), x[0] * np.exp(x[0] * x[1]), 0],
                                        [0, 0, 2 * x[2] / (1 + x[2] ** 2)]])),
    "linear": (lambda x: tf.linalg.matvec(tf.constant(A, x.dtype), x), lambda x: A),
    "tanh_layer": (lambda x: tf.tanh(tf.linalg.matvec(tf.constant(W, x.dtype), x) + tf.constant(B, x.dtype)),
                   lambda x: (1 - np.tanh(W @ x + B) ** 2)[:, None] * W),
}
POINTS = RNG.uniform(-1.0, 1.0, size=(6, 3))
TOL = {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


@pytest.mark.parametrize("xla", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_jacobian_matches_closed_form(case, mode, dtype, xla):
    # XLA on and off explicitly: with jit_compile="auto" whether XLA is tried depends on
    # a timing, so both paths are tested here on purpose, every run
    f, exact = CASES[case]
    target = engine.as_target(f, (3,), dtype=dtype, jit_compile=xla)
    d = engine.jacobian(target, POINTS, mode=mode)
    expected = np.stack([exact(x) for x in POINTS])
    assert d.values.shape == expected.shape
    assert d.values.dtype == np.dtype(dtype)
    np.testing.assert_allclose(d.values, expected, **TOL[dtype])
    # an XLA failure runs the same kernel without XLA: it never changes the kernel
    assert d.strategy == mode
    assert not any("tf.map_fn" in n for n in d.notes)


def test_xla_failure_never_changes_the_kernel_or_the_vectorization():
    # forward-mode kernels of a vectorized per-point function do not trace under XLA
    # here; forcing XLA must then run the very kernel that runs without it
    f, exact = CASES["trig"]
    plain = engine.jacobian(engine.as_target(f, (3,), jit_compile=False), POINTS, mode="forward-tiled")
    forced_target = engine.as_target(f, (3,), jit_compile=True)
    forced = engine.jacobian(forced_target, POINTS, mode="forward-tiled")
    assert forced.strategy == plain.strategy == "forward-tiled"
    np.testing.assert_allclose(forced.values, plain.values, rtol=1e-12, atol=1e-12)
    if any("XLA could not compile" in n for n in forced.notes):
        assert not any("tf.map_fn" in n for n in forced.notes)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_equals_reverse(case):
    target = engine.as_target(CASES[case][0], (3,), dtype="float64")
    fwd = engine.jacobian(target, POINTS, mode="forward").values
    rev = engine.jacobian(target, POINTS, mode="reverse").values
    tiled = engine.jacobian(target, POINTS, mode="forward-tiled").values
    np.testing.assert_allclose(tiled, fwd, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(fwd, rev, rtol=1e-13, atol=1e-14)


def test_auto_mode_picks_by_shape():
    assert engine.choose_mode(3, 100) == "forward"
    assert engine.choose_mode(100, 3) == "reverse"
    wide_out = engine.as_target(lambda x: tf.tile(x, [10]), (3,))
    assert engine.jacobian(wide_out, POINTS).strategy == "forward-pfor"
    wide_in = engine.as_target(lambda x: tf.reduce_sum(x**2, keepdims=True), (3,))
    assert engine.jacobian(wide_in, POINTS).strategy == "reverse-pfor"


def test_keras_mlp_against_hand_computed_jacobian():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
    (w1, b1), (w2, b2) = [layer.get_weights() for layer in model.layers]
    x = RNG.normal(size=(7, 4)).astype("float32")
    h = np.tanh(x.astype(np.float64) @ w1 + b1)
    # J = W2^T diag(1 - h^2) W1^T, per point
    expected = np.einsum("ko,pk,ik->poi", w2, 1 - h**2, w1)
    target = engine.Target(model, (4,), dtype="float32")
    for mode in MODES:
        np.testing.assert_allclose(engine.jacobian(target, x, mode=mode).values, expected, rtol=1e-4, atol=1e-5)


def test_rows_equal_jacobian_rows_and_never_form_the_rest():
    f, exact = CASES["tanh_layer"]
    target = engine.as_target(f, (3,))
    d = engine.rows(target, POINTS, [4, 1])
    expected = np.stack([exact(x) for x in POINTS])[:, [4, 1], :]
    np.testing.assert_allclose(d.values, expected, rtol=1e-12, atol=1e-12)
    assert d.values.shape == (6, 2, 3)
    assert d.strategy == "reverse-pfor"  # 2 VJPs beat 3 JVPs


def test_rows_use_forward_mode_when_inputs_are_no_more_than_selected_outputs():
    f, exact = CASES["tanh_layer"]  # 3 inputs, 5 outputs
    target = engine.as_target(f, (3,))
    jac = np.stack([exact(x) for x in POINTS])
    for outputs in ([4, 1, 0], [3, 0, 4, 2]):
        d = engine.rows(target, POINTS, outputs)
        assert d.strategy == "forward-pfor", outputs  # 3 JVPs instead of 3-4 VJPs
        np.testing.assert_allclose(d.values, jac[:, outputs, :], rtol=1e-12, atol=1e-12)
    # chunked over points and inputs: same numbers
    tiny = engine.rows(target, POINTS, [3, 0, 4, 2], memory_budget=2 * target.row_bytes() + 1 + 6 * 4 * 3 * 8)
    assert tiny.calls > 3
    np.testing.assert_allclose(tiny.values, jac[:, [3, 0, 4, 2], :], rtol=1e-12, atol=1e-12)


def test_chunking_keeps_numbers_and_splits_calls():
    f, exact = CASES["tanh_layer"]
    target = engine.as_target(f, (3,))
    expected = np.stack([exact(x) for x in POINTS])
    for mode in MODES:
        whole = engine.jacobian(target, POINTS, mode=mode)
        # a budget of ~2 rows per call forces both the basis and the points to be split
        tiny = engine.jacobian(target, POINTS, mode=mode, memory_budget=2 * target.row_bytes() + 1 + 6 * 5 * 3 * 8)
        assert whole.calls == 1 and tiny.calls > 3, mode
        np.testing.assert_allclose(tiny.values, expected, rtol=1e-12, atol=1e-12)
    fd = engine.finite_difference(target, POINTS, memory_budget=3 * target.row_bytes() + 6 * 5 * 3 * 8)
    assert fd.calls > 3
    np.testing.assert_allclose(fd.values, expected, rtol=1e-7, atol=1e-8)
    # one call or many: the same steps and arithmetic; only the model's own rounding
    # varies with the batch size, amplified by 1/h (~eps / 6e-6 ~ 4e-11 here)
    one = engine.finite_difference(target, POINTS)
    assert one.calls == 1
    np.testing.assert_allclose(one.values, fd.values, rtol=0, atol=1e-9)


def test_results_are_read_only_in_one_call_and_in_chunks():
    f, _ = CASES["tanh_layer"]
    target = engine.as_target(f, (3,))
    whole = engine.jacobian(target, POINTS)
    tiny = 2 * target.row_bytes() + 1 + 6 * 5 * 3 * 8
    for d in (whole, engine.jacobian(target, POINTS, memory_budget=tiny),
              engine.rows(target, POINTS, [1]), engine.finite_difference(target, POINTS)):
        assert not d.values.flags.writeable, d.method
        with pytest.raises(ValueError):
            d.values[0, 0, 0] = 1.0
        assert np.array(d.values).flags.writeable  # a copy is the user's to change


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_full_jacobian_traces_only_the_kernel_it_runs(direction):
    # tracing pfor is most of a first call: the whole-basis kernel is traced alone, not
    # after the indexed one; results still name the family
    f, exact = CASES["tanh_layer"]
    target = engine.as_target(f, (3,), jit_compile=False)
    d = engine.jacobian(target, POINTS, mode=direction)
    assert d.strategy == f"{direction}-pfor"
    assert {k[0] for k in target.traces()} == {"evaluate", f"{direction}-pfor-full"}
    np.testing.assert_allclose(d.values, np.stack([exact(x) for x in POINTS]), rtol=1e-12, atol=1e-12)
    # chunked over the basis: the indexed kernel, same numbers
    tiny = engine.jacobian(target, POINTS, mode=direction, memory_budget=2 * target.row_bytes() + 1 + 6 * 5 * 3 * 8)
    assert f"{direction}-pfor" in {k[0] for k in target.traces()} and tiny.strategy == d.strategy
    np.testing.assert_allclose(tiny.values, d.values, rtol=1e-12, atol=1e-12)


def test_jacobian_too_large_is_a_clear_error():
    target = engine.as_target(lambda x: x, (3,))
    with pytest.raises(ComputeError, match=r"methods.jacobian: the Jacobian array \[6, 3, 3\] needs"):
        engine.jacobian(target, POINTS, memory_budget=100)


@pytest.mark.parametrize("case", sorted(CASES))
def test_central_differences_within_tolerance_float64(case):
    f, exact = CASES[case]
    d = engine.finite_difference(engine.as_target(f, (3,), dtype="float64"), POINTS)
    assert d.dtype == "float64"
    expected = np.stack([exact(x) for x in POINTS])
    # eps^(1/3) steps: truncation ~ h^2 ~ 4e-11 relative; stated tolerance 1e-7
    np.testing.assert_allclose(d.values, expected, rtol=1e-7, atol=1e-8)


def test_forward_differences_within_tolerance():
    f, exact = CASES["trig"]
    d = engine.finite_difference(engine.as_target(f, (3,)), POINTS, scheme="forward")
    # eps^(1/2) steps: error ~ sqrt(eps) ~ 1.5e-8 relative to the scale of f''
    np.testing.assert_allclose(d.values, np.stack([exact(x) for x in POINTS]), rtol=1e-6, atol=1e-6)


def test_fd_of_float32_keras_model_stays_within_float32_tolerance():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)])
    x = RNG.normal(size=(5, 4))
    target = engine.Target(model, (4,), dtype="float32")
    ad = engine.jacobian(target, x).values
    fd = engine.finite_difference(target, x)
    assert fd.dtype == "float32"  # Keras computes in float32 even for float64 inputs
    np.testing.assert_allclose(fd.values, ad, rtol=2e-3, atol=2e-4)


def test_fd_step_formula():
    x = np.array([[0.0, 10.0], [2.0, -30.0]])
    h = engine.fd_step(x, "central", "float64")
    eps3 = np.finfo(np.float64).eps ** (1 / 3)
    spread = x.std(axis=0)
    np.testing.assert_allclose(h, eps3 * np.maximum(np.abs(x), spread))
    assert np.all(engine.fd_step(x, "forward", "float32", step=0.5) == 0.5)


def test_fd_of_function_tensorflow_cannot_differentiate():
    f = lambda x: tf.numpy_function(lambda a: np.sin(a) * a, [x], x.dtype)  # noqa: E731
    target = engine.as_target(f, (3,))
    d = engine.finite_difference(target, POINTS)
    exact = np.stack([np.diag(np.cos(x) * x + np.sin(x)) for x in POINTS])
    np.testing.assert_allclose(d.values, exact, rtol=1e-7, atol=1e-8)
    assert any("tf.map_fn" in note for note in d.notes)  # vectorization fell back, and says so
    assert engine.gradient_blockers(target)["none"] == ["PyFunc"]


def test_untraceable_numpy_function_is_evaluated_eagerly():
    target = engine.as_target(lambda x: np.sin(np.asarray(x)), (3,))
    d = engine.finite_difference(target, POINTS)
    np.testing.assert_allclose(d.values, np.stack([np.diag(np.cos(x)) for x in POINTS]), rtol=1e-7, atol=1e-8)
    assert any("eagerly" in note for note in d.notes)


def test_python_control_flow_on_tensor_values_is_traced_with_autograph():
    # kernels are traced without AutoGraph first; a Python `if` / `while` on a tensor's
    # value fails there and is traced again with it, with the closed-form derivatives
    def f(x):
        y = x[0] ** 2 if x[0] > 0 else -3.0 * x[0]
        k = tf.constant(0)
        while k < 2:  # y * x1^2
            y = y * x[1]
            k += 1
        return tf.stack([y, x[2]])

    target = engine.as_target(f, (3,), dtype="float64")
    pts = np.array([[0.5, 2.0, 1.0], [-0.5, 3.0, -1.0]])
    want = np.array([[[2 * 0.5 * 4.0, 2 * 0.25 * 2.0, 0.0], [0.0, 0.0, 1.0]],
                     [[-3.0 * 9.0, 2 * 1.5 * 3.0, 0.0], [0.0, 0.0, 1.0]]])
    for mode in ("reverse-pfor", "forward-pfor"):
        np.testing.assert_allclose(engine.jacobian(target, pts, mode=mode).values, want, rtol=1e-12)
    np.testing.assert_allclose(engine.finite_difference(target, pts).values, want, rtol=1e-6)


def test_batched_and_per_point_agree():
    f, _ = CASES["polynomial"]
    batched = engine.Target(lambda X: tf.vectorized_map(f, X), (3,), batched=True, dtype="float64")
    per_point = engine.as_target(f, (3,))
    np.testing.assert_array_equal(engine.jacobian(batched, POINTS).values, engine.jacobian(per_point, POINTS).values)


def test_tensor_shaped_inputs_and_outputs_are_flattened():
    target = engine.as_target(lambda x: tf.reduce_sum(x, axis=1) * 2.0, (2, 3))
    pts = RNG.normal(size=(4, 2, 3))
    d = engine.jacobian(target, pts)
    assert target.output_shape == (2,)
    expected = np.zeros((2, 6))
    expected[0, :3] = expected[1, 3:] = 2.0
    np.testing.assert_allclose(d.values, np.broadcast_to(expected, (4, 2, 6)))


def test_no_retracing_across_chunk_sizes():
    f, _ = CASES["trig"]
    target = engine.as_target(f, (3,), jit_compile=False)
    target.evaluate(POINTS[:1])  # the output size, for the budgets below

    def everything(x):
        tiny = 2 * target.row_bytes() + 1 + len(x) * 9 * 8  # two rows per call: the basis is split
        for mode in ("reverse", "forward"):
            engine.jacobian(target, x, mode=mode)  # the whole basis in one call
            engine.jacobian(target, x, mode=mode, memory_budget=tiny)  # chunked: the indexed kernel
        engine.rows(target, x, [0])
        engine.finite_difference(target, x)
        # finite differences hold five [P, 2, 3] channels (the value, its error, the slopes)
        engine.finite_difference(target, x, memory_budget=tiny + len(x) * 6 * 8 * 5)

    everything(POINTS)
    traced = target.traces()
    assert {k[0] for k in traced} >= {"reverse-pfor", "reverse-pfor-full", "forward-pfor", "forward-pfor-full",
                                      "fd-central"}
    everything(RNG.normal(size=(17, 3)))  # other point counts, other chunk sizes
    everything(RNG.normal(size=(2, 3)))
    # every kernel was traced once, by its first call, and never again
    assert target.traces() == dict.fromkeys(traced, 1)


def test_xla_autotune_picks_a_variant_and_keeps_the_numbers(monkeypatch):
    from sensreport.engine import xla

    # tuning is skipped when one plain call of the first chunk is faster than
    # AUTOTUNE_MIN_SECONDS, which this small function sometimes is: the test is about the tuning
    monkeypatch.setattr(xla, "AUTOTUNE_MIN_SECONDS", 0.0)
    f, exact = CASES["tanh_layer"]
    pts = RNG.uniform(-1, 1, size=(4000, 3))
    target = engine.Target(lambda x: tf.vectorized_map(f, x), (3,), dtype="float64", jit_compile="auto")
    d = engine.jacobian(target, pts, mode="reverse")
    assert ("reverse-pfor-full", "float64") in target.xla.chosen
    assert any("XLA (first chunk:" in n for n in d.notes)
    np.testing.assert_allclose(d.values[:5], np.stack([exact(x) for x in pts[:5]]), rtol=1e-12, atol=1e-12)


def test_an_op_differentiable_only_through_its_custom_gradient_runs_in_reverse_mode():
    # tf.numpy_function has no forward-mode rule and defeats pfor; a custom gradient makes
    # it differentiable in reverse mode only, and is detected in the traced graph
    @tf.custom_gradient
    def cube(x):
        y = tf.numpy_function(lambda a: a**3, [x], x.dtype)
        y.set_shape(x.shape)
        return y, lambda dy: dy * 3 * x**2

    target = engine.as_target(lambda x: cube(x), (3,))
    exact = np.stack([np.diag(3 * x**2) for x in POINTS])
    d = engine.jacobian(target, POINTS, mode="forward")
    assert d.strategy.startswith("reverse") and target.custom_gradients
    assert any("forward mode cannot honour" in n for n in d.notes)
    np.testing.assert_allclose(d.values, exact, rtol=1e-12)
    tiled = engine.jacobian(target, POINTS, mode="reverse-tiled")
    assert tiled.strategy == "reverse-tiled"
    np.testing.assert_allclose(tiled.values, exact, rtol=1e-12)
    # batch_jacobian's pfor falls back to a loop by itself here: still the right numbers
    np.testing.assert_allclose(engine.jacobian(target, POINTS, mode="reverse-pfor").values, exact, rtol=1e-12)
