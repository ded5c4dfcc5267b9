#!/usr/bin/env python
"""Benchmark sensreport's derivative engine against the alternatives, in one process and one run.

The same workloads (Keras models, float32 points) go through:

* sensreport's engine: ``Target(model, shape, batched=True, dtype="float32")`` then
  ``jacobian(target, X, mode=...)`` with ``auto`` and every explicit mode;
* hand-written TensorFlow: ``batch_jacobian`` in a ``tf.function`` and two
  ``ForwardAccumulator`` + ``vectorized_map`` forward-mode Jacobians (over points, over
  basis vectors), each with and without XLA; "best TF" is the fastest of them;
* JAX ``jit(vmap(jacrev))`` and ``jit(vmap(jacfwd))`` with the same weights (the outside
  reference; JAX is the benchmark-only extra ``pip install -e .[bench]``);
* the naive per-output loop (one eager ``GradientTape.gradient`` per output per point);
* finite differences: ``engine.finite_difference`` (batched) against the naive double
  loop over inputs and outputs (two eager model calls per entry ``J[i, j]``, as ANCHORS
  measured it), against a stronger loop that uses all outputs of each call (two calls
  per point and input), and against the bare model evaluation of the same rows.

Every timed call returns numpy, so conversions are timed for every method alike. Warm
calls are interleaved, in a new random order each round, within classes of comparable
methods (the automatic ones within 4x of the fastest; the slower automatic ones; the
finite-difference ones), so that a load change on the machine hits them alike, no
method always follows the same neighbour, and none follows a 100x heavier call.
Medians are reported, and for the targets also the per-round ratio with a bootstrap
95% interval. The
first call (tracing / compiling, on a fresh object) is reported separately. The naive
loops are timed on a few points and scaled linearly to all points (said in the table).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_engine.py                 # full run, a few minutes
    .venv/bin/python benchmarks/bench_engine.py --quick         # smoke run
    .venv/bin/python benchmarks/bench_engine.py --workloads mlp64,cnn --markdown out.md

The report (markdown tables) goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from sensreport import engine  # noqa: E402

tf = engine.tensorflow()  # imports TensorFlow quietly, the way sensreport does
import keras  # noqa: E402

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # JAX is a benchmark-only extra
    jax = jnp = None

HAVE_JAX = jax is not None

#: Tolerances, as multiples of max(1, max |J|) of the workload (float32 throughout).
#: Automatic derivatives of one float32 model by different programs differ only by
#: summation order (measured: <= 3e-7 here).
AD_RTOL = 1e-5
#: Float32 central differences (h ~ eps^(1/3) * scale) against automatic derivatives:
#: truncation + rounding error (measured: <= 5e-4 here; ANCHORS: about 2e-4).
FD_RTOL = 5e-3
#: The naive FD loop against the batched one: same steps and formula, but the model's
#: float32 rounding differs with the batch size, amplified by 1/h like FD's own
#: rounding error (measured: <= 7e-4 here).
FD_FD_RTOL = 5e-3

GROUP_ORDER = ("sensreport", "sensreport-mode", "tf", "jax", "naive", "fd", "fd-floor", "naive-fd", "naive-fd-entry")
#: Timed together (interleaved), each set apart from the other.
AD_GROUPS = frozenset({"sensreport", "sensreport-mode", "tf", "jax"})
FD_GROUPS = frozenset({"fd", "fd-floor"})
#: Automatic methods this many times slower than the fastest (in a first round) are
#: timed in rounds of their own, apart from the contenders.
SLOW_FACTOR = 4.0


# --------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    """A Keras model, its float32 points ``[P, n]`` (flat) and one point's shape."""

    name: str
    label: str
    model: keras.Model
    input_shape: tuple[int, ...]
    points: np.ndarray
    n: int
    m: int
    #: method-name prefix -> why it is not run on this workload
    skip: dict[str, str] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass of one point (Dense and Conv2D layers)."""
        return model_macs(self.model)

    def jax_fn(self):
        """The same network as a JAX function of one flat point ``[n] -> [m]``.

        The weights are copied out of the Keras layers with ``get_weights``.
        """
        return _jax_network(self.model, self.input_shape)


def model_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass of one point through the Dense and Conv2D
    layers (elementwise work left out: it is small next to them here)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            out_positions = int(np.prod(layer.output.shape[1:-1]))
            total += out_positions * int(np.prod(layer.kernel.shape))
    return total


def matmul_throughput(size: int = 1024, repeats: int = 20) -> dict[str, float]:
    """GFLOP/s of one float32 ``size x size`` matrix product: TensorFlow's (and JAX's),
    the median of ``repeats`` interleaved calls. The machine's dense-arithmetic ceiling
    as these libraries reach it, measured in the same run as everything else."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    tf_mm = tf.function(lambda a, b: tf.matmul(a, b))
    calls = {"tf": lambda: tf_mm(ta, tb).numpy()}
    if HAVE_JAX:
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        jax_mm = jax.jit(lambda a, b: a @ b)
        calls["jax"] = lambda: np.asarray(jax_mm(ja, jb))
    times: dict[str, list[float]] = {k: [] for k in calls}
    for f in calls.values():
        f()
    for _ in range(repeats):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: 2 * size**3 / statistics.median(v) / 1e9 for k, v in times.items()}


def _points(count: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, n)).astype(np.float32)


def mlp_workload(name: str, sizes: list[int], points: int, *, seed: int = 0) -> Workload:
    """A tanh MLP ``sizes[0] -> ... -> sizes[-1]`` (linear last layer) at ``points`` points."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))]
    for i, units in enumerate(sizes[1:]):
        layers.append(keras.layers.Dense(units, activation="tanh" if i < len(sizes) - 2 else "linear"))
    model = keras.Sequential(layers, name=name)
    label = f"MLP {' -> '.join(map(str, sizes))}, {points} points"
    return Workload(name, label, model, (sizes[0],), _points(points, sizes[0], seed + 1), sizes[0], sizes[-1])


def cnn_workload(
    name: str,
    points: int,
    *,
    image: tuple[int, int, int] = (32, 32, 3),
    filters: tuple[int, ...] = (16, 32),
    outputs: int = 10,
    seed: int = 0,
    skip_forward: bool = False,
) -> Workload:
    """A small CNN: stride-2 3x3 tanh convolutions, flatten, a linear dense layer."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(image)]
    for f in filters:
        layers.append(keras.layers.Conv2D(f, 3, strides=2, padding="same", activation="tanh"))
    layers += [keras.layers.Flatten(), keras.layers.Dense(outputs)]
    model = keras.Sequential(layers, name=name)
    n = int(np.prod(image))
    conv = " -> ".join(f"conv{f}/2" for f in filters)
    label = f"CNN {'x'.join(map(str, image))} -> {conv} -> {outputs}, {points} points"
    w = Workload(name, label, model, tuple(image), _points(points, n, seed + 1), n, outputs)
    if skip_forward:
        why = (f"hand-written forward mode needs n/m = {n // outputs}x more passes than reverse and holds all "
               f"{points} x {n} tangents at once (~20 s and ~10 GB per call at 32 points); the engine's "
               "chunked forward mode shows the wrong-mode cost. Run with --all-strategies to include it")
        w.skip = {"tf fwd": why, "jax jit(vmap(jacfwd))": why}
    return w


#: The benchmark's workloads (issue 4): name -> builder(divide the points by, all_strategies).
WORKLOADS: dict[str, Callable[..., Workload]] = {
    "mlp64": lambda div=1, all_strategies=False: mlp_workload("mlp64", [64, 256, 256, 32], 256 // div),
    "mlp1024": lambda div=1, all_strategies=False: mlp_workload("mlp1024", [1024, 512, 10], 64 // div),
    "mlp8": lambda div=1, all_strategies=False: mlp_workload("mlp8", [8, 256, 512], 256 // div),
    "cnn": lambda div=1, all_strategies=False: cnn_workload("cnn", 32 // div, skip_forward=not all_strategies),
}


def _jax_network(model: keras.Model, input_shape: tuple[int, ...]):
    acts = {"tanh": jnp.tanh, "linear": lambda h: h, "relu": jax.nn.relu}
    steps = []
    for layer in model.layers:
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.Dense):
            w, b = (jnp.asarray(a) for a in layer.get_weights())
            steps.append(("dense", w, b, acts[cfg["activation"]]))
        elif isinstance(layer, keras.layers.Conv2D):
            k, b = (jnp.asarray(a) for a in layer.get_weights())  # HWIO, like lax's "HWIO"
            steps.append(("conv", k, b, acts[cfg["activation"]], tuple(cfg["strides"]), cfg["padding"].upper()))
        elif isinstance(layer, keras.layers.Flatten):
            steps.append(("flatten",))
        else:  # pragma: no cover - only the layers the workloads use
            raise TypeError(f"no JAX translation for {type(layer).__name__}")

    def f(x):
        h = x.reshape((1,) + tuple(input_shape))
        for step in steps:
            if step[0] == "dense":
                h = step[3](h @ step[1] + step[2])
            elif step[0] == "conv":
                _, k, b, act, strides, padding = step
                h = jax.lax.conv_general_dilated(
                    h, k, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
                )
                h = act(h + b)
            else:
                h = h.reshape(1, -1)
        return h.reshape(-1)

    return f


# ----------------------------------------------------------------------------- methods
@dataclass
class Method:
    """A way to compute all Jacobians ``[P, m, n]`` at once.

    ``make()`` builds a fresh callable (new ``Target``, new ``tf.function``, new ``jit``),
    so the first call after it includes all tracing and compiling.
    """

    name: str
    group: str
    make: Callable[[], Callable[[np.ndarray], np.ndarray]]


class _EngineJacobian:
    def __init__(self, w: Workload, mode: str, **target_kwargs):
        self.target = engine.Target(w.model, w.input_shape, batched=True, dtype="float32", **target_kwargs)
        self.mode = mode
        self.strategy: str | None = None

    def __call__(self, x):
        d = engine.jacobian(self.target, x, mode=self.mode)
        # the kernel, and whether XLA runs it (the target's choice: autotuned or forced)
        xla = self.target.jit_compile is True or any(self.target.xla.chosen.values())
        self.strategy = d.strategy + (" + XLA" if xla else "")
        return d.values


class _EngineFD:
    def __init__(self, w: Workload):
        self.target = engine.Target(w.model, w.input_shape, batched=True, dtype="float32")
        self.step: np.ndarray | None = None

    def __call__(self, x):
        d = engine.finite_difference(self.target, x)
        self.step = d.step
        return d.values


NO_XLA = "sensreport auto, Target(jit_compile=False) (reports' default)"


def _engine_supports_xla() -> bool:
    return "jit_compile" in inspect.signature(engine.Target.__init__).parameters


def engine_methods(w: Workload, *, xla: bool = False) -> list[Method]:
    out = [Method("sensreport auto", "sensreport", lambda: _EngineJacobian(w, "auto"))]
    for mode in ("forward", "reverse", "reverse-pfor"):
        out.append(Method(f"sensreport mode={mode}", "sensreport-mode", lambda mode=mode: _EngineJacobian(w, mode)))
    if xla and _engine_supports_xla():
        out.append(
            Method("sensreport auto, Target(jit_compile=True)", "sensreport-mode",
                   lambda: _EngineJacobian(w, "auto", jit_compile=True))
        )
    if _engine_supports_xla():
        # what a report run does by default (execution.xla: false): no XLA, no tuning
        out.append(Method(NO_XLA, "sensreport-mode", lambda: _EngineJacobian(w, "auto", jit_compile=False)))
    return out


def _flat_model(w: Workload):
    shape = [int(s) for s in w.input_shape]

    def call(x):  # [B, n] -> [B, m]
        y = w.model(tf.reshape(x, [-1] + shape))
        return tf.reshape(y, [tf.shape(x)[0], -1])

    return call


def tf_batch_jacobian(w: Workload, jit: bool) -> Callable[[np.ndarray], np.ndarray]:
    """``GradientTape.batch_jacobian`` (reverse mode, ``pfor`` over outputs) in a ``tf.function``."""
    f = _flat_model(w)

    @tf.function(input_signature=[tf.TensorSpec([None, w.n], tf.float32)], jit_compile=jit)
    def jac(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
        return tape.batch_jacobian(y, x)

    return lambda x: jac(x).numpy()


def tf_forward_points(w: Workload, jit: bool) -> Callable[[np.ndarray], np.ndarray]:
    """``vectorized_map`` over points of a per-point forward-mode Jacobian (n one-hot tangents)."""
    f, n = _flat_model(w), w.n

    @tf.function(input_signature=[tf.TensorSpec([None, n], tf.float32)], jit_compile=jit)
    def jac(x):
        eye = tf.eye(n, dtype=x.dtype)

        def per_point(xi):
            xb = tf.broadcast_to(xi[None], [n, n])
            with tf.autodiff.ForwardAccumulator(xb, eye) as acc:
                y = f(xb)
            return tf.transpose(acc.jvp(y))  # [m, n]

        return tf.vectorized_map(per_point, x)

    return lambda x: jac(x).numpy()


def tf_forward_basis(w: Workload, jit: bool) -> Callable[[np.ndarray], np.ndarray]:
    """``vectorized_map`` over one-hot tangents of a batched JVP (all points at once)."""
    f, n = _flat_model(w), w.n

    @tf.function(input_signature=[tf.TensorSpec([None, n], tf.float32)], jit_compile=jit)
    def jac(x):
        def column(v):
            with tf.autodiff.ForwardAccumulator(x, tf.broadcast_to(v[None], tf.shape(x))) as acc:
                y = f(x)
            return acc.jvp(y)  # [B, m]

        return tf.transpose(tf.vectorized_map(column, tf.eye(n, dtype=x.dtype)), [1, 2, 0])

    return lambda x: jac(x).numpy()


def tf_methods(w: Workload, *, xla: bool = True) -> list[Method]:
    out = []
    for label, build in (
        ("batch_jacobian", tf_batch_jacobian),
        ("fwd vmap(points)", tf_forward_points),
        ("fwd vmap(basis)", tf_forward_basis),
    ):
        for jit in (False, True) if xla else (False,):
            name = f"tf {label}" + (" +XLA" if jit else "")
            out.append(Method(name, "tf", lambda build=build, jit=jit: build(w, jit)))
    return out


def jax_methods(w: Workload) -> list[Method]:
    if not HAVE_JAX:
        return []

    def make(kind):
        f = w.jax_fn()
        jac = jax.jit(jax.vmap(jax.jacrev(f) if kind == "rev" else jax.jacfwd(f)))
        return lambda x: np.asarray(jac(x).block_until_ready())

    return [
        Method("jax jit(vmap(jacrev))", "jax", lambda: make("rev")),
        Method("jax jit(vmap(jacfwd))", "jax", lambda: make("fwd")),
    ]


# ------------------------------------------------------------------------ naive loops
def naive_jacobian_point(w: Workload, x: np.ndarray) -> np.ndarray:
    """One point's Jacobian ``[m, n]``: per output, an eager forward pass and one ``tape.gradient``."""
    shape = [1] + [int(s) for s in w.input_shape]
    xt = tf.constant(x[None])
    rows = []
    for i in range(w.m):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            yi = tf.reshape(w.model(tf.reshape(xt, shape)), [-1])[i]
        rows.append(tape.gradient(yi, xt).numpy()[0])
    return np.stack(rows)


def naive_fd_point(w: Workload, x: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """One point's central differences ``[m, n]``: two eager model calls per input.

    ``plus``/``minus`` are the applied float32 steps, as ``engine.finite_difference``
    computes them, so both give the same numbers up to rounding.
    """
    shape = [1] + [int(s) for s in w.input_shape]
    out = np.empty((w.m, w.n))
    for j in range(w.n):
        up, down = x.copy(), x.copy()
        up[j] += plus[j]
        down[j] -= minus[j]
        y_up = w.model(tf.constant(up.reshape(shape))).numpy().reshape(-1).astype(np.float64)
        y_down = w.model(tf.constant(down.reshape(shape))).numpy().reshape(-1).astype(np.float64)
        out[:, j] = (y_up - y_down) / (float(plus[j]) + float(minus[j]))
    return out


def naive_fd_entries(w: Workload, x: np.ndarray, plus: np.ndarray, minus: np.ndarray, count: int):
    """The naive double loop over inputs and outputs, as ANCHORS measured it: for each
    entry ``J[i, j]``, two eager model calls and output ``i`` of each. Runs the first
    ``count`` entries of one point (inputs outer, outputs inner); returns
    ``([(i, j, value)], per-entry seconds)``.
    """
    shape = [1] + [int(s) for s in w.input_shape]
    got, times = [], []
    for e in range(count):
        j, i = divmod(e, w.m)
        t0 = time.perf_counter()
        up, down = x.copy(), x.copy()
        up[j] += plus[j]
        down[j] -= minus[j]
        y_up = float(w.model(tf.constant(up.reshape(shape))).numpy().reshape(-1)[i])
        y_down = float(w.model(tf.constant(down.reshape(shape))).numpy().reshape(-1)[i])
        got.append((i, j, (y_up - y_down) / (float(plus[j]) + float(minus[j]))))
        times.append(time.perf_counter() - t0)
    return got, times


def fd_applied_steps(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 steps ``engine.finite_difference`` applies (central, step auto)."""
    x64 = np.asarray(points, dtype=np.float64)
    h = engine.fd_step(x64, "central", "float32").astype(np.float32)
    x = x64.astype(np.float32)
    return (x + h) - x, x - (x - h)


FLOOR = "floor for FD: tf.function model calls on all 2nP rows, no differencing"
NAIVE_FD_ENTRIES = "naive FD double loop (2 eager model calls per input and output, as in ANCHORS)"


def fd_floor(w: Workload, chunk_rows: int = 1 << 14) -> Callable[[np.ndarray], None]:
    """The model evaluation alone on as many rows as central differences need (``2 n P``).

    No batched finite-difference code can be faster than this; it bounds the speed-up
    over the naive double loop, which evaluates the same rows one at a time.
    """
    f = tf.function(_flat_model(w), input_signature=[tf.TensorSpec([None, w.n], tf.float32)])

    def run(x):
        total = 2 * w.n * len(x)
        rows = np.resize(x, (min(chunk_rows, total), w.n))
        for start in range(0, total, chunk_rows):
            f(rows[: min(chunk_rows, total - start)]).numpy()

    return run


def naive_points(calls_per_point: int, budget_calls: int, most: int) -> int:
    """How many points to time a naive loop on: about ``budget_calls`` eager calls, 1..most."""
    return int(max(1, min(most, budget_calls // max(1, calls_per_point))))


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    workload: str
    method: str
    group: str
    points: int
    first_s: float | None = None
    samples: list[float] = field(default_factory=list)
    extrapolated_from: int | None = None  # naive loops: timed on this many points (or entries)
    unit: str = "pts"
    max_abs_diff: float | None = None
    reference: str | None = None
    tolerance: float | None = None
    strategy: str | None = None
    error: str | None = None
    skipped: str | None = None

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def agrees(self) -> bool | None:
        if self.max_abs_diff is None or self.tolerance is None:
            return None
        return bool(self.max_abs_diff <= self.tolerance)


@dataclass
class Options:
    repeats: int = 21
    budget_s: float = 8.0  # warm-call seconds per method, beyond which fewer repeats are taken
    xla: bool = True
    jax: bool = True
    naive: bool = True
    naive_ad_calls: int = 1024  # eager tape calls the naive AD loop is timed on (about)
    naive_fd_calls: int = 4096  # eager model calls the naive FD loop is timed on (about)
    log: Callable[[str], None] = lambda s: None


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference; inf when the shapes differ (a wrong layout must not broadcast)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def _measure(methods: list[Method], x: np.ndarray, w: Workload, opts: Options):
    """First call of each method on a fresh object, then interleaved warm calls."""
    results: dict[str, Result] = {}
    state: dict[str, tuple[Callable, np.ndarray]] = {}
    for meth in methods:
        res = Result(w.name, meth.name, meth.group, len(x))
        results[meth.name] = res
        why = next((v for k, v in w.skip.items() if meth.name.startswith(k)), None)
        if why:
            res.skipped = why
            continue
        opts.log(f"  {w.name}: first call of {meth.name}")
        t0 = time.perf_counter()
        try:
            fn = meth.make()
            values = fn(x)
        except Exception as exc:  # noqa: BLE001 - a failing strategy is a finding, not a crash
            res.error = f"{type(exc).__name__}: {engine.first_line(exc)}"
            continue
        res.first_s = time.perf_counter() - t0
        state[meth.name] = (fn, values)
    # Interleaved warm calls, in classes of comparable methods timed one class after the
    # other: a call right after a 50-500x slower one (a wrong-mode Jacobian, a finite-
    # difference sweep: hundreds of MB of fresh memory, caches flushed) ran 10-30% slower,
    # which is noise for the slow method's ratio but not for the contenders'. Automatic
    # and finite-difference methods are separate classes (compared only within
    # themselves); within the automatic ones, a first interleaved round splits off the
    # methods more than SLOW_FACTOR x slower than the fastest.
    rng = random.Random(0)

    def rounds(names: list[str], count: int) -> None:
        for _ in range(count):
            # a new order each round, so no method always follows the same neighbour
            for name in rng.sample(names, len(names)):
                res = results[name]
                if res.samples and sum(res.samples) >= opts.budget_s:
                    continue
                fn = state[name][0]
                t0 = time.perf_counter()
                fn(x)
                res.samples.append(time.perf_counter() - t0)

    ad = [name for name in state if results[name].group in AD_GROUPS]
    rounds(ad, 1)
    fastest = min(results[name].samples[0] for name in ad) if ad else 0.0
    for cls in ([n for n in ad if results[n].samples[0] <= SLOW_FACTOR * fastest],
                [n for n in ad if results[n].samples[0] > SLOW_FACTOR * fastest],
                [name for name in state if results[name].group in FD_GROUPS]):
        rounds(cls, opts.repeats - (cls[0] in ad) if cls else 0)
    return results, state


def run_workload(w: Workload, opts: Options) -> list[Result]:
    """Every method on one workload; timings plus agreement with the reference."""
    x = w.points
    methods = engine_methods(w, xla=opts.xla) + tf_methods(w, xla=opts.xla)
    if opts.jax:
        methods += jax_methods(w)
    methods.append(Method("sensreport finite_difference (batched)", "fd", lambda: _EngineFD(w)))
    methods.append(Method(FLOOR, "fd-floor", lambda: fd_floor(w)))
    # One untimed eager call so no method pays for building the Keras model.
    w.model(tf.constant(x[:1].reshape((1,) + w.input_shape)))
    results, state = _measure(methods, x, w, opts)

    # The reference is the engine's result; should the engine fail (reported as such),
    # the first automatic method that ran.
    ref_name = next((r.method for r in results.values()
                     if r.method in state and r.group in ("sensreport", "sensreport-mode", "tf", "jax")), None)
    if ref_name is None:
        raise RuntimeError(f"{w.name}: no automatic method ran: {results['sensreport auto'].error}")
    ref = state[ref_name][1]
    scale = max(1.0, float(np.max(np.abs(ref))))
    for name, res in results.items():
        if name not in state:
            continue
        fn, values = state[name]
        if values is None:
            continue
        if isinstance(fn, _EngineJacobian):
            res.strategy = fn.strategy
        if res.group == "fd":
            res.max_abs_diff, res.reference, res.tolerance = _diff(values, ref), ref_name, FD_RTOL * scale
        elif name == ref_name:
            # The reference itself against an independent program.
            other = "jax jit(vmap(jacrev))" if "jax jit(vmap(jacrev))" in state else "tf batch_jacobian"
            if other in state and other != name:
                res.max_abs_diff, res.reference = _diff(values, state[other][1]), other
                res.tolerance = AD_RTOL * scale
        else:
            res.max_abs_diff, res.reference, res.tolerance = _diff(values, ref), ref_name, AD_RTOL * scale

    out = list(results.values())
    if opts.naive:
        out += _naive(w, ref, ref_name, state, opts, scale)
    return out


def _naive(w: Workload, ref: np.ndarray, ref_name: str, state, opts: Options, scale: float) -> list[Result]:
    out = []
    x = w.points
    # Naive AD loop: per point, m eager (forward + tape.gradient) calls.
    k = min(len(x), naive_points(w.m, opts.naive_ad_calls, 8))
    res = Result(w.name, "naive loop (eager tape.gradient per output per point)", "naive", len(x), extrapolated_from=k)
    opts.log(f"  {w.name}: naive AD loop on {k} point(s)")
    naive_jacobian_point(w, x[0])  # warm-up: eager op caches
    vals, per_point = [], []
    for p in range(k):
        t0 = time.perf_counter()
        vals.append(naive_jacobian_point(w, x[p]))
        per_point.append(time.perf_counter() - t0)
    res.samples = [t * len(x) for t in per_point]  # each sample: one point's time scaled to all points
    res.max_abs_diff, res.reference, res.tolerance = _diff(np.stack(vals), ref[:k]), ref_name, AD_RTOL * scale
    out.append(res)

    # Naive FD double loop: per point and input, two eager model calls.
    if "sensreport finite_difference (batched)" in state:
        fd_fn, fd_vals = state["sensreport finite_difference (batched)"]
        plus, minus = fd_applied_steps(x)
        k = min(len(x), naive_points(2 * w.n, opts.naive_fd_calls, 16))
        res = Result(w.name, "naive FD loop per input (2 eager model calls per point and input, all outputs used)", "naive-fd",
                     len(x), extrapolated_from=k)
        opts.log(f"  {w.name}: naive FD loop on {k} point(s)")
        vals, per_point = [], []
        for p in range(k):
            t0 = time.perf_counter()
            vals.append(naive_fd_point(w, x[p], plus[p], minus[p]))
            per_point.append(time.perf_counter() - t0)
        res.samples = [t * len(x) for t in per_point]
        res.max_abs_diff = _diff(np.stack(vals), fd_vals[:k])
        res.reference, res.tolerance = "sensreport finite_difference (batched)", FD_FD_RTOL * scale
        out.append(res)

        # The issue's and ANCHORS' naive double loop: two eager calls per (input, output).
        entries = w.n * w.m
        k = min(entries, max(1, opts.naive_fd_calls // 2))
        res = Result(w.name, NAIVE_FD_ENTRIES, "naive-fd-entry", len(x), extrapolated_from=k, unit="entries")
        opts.log(f"  {w.name}: naive FD loop per (input, output) on {k} entries")
        naive_fd_entries(w, x[0], plus[0], minus[0], min(k, 8))  # warm-up
        got, times = naive_fd_entries(w, x[0], plus[0], minus[0], k)
        res.samples = [t * entries * len(x) for t in times]
        res.max_abs_diff = max(abs(v - fd_vals[0, i, j]) for i, j, v in got)
        res.reference, res.tolerance = "sensreport finite_difference (batched)", FD_FD_RTOL * scale
        out.append(res)
    return out


# ----------------------------------------------------------------------------- report
def _best(results: list[Result], group: str) -> Result | None:
    timed = [r for r in results if r.group == group and r.median_s is not None]
    return min(timed, key=lambda r: r.median_s) if timed else None


def _find(results: list[Result], name: str) -> Result | None:
    return next((r for r in results if r.method == name), None)


def paired_ratio(a: Result, b: Result, *, resamples: int = 4000, seed: int = 0) -> tuple[float, float, float] | None:
    """Median of the per-round time ratios ``a / b`` and a bootstrap 95% interval for it.

    Warm calls of comparable methods are interleaved round by round, so the i-th samples
    of ``a`` and ``b`` met the same machine state: their ratio cancels most of the load
    that moves both. The interval (percentile bootstrap of the median, seeded) says how
    well one run resolves the ratio. None when the two were not timed in the same rounds.
    """
    k = min(len(a.samples), len(b.samples))
    if k < 3:
        return None
    ratios = np.asarray(a.samples[:k]) / np.asarray(b.samples[:k])
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(resamples, k), replace=True), axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return float(np.median(ratios)), float(lo), float(hi)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    v = seconds * 1e3
    if v >= 1e5:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(results: list[Result]) -> list[str]:
    lines = [
        "| workload | method | runs | first call (s) | median (ms) | vs best TF | vs best JAX | max abs diff | agrees |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    by_wl: dict[str, list[Result]] = {}
    for r in results:
        by_wl.setdefault(r.workload, []).append(r)
    for wl, rs in by_wl.items():
        best_tf, best_jax = _best(rs, "tf"), _best(rs, "jax")
        for r in sorted(rs, key=lambda r: GROUP_ORDER.index(r.group)):
            name = r.method
            if r.strategy and r.method == "sensreport auto":
                name += f" (chose {r.strategy})"
            if r is best_tf:
                name += " **best TF**"
            if r is best_jax:
                name += " **best JAX**"
            if r.error:
                lines.append(f"| {wl} | {name} | — | — | — | — | — | failed: {r.error[:120]} | — |")
                continue
            if r.skipped:
                lines.append(f"| {wl} | {name} | skipped | — | — | — | — | — | — |")
                continue
            runs = f"{r.extrapolated_from} {r.unit}, extrapolated" if r.extrapolated_from else str(len(r.samples))
            first = f"{r.first_s:.2f}" if r.first_s is not None else "—"
            diff = f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else "—"
            ok = {True: "yes", False: "**NO**", None: "—"}[r.agrees]
            lines.append(
                f"| {wl} | {name} | {runs} | {first} | {_ms(r.median_s)} | "
                f"{_ratio(r.median_s, best_tf.median_s if best_tf else None)} | "
                f"{_ratio(r.median_s, best_jax.median_s if best_jax else None)} | {diff} | {ok} |"
            )
    return lines


@dataclass
class Target_:
    name: str
    workload: str
    measured: str
    status: str  # PASS / TIE (not resolved by the run) / MISS / n/a


def targets(results: list[Result]) -> list[Target_]:
    out: list[Target_] = []
    by_wl: dict[str, list[Result]] = {}
    for r in results:
        by_wl.setdefault(r.workload, []).append(r)

    def status(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "MISS")

    def paired(a: Result, b: Result) -> tuple[str, tuple[float, float, float] | None]:
        p = paired_ratio(a, b)
        text = f"; per round {p[0]:.2f}x, 95% CI {p[1]:.2f}-{p[2]:.2f}" if p else ""
        return text, p

    for wl, rs in by_wl.items():
        auto, best_tf = _find(rs, "sensreport auto"), _best(rs, "tf")
        if auto and best_tf and auto.median_s:
            r = auto.median_s / best_tf.median_s
            text, p = paired(auto, best_tf)
            # TIE: slower by the medians, but the run cannot tell (the interval holds 1.0)
            verdict = "PASS" if r <= 1.0 else ("TIE" if p and p[1] <= 1.0 else "MISS")
            out.append(Target_("engine (auto) at least as fast as the best hand-written TF", wl,
                               f"{r:.2f}x the time of {best_tf.method}{text}", verdict))
    for wl in ("mlp64", "mlp1024", "mlp8"):
        rs = by_wl.get(wl)
        if not rs:
            continue
        auto, best_jax = _find(rs, "sensreport auto"), _best(rs, "jax")
        if auto and auto.median_s and best_jax:
            r = auto.median_s / best_jax.median_s
            text, _ = paired(auto, best_jax)
            out.append(Target_("engine (auto) within 1.5x of JAX", wl,
                               f"{r:.2f}x the time of {best_jax.method}{text}", status(r <= 1.5)))
        else:
            out.append(Target_("engine (auto) within 1.5x of JAX", wl, "JAX not run", "n/a"))
    if "mlp64" in by_wl:
        rs = by_wl["mlp64"]
        auto, naive = _find(rs, "sensreport auto"), next((r for r in rs if r.group == "naive"), None)
        if auto and naive and auto.median_s and naive.median_s:
            r = naive.median_s / auto.median_s
            out.append(Target_("engine at least 1,000x faster than the naive per-output loop", "mlp64",
                               f"{r:,.0f}x (naive extrapolated from {naive.extrapolated_from} points)",
                               status(r >= 1000)))
    for wl, rs in by_wl.items():
        fd, nfd, entry, floor = (next((r for r in rs if r.group == g), None)
                                 for g in ("fd", "naive-fd", "naive-fd-entry", "fd-floor"))
        if fd and entry and fd.median_s and entry.median_s:
            r = entry.median_s / fd.median_s
            per_input = (f"; against the stronger loop with 2 calls per input (all outputs of each call used): "
                         f"{nfd.median_s / fd.median_s:,.0f}x" if nfd and nfd.median_s else "")
            bound = (f", which the bare model evaluation of the same rows bounds at "
                     f"{nfd.median_s / floor.median_s:,.0f}x" if nfd and nfd.median_s and floor and floor.median_s else "")
            out.append(Target_("batched FD at least 1,000x faster than the naive double loop (per input and output)", wl,
                               f"{r:,.0f}x (naive extrapolated from {entry.extrapolated_from} entries{per_input}{bound})",
                               status(r >= 1000)))
    for wl, rs in by_wl.items():
        auto = _find(rs, "sensreport auto")
        modes = [r for r in rs if r.method.startswith("sensreport mode=") and r.median_s]
        if auto and auto.median_s and modes:
            fastest = min(modes, key=lambda r: r.median_s)
            r = auto.median_s / fastest.median_s
            picked = auto.strategy.split(" ")[0] == (fastest.strategy or "").split(" ")[0]  # the same kernel
            out.append(Target_(
                "auto picks the fastest engine mode's kernel (or is within 10% of it)", wl,
                f"auto chose {auto.strategy}; fastest mode {fastest.method.split('=', 1)[1]} (ran {fastest.strategy}); "
                f"auto {r:.2f}x its time",
                status(picked or r <= 1.10)))
    bad = [r for r in results if r.agrees is False]
    failed = [r for r in results if r.error]
    out.append(Target_("all methods agree numerically", "all",
                       "all within tolerance" if not bad else "; ".join(f"{r.workload}/{r.method}" for r in bad),
                       status(not bad)))
    if failed:
        out.append(Target_("every method ran", "all", "; ".join(f"{r.workload}/{r.method}: {r.error}" for r in failed),
                           "MISS"))
    return out


def arithmetic(results: list[Result], shapes: dict[str, tuple[int, int, int, int]],
               peak: dict[str, float]) -> list[str]:
    """Achieved GFLOP/s of the engine and of the best JAX method against the matrix product's.

    ``shapes``: workload -> (points, n, m, forward-pass MACs per point). A Jacobian by
    the chosen direction costs at least ``P (1 + k) F`` multiply-accumulates: the forward
    pass and one JVP (forward, ``k = n``) or VJP (reverse, ``k = m``) per basis vector,
    each about a forward pass's arithmetic.
    """
    lines = ["### How close to the hardware", "",
             f"Dense-arithmetic ceiling measured in this run: a 1024 x 1024 float32 matrix product runs at "
             + ", ".join(f"{v:.0f} GFLOP/s in {'TensorFlow' if k == 'tf' else 'JAX'}" for k, v in peak.items())
             + ". The Jacobian's arithmetic is counted as `P (1 + k) F` multiply-accumulates (k = m in reverse "
             "mode, n in forward mode; F = one forward pass).", "",
             "| workload | direction | GFLOP | sensreport auto GFLOP/s | % of TF's matmul | best JAX GFLOP/s |",
             "|---|---|---:|---:|---:|---:|"]
    for wl, (p, n, m, macs) in shapes.items():
        rs = [r for r in results if r.workload == wl]
        auto, best_jax = _find(rs, "sensreport auto"), _best(rs, "jax")
        if not auto or not auto.median_s or not auto.strategy:
            continue
        forward = auto.strategy.startswith("forward")
        gflop = 2 * p * (1 + (n if forward else m)) * macs / 1e9
        jx = f"{gflop / best_jax.median_s:.0f}" if best_jax and best_jax.median_s else "—"
        lines.append(f"| {wl} | {'forward' if forward else 'reverse'} | {gflop:.2f} | {gflop / auto.median_s:.0f} | "
                     f"{100 * gflop / auto.median_s / peak['tf']:.0f}% | {jx} |")
    return lines


def summaries(results: list[Result]) -> list[str]:
    """First-call costs and the effect of XLA, per workload."""
    lines = ["### First call (tracing / compiling, on a fresh Target / tf.function / jit)", "",
             "`sensreport auto` tunes XLA on its first call (compiles both variants and times them); a report "
             "run does not by default (`execution.xla: false`), which the second column shows.", "",
             "| workload | sensreport auto | auto without XLA (reports' default) | sensreport auto: first / warm "
             "| best TF's first call | best JAX's first call |",
             "|---|---:|---:|---:|---:|---:|"]
    by_wl: dict[str, list[Result]] = {}
    for r in results:
        by_wl.setdefault(r.workload, []).append(r)
    for wl, rs in by_wl.items():
        auto, best_tf, best_jax = _find(rs, "sensreport auto"), _best(rs, "tf"), _best(rs, "jax")

        def fc(r):
            return f"{r.first_s:.2f} s ({r.method})" if r and r.first_s is not None else "—"

        plain = _find(rs, NO_XLA)
        plain_first = f"{plain.first_s:.2f} s" if plain and plain.first_s is not None else "—"
        lines.append(f"| {wl} | {auto.first_s:.2f} s | {plain_first} | {_ratio(auto.first_s, auto.median_s)} | "
                     f"{fc(best_tf)} | {fc(best_jax)} |")
    lines += ["", "### Engine overhead: the same kernel through the engine and by hand", "",
              "`sensreport mode=reverse-pfor` runs `tape.batch_jacobian` in a `tf.function`, as `tf batch_jacobian` "
              "does; the ratio is the engine's own cost (chunk planning, copies).", "",
              "| workload | engine reverse-pfor / tf batch_jacobian |", "|---|---:|"]
    for wl, rs in by_wl.items():
        e, h = _find(rs, "sensreport mode=reverse-pfor"), _find(rs, "tf batch_jacobian")
        if e and h and e.median_s and h.median_s:
            lines.append(f"| {wl} | {e.median_s / h.median_s:.2f} |")
    lines += ["", "### Resolution of one run: the same kernel under two names", "",
              "`sensreport auto` and `sensreport mode=<the direction auto chose>` run the same kernel (each on its "
              "own Target, XLA tuned for each). Their ratio is what this run's noise alone produces.", "",
              "| workload | pair | ratio of medians | per round: median, 95% CI |", "|---|---|---:|---:|"]
    for wl, rs in by_wl.items():
        auto = _find(rs, "sensreport auto")
        twin = _find(rs, f"sensreport mode={auto.strategy.split('-')[0]}") if auto and auto.strategy else None
        if auto and twin and auto.median_s and twin.median_s:
            p = paired_ratio(auto, twin)
            ci = f"{p[0]:.2f}x, {p[1]:.2f}-{p[2]:.2f}" if p else "—"
            lines.append(f"| {wl} | auto / {twin.method[11:]} | {auto.median_s / twin.median_s:.2f} | {ci} |")
    lines += ["", "### XLA (`jit_compile=True`) on the hand-written TF strategies", "",
              "| workload | strategy | median without / with XLA (>1: XLA faster) | extra first-call time with XLA |",
              "|---|---|---:|---:|"]
    for wl, rs in by_wl.items():
        for r in rs:
            if r.group == "tf" and not r.method.endswith("+XLA"):
                x = _find(rs, r.method + " +XLA")
                if x and x.median_s and r.median_s:
                    lines.append(f"| {wl} | {r.method[3:]} | {r.median_s / x.median_s:.2f} | "
                                 f"{x.first_s - r.first_s:+.2f} s |")
        auto, ax = _find(rs, "sensreport auto"), _find(rs, "sensreport auto, Target(jit_compile=True)")
        if auto and ax and auto.median_s and ax.median_s:
            lines.append(f"| {wl} | sensreport auto | {auto.median_s / ax.median_s:.2f} | "
                         f"{ax.first_s - auto.first_s:+.2f} s |")
    return lines


def environment() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "jax": jax.__version__ if HAVE_JAX else None,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def warm_up() -> None:
    """Load TensorFlow's, the engine's and JAX's machinery once, so the first method
    measured does not pay for the process's first tf.function, tape, accumulator or jit."""
    x = tf.constant(np.ones((2, 3), np.float32))

    @tf.function
    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            with tf.autodiff.ForwardAccumulator(x, tf.ones_like(x)) as acc:
                y = tf.tanh(x) * 2
        return tape.batch_jacobian(y, x), acc.jvp(y), tf.vectorized_map(tf.sin, x)

    f(x)
    # The engine's one-time costs (lazy imports, psutil's first memory probe) too: a CLI run
    # pays them once per process, not per model, and they are not what is compared here.
    t = engine.Target(lambda v: tf.tanh(v) * 2, (3,), batched=True, dtype="float32")
    engine.jacobian(t, np.ones((2, 3), np.float32))
    engine.finite_difference(t, np.ones((2, 3), np.float32))
    if HAVE_JAX:
        np.asarray(jax.jit(jax.vmap(jax.jacrev(jnp.tanh)))(np.ones((2, 3), np.float32)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, from {', '.join(WORKLOADS)}")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1/8 of the points, 3 repeats, short naive loops")
    ap.add_argument("--repeats", type=int, default=None, help="warm calls per method (default 21; quick 3)")
    ap.add_argument("--budget", type=float, default=None, help="warm-call seconds per method before it stops repeating (default 8)")
    ap.add_argument("--no-xla", action="store_true", help="skip the jit_compile=True variants")
    ap.add_argument("--no-jax", action="store_true", help="skip JAX even if installed")
    ap.add_argument("--no-naive", action="store_true", help="skip the naive loops")
    ap.add_argument("--all-strategies", action="store_true",
                    help="also run the hand-written forward-mode strategies on the CNN (slow, ~10 GB)")
    ap.add_argument("--markdown", type=Path, help="also write the report to this file")
    ap.add_argument("--json", type=Path, help="write all measurements as JSON")
    args = ap.parse_args(argv)

    names = [s.strip() for s in args.workloads.split(",") if s.strip()]
    unknown = [s for s in names if s not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    opts = Options(
        repeats=args.repeats or (3 if args.quick else 21),
        budget_s=args.budget if args.budget is not None else (2.0 if args.quick else 8.0),
        xla=not args.no_xla,
        jax=not args.no_jax,
        naive=not args.no_naive,
        naive_ad_calls=128 if args.quick else 1024,
        naive_fd_calls=512 if args.quick else 4096,
        log=lambda s: print(f"[{time.strftime('%H:%M:%S')}] {s}", file=sys.stderr, flush=True),
    )
    env = environment()
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    warm_up()
    opts.log("matrix-product throughput")
    peak_gflops = matmul_throughput()
    results: list[Result] = []
    labels = {}
    shapes: dict[str, tuple[int, int, int, int]] = {}
    for name in names:
        w = WORKLOADS[name](8 if args.quick else 1, args.all_strategies)
        labels[name] = w.label
        shapes[name] = (len(w.points), w.n, w.m, w.macs)
        opts.log(f"workload {name}: {w.label} (n={w.n}, m={w.m})")
        results += run_workload(w, opts)
    total = time.perf_counter() - t_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    cmd = " ".join([".venv/bin/python", "benchmarks/bench_engine.py"] + (argv if argv is not None else sys.argv[1:]))
    lines = [
        f"## Engine benchmark{' (QUICK smoke run: not for comparison)' if args.quick else ''}",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {env['cpu']}, {env['cores']} cores, CPU only; Python {env['python']}, TensorFlow {env['tensorflow']}, "
        f"Keras {env['keras']}, NumPy {env['numpy']}, JAX {env['jax'] or 'not installed'}; {env['date']}; "
        f"1-minute load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end  ",
        f"Warm calls: median of up to {opts.repeats} interleaved calls per method (fewer when a method's warm calls "
        f"exceed {opts.budget_s:g} s); float32 throughout.",
        "",
        "Workloads: " + "; ".join(f"`{k}` = {v}" for k, v in labels.items()) + ".",
        "",
    ]
    lines += table(results)
    reasons = sorted({r.skipped for r in results if r.skipped})
    lines += [""] + [f"Skipped: {why}." for why in reasons]
    lines += [
        "",
        "Ratios are median times divided by the best hand-written TF's / best JAX's median (>1: slower). "
        "Every time includes the conversion of the result to numpy. Max abs diff: against `sensreport auto` "
        f"(AD methods, tolerance {AD_RTOL:g} x max(1, max|J|); FD vs AD {FD_RTOL:g} x); `sensreport auto` itself "
        "against JAX's jacrev (or TF's batch_jacobian without JAX); the naive FD loop against the batched FD "
        f"({FD_FD_RTOL:g} x). Naive loops: timed per point on the first k points, median per-point time x all points.",
        "",
        "### Targets (issue 4)",
        "",
        "| target | workload | measured | status |",
        "|---|---|---|---|",
    ]
    tg = targets(results)
    lines += [f"| {t.name} | {t.workload} | {t.measured} | {t.status} |" for t in tg]
    lines += [""] + arithmetic(results, shapes, peak_gflops)
    lines += [""] + summaries(results)
    lines += ["", f"Peak RSS: {peak:,.0f} MiB. Whole run: {total:.0f} s."]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        payload = {
            "command": cmd,
            "environment": env,
            "options": {k: v for k, v in asdict(opts).items() if k != "log"},
            "results": [dict(asdict(r), median_s=r.median_s, agrees=r.agrees) for r in results],
            "targets": [asdict(t) for t in tg],
            "load_average": {"start": load_start, "end": os.getloadavg()[0]},
            "peak_rss_mib": peak,
            "matmul_gflops": peak_gflops,
            "seconds": total,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
