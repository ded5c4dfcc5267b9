"""Derivatives of a function at many points: Jacobians, rows and finite differences.

Everything here is batched. A :class:`Target` wraps a model or function as a map from
a batch of flat points ``[B, n]`` to a batch of flat outputs ``[B, m]``, and compiles
each derivative kernel once, as a ``tf.function`` whose signature leaves the batch
dimension open, so neither a new chunk size nor a new call retraces it.

Kernels (``B`` points, ``c`` basis vectors in one call):

* ``reverse-pfor``: one forward pass and the ``c`` selected outputs' backward passes
  vectorized by ``GradientTape.batch_jacobian`` (also how selected rows are computed:
  never the full Jacobian to slice a row from it);
* ``forward-pfor``: JVPs of ``c`` one-hot tangents vectorized with ``tf.vectorized_map``
  around one ``tf.autodiff.ForwardAccumulator``; the primal pass does not depend on
  the tangent, so it is computed once;
* ``reverse-tiled`` / ``forward-tiled``: the batch tiled ``c`` times with one-hot
  cotangents / tangents in one ``GradientTape.gradient`` / ``ForwardAccumulator`` call.
  They repeat the primal pass but need no ``pfor`` rule for any op: the fallback;
* ``fd-central`` / ``fd-forward``: every point's perturbed copies built and evaluated
  in one call.

When one call covers the whole basis, the ``-full`` variants of the two pfor kernels run
instead: ``batch_jacobian`` of all outputs (no ``gather``, whose gradient is a scatter in
every backward pass) and JVPs of the identity's columns (a constant). Results name them
by their family (``reverse-pfor``, ``forward-pfor``).

``auto`` picks forward mode when there are at most as many inputs as outputs. XLA
(``jit_compile``) is off, on, or chosen per kernel by timing (:func:`autotune_xla`).
All functions take and return numpy arrays.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import ComputeError

#: Default share of the machine's available memory one computation may use.
DEFAULT_MEMORY_FRACTION = 0.25
#: Most rows (points x basis vectors) sent to the model in one call.
MAX_ROWS_PER_CALL = 1 << 16

#: ``mode`` values: ``auto`` picks the direction by shape; ``forward`` and ``reverse`` use
#: the vectorized kernel and fall back to the tiled one; the last four name one kernel.
MODES = ("auto", "forward", "reverse", "forward-pfor", "forward-tiled", "reverse-pfor", "reverse-tiled")
#: Kernels built on pfor (vectorized_map / batch_jacobian), with a tiled fallback.
KERNELS_WITH_FALLBACK = frozenset({"forward-pfor", "forward-pfor-full", "reverse-pfor", "reverse-pfor-full"})
#: The kernels for all basis vectors at once (no index argument) and the name results show.
FULL_KERNELS = {"reverse-pfor": "reverse-pfor-full", "forward-pfor": "forward-pfor-full"}
#: What each direction tries, in order; the tiled reverse kernel needs neither pfor nor
#: forward-mode rules, so it is everyone's last resort.
KERNEL_ORDER = {
    "forward": ("forward-pfor", "forward-tiled", "reverse-tiled"),
    "reverse": ("reverse-pfor", "reverse-tiled"),
}


class NotDifferentiableError(Exception):
    """Raised while tracing when TensorFlow finds no gradient path to the inputs."""


_TF = None


def _tf():
    """TensorFlow, imported on first use (``sensreport --help`` must stay instant)."""
    global _TF
    if _TF is not None:  # every engine call asks: the set-up below runs once
        return _TF
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        # TensorFlow's C++ start-up banner ignores TF_CPP_MIN_LOG_LEVEL and would land in a
        # scheduler's captured output: silence stderr while importing. Import errors still
        # surface as Python exceptions after stderr is restored.
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)
    _TF = tf
    return tf


#: (time.monotonic(), bytes) of the last reading of available memory.
_AVAILABLE: tuple[float, int] | None = None
#: How long a reading of available memory is reused: a run asks once per engine call,
#: and reading /proc/meminfo costs ~20 us each time.
AVAILABLE_MEMORY_TTL = 1.0


def available_memory() -> int:
    """Bytes of memory available to this process now (read at most once a second)."""
    global _AVAILABLE
    now = time.monotonic()
    if _AVAILABLE is not None and now - _AVAILABLE[0] < AVAILABLE_MEMORY_TTL:
        return _AVAILABLE[1]
    try:
        import psutil

        value = int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a dependency; be safe anyway
        value = 8 << 30
    _AVAILABLE = (now, value)
    return value


def default_memory_budget() -> int:
    """The default memory budget: a quarter of the memory available now."""
    return int(available_memory() * DEFAULT_MEMORY_FRACTION)


@dataclass
class Derivative:
    """A derivative array and how it was obtained.

    ``values`` is ``[P, k, n]`` (points, outputs, inputs) and read-only (when one call
    computed it, it is a view of TensorFlow's result, not a copy; ``np.array(values)``
    gives a writable copy). ``seconds`` is the whole wall time including the first call,
    ``first_call_seconds`` the time of the first chunk (which includes tracing).
    """

    values: np.ndarray
    method: str
    strategy: str
    seconds: float
    first_call_seconds: float
    calls: int
    chunk_points: int
    notes: list[str] = field(default_factory=list)
    step: np.ndarray | None = None  # finite differences: the step used, [P, n]
    dtype: str = "float32"


class Target:
    """A model or function prepared for batched differentiation.

    Parameters
    ----------
    fn : callable
        With ``batched=True``, maps a tensor ``[B, *input_shape]`` to
        ``[B, *output_shape]`` (Keras and SavedModel models). With ``batched=False``,
        maps one point ``[*input_shape]`` to ``[*output_shape]``; the target
        vectorizes it over points with ``tf.vectorized_map`` and falls back to
        ``tf.map_fn`` (slower, always correct) when an op cannot be vectorized.
    input_shape : tuple of int
        The shape of one point.
    batched : bool
        Whether ``fn`` already takes a batch.
    dtype : str
        The dtype in which derivatives are computed (``float32`` or ``float64``).
    activation_size : int, optional
        Floats of intermediate activations per point, used to estimate memory.
    jit_compile : bool or "auto"
        Compile the derivative kernels with XLA: always, never, or (``"auto"``) when a
        timing of both on the first chunk finds XLA faster (see :func:`autotune_xla`).
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        input_shape: tuple[int, ...],
        *,
        batched: bool = True,
        dtype: str = "float32",
        activation_size: int | None = None,
        name: str = "model",
        jit_compile: bool | str = "auto",
    ):
        self.fn = fn
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n = int(np.prod(self.input_shape, dtype=np.int64)) if self.input_shape else 1
        self.batched = batched
        self.dtype = str(dtype)
        self.name = name
        self.activation_size = activation_size
        self.jit_compile = jit_compile
        self._xla: dict[tuple[str, str], bool] = {}  # autotuned: kernel -> XLA faster?
        self._no_xla: set[tuple[str, str]] = set()  # kernels XLA could not compile: they run without it
        self.output_shape: tuple[int, ...] | None = None
        self.notes: list[str] = []
        self._vectorize = "pfor"
        self._eager = False
        self._kernels: dict[tuple[str, str, bool], Any] = {}  # the tf.functions (traced once each)
        self._calls: dict[tuple[str, str, bool], Any] = {}  # what is called: their concrete functions

    # ------------------------------------------------------------------ shapes
    @property
    def m(self) -> int:
        if self.output_shape is None:
            raise RuntimeError("call Target.evaluate once before asking for m")
        return math.prod(self.output_shape)  # a tuple of ints; 1 for a scalar output

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ------------------------------------------------------------ model calls
    def _flat_call(self, xf):
        """[B, n] -> [B, m] inside TensorFlow, in the dtype of ``xf``."""
        tf = _tf()
        batch = tf.shape(xf)[0]
        x = tf.reshape(xf, tf.concat([[batch], tf.constant(self.input_shape, tf.int32)], 0))
        if self.batched:
            y = self.fn(x)
        elif self._vectorize == "pfor":
            y = tf.vectorized_map(self.fn, x, fallback_to_while_loop=False)
        else:
            y = tf.map_fn(self.fn, x, fn_output_signature=xf.dtype)
        y = tf.convert_to_tensor(y)
        if self.output_shape is None and y.shape.rank is not None:
            self._traced_output_shape = tuple(int(s) if s is not None else -1 for s in y.shape[1:])
        self._native_output_dtype = y.dtype
        if y.dtype != xf.dtype:
            y = tf.cast(y, xf.dtype)
        return tf.reshape(y, [batch, -1])

    def _kernel(self, kind: str, dtype: str, jit: bool | None = None):
        """Compile (once) the kernel ``kind`` for inputs of ``dtype``, with XLA when ``jit``.

        ``jit=None`` follows the target: ``jit_compile=True`` always, ``"auto"`` when
        :func:`autotune_xla` found XLA faster for this kernel, else never.
        """
        if jit is None:
            jit = self.jit_compile is True or (self.jit_compile == "auto" and self._xla.get((kind, dtype), False))
        jit = bool(jit) and kind != "evaluate" and (kind, dtype) not in self._no_xla
        key = (kind, dtype, jit)
        if key in self._calls:
            return self._calls[key]
        tf = _tf()
        n = self.n
        tdtype = tf.as_dtype(dtype)
        x_spec = tf.TensorSpec([None, n], tdtype)
        i_spec = tf.TensorSpec([None], tf.int32)
        f64_spec = tf.TensorSpec([None, n], tf.float64)

        def tile(x, count):
            return tf.reshape(tf.tile(x[None], [count, 1, 1]), [-1, n])

        def evaluate(x):
            return self._flat_call(x)

        def unconnected():
            return NotDifferentiableError("no gradient path from the inputs to the outputs")

        def forward_tiled(x, cols):
            # the batch tiled once per tangent: one model call on c * B rows
            batch, c = tf.shape(x)[0], tf.shape(cols)[0]
            xt = tile(x, c)
            tangents = tf.one_hot(cols, n, dtype=tdtype)  # [c, n]
            tangents = tf.reshape(tf.broadcast_to(tangents[:, None, :], [c, batch, n]), [-1, n])
            with tf.autodiff.ForwardAccumulator(xt, tangents) as acc:
                y = self._flat_call(xt)
            jvp = acc.jvp(y)
            if jvp is None:
                raise unconnected()
            return tf.transpose(tf.reshape(jvp, [c, batch, -1]), [1, 2, 0])  # [B, m, c]

        def forward_pfor(x, cols):
            return forward_pfor_tangents(x, tf.one_hot(cols, n, dtype=tdtype))

        def forward_pfor_tangents(x, tangents):
            # JVPs vectorized over the tangents: the primal pass is loop-invariant, done once
            def jvp(t):
                with tf.autodiff.ForwardAccumulator(x, tf.broadcast_to(t[None, :], tf.shape(x))) as acc:
                    y = self._flat_call(x)
                out = acc.jvp(y)
                if out is None:
                    raise unconnected()
                return out  # [B, m]

            return tf.transpose(tf.vectorized_map(jvp, tangents, fallback_to_while_loop=False), [1, 2, 0])

        def forward_pfor_full(x):
            # all inputs: the identity as a constant, which XLA can fold into the first layer
            return forward_pfor_tangents(x, tf.eye(n, dtype=tdtype))

        def reverse_tiled(x, outs):
            # the batch tiled once per cotangent: one model call on c * B rows
            batch, c = tf.shape(x)[0], tf.shape(outs)[0]
            xt = tile(x, c)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = self._flat_call(xt)
            cot = tf.one_hot(outs, tf.shape(y)[1], dtype=tdtype)  # [c, m]
            cot = tf.reshape(tf.broadcast_to(cot[:, None, :], [c, batch, tf.shape(y)[1]]), [c * batch, -1])
            grad = tape.gradient(y, xt, output_gradients=cot)
            if grad is None:
                raise unconnected()
            return tf.transpose(tf.reshape(grad, [c, batch, n]), [1, 0, 2])  # [B, c, n]

        def reverse_pfor(x, outs):
            # one forward pass, the selected outputs' backward passes vectorized (batch_jacobian)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.gather(self._flat_call(x), outs, axis=1)
            jac = tape.batch_jacobian(y, x)
            if jac is None:
                raise unconnected()
            return jac  # [B, c, n]

        def reverse_pfor_full(x):
            # all outputs: no gather (whose gradient, a scatter, would cost in every backward pass)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = self._flat_call(x)
            jac = tape.batch_jacobian(y, x)
            if jac is None:
                raise unconnected()
            return jac  # [B, m, n]

        def quotients(diff, span, cols):
            # differences [B, c, m] in the model's dtype (exact for nearby values), divided
            # by the applied steps in float64: [B, m, c], the layout of the result
            den = tf.gather(span, cols, axis=1)[:, None, :]
            return tf.transpose(tf.cast(diff, tf.float64), [0, 2, 1]) / den

        def fd_central(x, plus, minus, span, cols):
            batch, c = tf.shape(x)[0], tf.shape(cols)[0]
            eye = tf.one_hot(cols, n, dtype=tdtype)[None]  # [1, c, n]
            up = x[:, None, :] + eye * tf.gather(plus, cols, axis=1)[:, :, None]
            down = x[:, None, :] - eye * tf.gather(minus, cols, axis=1)[:, :, None]
            y = self._flat_call(tf.reshape(tf.concat([up, down], axis=1), [-1, n]))
            y = tf.reshape(y, [batch, 2, c, -1])
            return quotients(y[:, 0] - y[:, 1], span, cols)

        def fd_forward(x, plus, minus, span, cols):
            batch, c = tf.shape(x)[0], tf.shape(cols)[0]
            eye = tf.one_hot(cols, n, dtype=tdtype)[None]
            up = tf.reshape(x[:, None, :] + eye * tf.gather(plus, cols, axis=1)[:, :, None], [-1, n])
            y = self._flat_call(tf.concat([up, x], axis=0))
            y_up = tf.reshape(y[: batch * c], [batch, c, -1])
            return quotients(y_up - y[batch * c :][:, None, :], span, cols)

        body, sig = {
            "evaluate": (evaluate, [x_spec]),
            "forward-tiled": (forward_tiled, [x_spec, i_spec]),
            "forward-pfor": (forward_pfor, [x_spec, i_spec]),
            "forward-pfor-full": (forward_pfor_full, [x_spec]),
            "reverse-tiled": (reverse_tiled, [x_spec, i_spec]),
            "reverse-pfor": (reverse_pfor, [x_spec, i_spec]),
            "reverse-pfor-full": (reverse_pfor_full, [x_spec]),
            "fd-central": (fd_central, [x_spec, x_spec, x_spec, f64_spec, i_spec]),
            "fd-forward": (fd_forward, [x_spec, x_spec, x_spec, f64_spec, i_spec]),
        }[kind]
        if kind in KERNELS_WITH_FALLBACK or kind.startswith("fd-"):
            self._kernel("evaluate", dtype)  # settles vectorization / eager mode of the model first
            if self._eager:
                raise RuntimeError("the function cannot be traced by TensorFlow")
        compiled = tf.function(body, input_signature=sig, reduce_retracing=True, jit_compile=jit or None)
        try:
            # Calls go to the concrete function: the signature is fixed (batch dimension
            # open), so the tf.function's per-call dispatch (argument binding, trace
            # cache lookup: ~0.1 ms) buys nothing
            concrete = compiled.get_concrete_function(*sig)
        except NotDifferentiableError:
            raise
        except Exception as exc:  # noqa: BLE001 - any tracing failure decides the fallback
            if jit:
                # XLA cannot compile this kernel: the same kernel runs without it. An XLA
                # failure never changes how the model is vectorized or which kernel runs,
                # so whether XLA was tried (a timing, with "auto") cannot change the path.
                self._no_xla.add((kind, dtype))
                self._note(f"XLA could not compile {_strategy_name(kind)} ({_first_line(exc)}); it runs without XLA.")
                return self._kernel(kind, dtype, jit=False)
            if kind in KERNELS_WITH_FALLBACK or kind.startswith("fd-"):
                raise  # the caller falls back to another kernel
            if not self.batched and self._vectorize == "pfor":
                self._vectorize = "map_fn"
                self._note(
                    "The per-point function could not be vectorized with tf.vectorized_map "
                    f"({_first_line(exc)}); points were mapped with tf.map_fn instead (slower, same numbers)."
                )
                self._kernels.clear()
                self._calls.clear()
                return self._kernel(kind, dtype)
            if kind == "evaluate":
                # A black-box function (e.g. plain numpy) that TensorFlow cannot trace:
                # call it eagerly. Finite differences still work; derivatives cannot.
                self._eager = True
                self._note(
                    f"The function could not be traced by TensorFlow ({_first_line(exc)}); "
                    "it was evaluated eagerly (slower)."
                )
                compiled = concrete = evaluate
            else:
                raise
        self._kernels[key] = compiled
        self._calls[key] = concrete
        return concrete

    def evaluate(self, points: np.ndarray, dtype: str | None = None, memory_budget: int | None = None) -> np.ndarray:
        """Outputs ``[P, m]`` at flat points ``[P, n]``, in calls that fit ``memory_budget``."""
        tf = _tf()
        dtype = dtype or self.dtype
        x = np.asarray(points).reshape(len(points), self.n)  # converted chunk by chunk below
        fn = self._kernel("evaluate", dtype)
        chunk_rows = MAX_ROWS_PER_CALL
        if self.output_shape is not None or memory_budget is not None:
            if self.output_shape is None:
                self.evaluate(x[:1], dtype)
            chunk_rows, _ = plan_chunks(1, self.row_bytes(dtype), len(x), memory_budget or default_memory_budget())
        outs = []
        for start in range(0, len(x), max(1, chunk_rows)):
            chunk = np.asarray(x[start : start + chunk_rows], dtype=dtype)
            if self._eager:
                outs.append(self._eager_eval(chunk))
            else:
                outs.append(_numpy(fn(tf.constant(chunk))))
        y = np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), dtype)
        if self.output_shape is None:
            shape = getattr(self, "_traced_output_shape", None)
            if shape is None or -1 in shape or int(np.prod(shape, dtype=np.int64)) != y.shape[1]:
                shape = (y.shape[1],)
            self.output_shape = tuple(shape)
        return y

    def _eager_eval(self, chunk: np.ndarray) -> np.ndarray:
        tf = _tf()
        x = chunk.reshape((len(chunk),) + self.input_shape)
        if self.batched:
            y = np.asarray(self.fn(tf.constant(x)))
        else:
            y = np.stack([np.asarray(self.fn(tf.constant(p))) for p in x])
        return y.reshape(len(chunk), -1).astype(chunk.dtype)

    def native_dtype(self, dtype: str) -> str:
        """The dtype the model really computes in when given inputs of ``dtype``."""
        try:
            self.evaluate(np.zeros((1, self.n)), dtype=dtype)
        except Exception:  # noqa: BLE001 - a function that refuses this dtype
            return self.dtype
        native = getattr(self, "_native_output_dtype", None)
        return native.name if native is not None and not self._eager else dtype

    # ----------------------------------------------------------- memory plan
    def row_bytes(self, dtype: str | None = None) -> int:
        """Estimated bytes one model row (one point, one basis vector) needs in a call."""
        item = np.dtype(dtype or self.dtype).itemsize
        act = self.activation_size if self.activation_size is not None else 4 * (self.n + self.m)
        # inputs, tangents/cotangents, outputs, and activations kept for the backward pass
        return int(item * (3 * self.n + 3 * self.m + 3 * act))


#: Ops through which TensorFlow has no derivative at all: gradients come out as None or 0.
NO_GRADIENT_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
#: Ops whose derivative TensorFlow defines as zero (or blocks on purpose).
ZERO_GRADIENT_OPS = frozenset({"StopGradient", "PreventGradient", "Round", "Rint", "Floor", "Ceil", "Sign"})
_HARMLESS_OPS = frozenset({"Placeholder", "NoOp"})


def gradient_blockers(target: Target) -> dict[str, list[str]]:
    """Op types in the traced model that block or zero automatic derivatives.

    Returns ``{"none": [...], "zero": [...], "unregistered": [...]}``: ops TensorFlow
    cannot differentiate (``tf.numpy_function``, ``tf.py_function``), ops whose
    derivative is defined as zero (``tf.stop_gradient``, rounding), and ops with no
    registered gradient at all (typically custom ops). Nested function bodies (loops,
    ``tf.map_fn``) are searched too. An eagerly evaluated black box blocks everything.
    """
    from tensorflow.python.framework import ops as tf_ops

    found: dict[str, set[str]] = {"none": set(), "zero": set(), "unregistered": set()}
    kernel = target._kernel("evaluate", target.dtype)
    if target._eager:
        found["none"].add("(not traceable by TensorFlow)")
    else:
        graph_def = kernel.graph.as_graph_def()
        nodes = list(graph_def.node) + [nd for fn in graph_def.library.function for nd in fn.node_def]
        for node in nodes:
            if node.op in NO_GRADIENT_OPS:
                found["none"].add(node.op)
            elif node.op in ZERO_GRADIENT_OPS:
                found["zero"].add(node.op)
            elif node.op not in _HARMLESS_OPS and not node.op.startswith("TensorList"):
                try:
                    tf_ops._gradient_registry.lookup(node.op)
                except LookupError:
                    found["unregistered"].add(node.op)
    return {k: sorted(v) for k, v in found.items()}


def _first_line(exc: BaseException) -> str:
    """The line of an exception's text that says what went wrong.

    TensorFlow wraps errors raised while tracing in an "in user code:" preamble with
    a stack; the cause is on the last non-empty line.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text[:300]


def plan_chunks(rows_per_point: int, row_bytes: int, points: int, budget: int) -> tuple[int, int]:
    """Choose (points per call, basis vectors per call) so one call stays in ``budget``.

    ``rows_per_point`` is how many basis vectors (or perturbed copies) each point
    needs in all. The basis is split only when even one point's rows exceed the budget.
    """
    max_rows = max(1, min(MAX_ROWS_PER_CALL, budget // max(1, row_bytes)))
    basis = max(1, min(rows_per_point, max_rows))
    per_call = max(1, min(points, max_rows // basis))
    return per_call, basis


def _check_fits(key: str, shape: tuple[int, ...], itemsize: int, budget: int, what: str) -> None:
    need = int(np.prod(shape, dtype=np.int64)) * itemsize
    if need > budget:
        raise ComputeError(
            key,
            f"the {what} {list(shape)} needs {_gib(need)} but the memory budget is {_gib(budget)}. "
            "Select fewer outputs (methods.rows), use fewer points, or raise "
            "execution.memory_budget.",
        )


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _strategy_name(kind: str) -> str:
    """The name results show for a kernel (an all-basis-vectors variant is still X-pfor)."""
    return kind.removesuffix("-full")


def select_kernel(target: Target, order) -> tuple[str, Any, list[str]]:
    """The first kernel in ``order`` that traces for ``target``: (name, kernel, notes)."""
    notes: list[str] = []
    for i, kind in enumerate(order):
        try:
            return kind, target._kernel(kind, target.dtype), notes
        except NotDifferentiableError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an op without a forward-mode or pfor rule
            if i == len(order) - 1:
                raise
            notes.append(f"{_strategy_name(kind)} could not be traced ({_first_line(exc)}); "
                         f"{_strategy_name(order[i + 1])} was used.")
    raise ValueError("no kernel to try")  # pragma: no cover


#: Autotuning runs only when one plain call of the first chunk takes at least this long:
#: below it, XLA's compile time (0.1-0.6 s) cannot pay off within a run.
AUTOTUNE_MIN_SECONDS = 0.002
#: Timed calls per variant; the fastest counts (the machine's noise is one-sided).
AUTOTUNE_REPEATS = 10
#: Timing stops after AUTOTUNE_MIN_REPEATS rounds once one variant is at least this much
#: faster (time ratio): a clear difference does not need ten rounds to show.
AUTOTUNE_MIN_REPEATS = 3
AUTOTUNE_CLEAR = 0.8
#: XLA must be at least this much faster (time ratio) to be chosen, so that timing noise
#: alone does not switch it on (its compile time is already paid by then).
AUTOTUNE_MARGIN = 0.97


def _fastest(kernels: list, args: tuple, repeats: int, done: Callable[[list[float]], bool] | None = None) -> list[float]:
    """The fastest of ``repeats`` timed calls of each kernel, calls interleaved.

    ``done(best)``, asked after each round from the ``AUTOTUNE_MIN_REPEATS``-th on, may
    end the timing early.
    """
    best = [np.inf] * len(kernels)
    for r in range(repeats):
        for i, kernel in enumerate(kernels):
            t0 = time.perf_counter()
            _numpy(kernel(*args)[0])
            best[i] = min(best[i], time.perf_counter() - t0)
        if done is not None and r + 1 >= AUTOTUNE_MIN_REPEATS and done(best):
            break
    return best


def autotune_xla(target: Target, kind: str, make_args: Callable[[], tuple]) -> list[str]:
    """With ``jit_compile="auto"``: time ``kind`` with and without XLA; keep the faster.

    ``make_args()`` builds the first chunk's arguments; it is called only when the
    kernel has not been tuned yet, so tuned calls pay nothing.

    Each variant is called once to trace or compile it, then both are timed over
    ``AUTOTUNE_REPEATS`` interleaved rounds (the fastest call of each counts; timing
    stops after ``AUTOTUNE_MIN_REPEATS`` rounds once one variant is faster by a clear
    ``AUTOTUNE_CLEAR`` ratio); XLA is chosen when it takes less than
    ``AUTOTUNE_MARGIN`` of the plain kernel's time. The
    choice is remembered on the target, so a run tunes each kernel once. Returns notes
    for the results.
    """
    if target.jit_compile != "auto" or (kind, target.dtype) in target._xla:
        return []
    target._xla[(kind, target.dtype)] = False
    args = make_args()
    plain_kernel = target._kernel(kind, target.dtype, jit=False)
    plain_kernel(*args)  # traces
    plain = _fastest([plain_kernel], args, 1)[0]
    if plain < AUTOTUNE_MIN_SECONDS:
        return []
    xla_kernel = target._kernel(kind, target.dtype, jit=True)
    if (kind, target.dtype) in target._no_xla:  # tracing for XLA failed: noted on the target
        return []
    try:
        xla_kernel(*args)  # compiles
    except Exception as exc:  # noqa: BLE001 - XLA cannot compile every op
        target._no_xla.add((kind, target.dtype))
        return [f"XLA could not compile {_strategy_name(kind)} ({_first_line(exc)}); it runs without XLA."]
    # interleaved, so that a burst of load elsewhere hits both variants alike
    def clear(best):
        return min(best) < AUTOTUNE_CLEAR * max(best)

    plain, xla = _fastest([plain_kernel, xla_kernel], args, AUTOTUNE_REPEATS, clear)
    faster = xla < AUTOTUNE_MARGIN * plain
    target._xla[(kind, target.dtype)] = faster
    chosen = "with" if faster else "without"
    return [f"{_strategy_name(kind)} runs {chosen} XLA (first chunk: {plain * 1e3:.1f} ms without, {xla * 1e3:.1f} ms with)."]


def choose_mode(n: int, m: int) -> str:
    """Forward mode when there are fewer inputs than outputs, reverse otherwise.

    Forward mode costs about one JVP per input, reverse mode one VJP per output; a
    VJP costs a little more than a JVP, so ties go to forward.
    """
    return "forward" if n <= m else "reverse"


Progress = Callable[[int], None]


def _sweep(
    x: np.ndarray,
    shape: tuple[int, int, int],
    dtype,
    per_call: int,
    width: int,
    basis: int,
    axis: int,
    call: Callable[[slice, np.ndarray], np.ndarray],
    progress: Progress | None,
    *,
    whole: bool = True,
) -> tuple[np.ndarray, float, int]:
    """Run ``call(point_slice, basis_indices)`` over chunks of points (outer) and basis
    (inner) and assemble the read-only ``shape`` array; returns (array, first call's
    seconds, calls).

    Each result fills the chunk's points and, along ``axis`` (1: outputs, 2: inputs), its
    basis indices. When one call covers everything (and ``whole``), its result is the
    array: nothing is allocated up front (an unused array cost more than a copy, with
    fresh pages on every call). ``progress`` is told how many points each finished
    chunk held.
    """
    p = len(x)
    if whole and p and per_call >= p and basis >= width:
        t0 = time.perf_counter()
        out = call(slice(0, p), np.arange(width))
        first, calls = time.perf_counter() - t0, 1
        if progress is not None:
            progress(p)
    else:
        out = np.empty(shape, dtype=dtype)
        first, calls = 0.0, 0
        for start in range(0, p, per_call):
            sl = slice(start, min(p, start + per_call))
            for b0 in range(0, width, basis):
                idx = np.arange(b0, min(width, b0 + basis))
                t0 = time.perf_counter()
                values = call(sl, idx)
                if calls == 0:
                    first = time.perf_counter() - t0
                calls += 1
                where = [sl, slice(None), slice(None)]
                where[axis] = slice(idx[0], idx[-1] + 1)
                out[tuple(where)] = values
            if progress is not None:
                progress(sl.stop - sl.start)
    out.flags.writeable = False  # read-only in every path, like a one-call result (a view)
    return out, first, calls


def jacobian(
    target: Target,
    points: np.ndarray,
    *,
    mode: str = "auto",
    memory_budget: int | None = None,
    key: str = "methods.jacobian",
    progress: Progress | None = None,
) -> Derivative:
    """Full Jacobians ``[P, m, n]`` of ``target`` at every point, by automatic differentiation.

    Parameters
    ----------
    target : Target
    points : ndarray, shape [P, n] (or [P, *input_shape])
    mode : str
        ``auto`` picks forward mode when ``n <= m`` and reverse mode otherwise;
        ``forward`` and ``reverse`` use the vectorized kernel (``forward-pfor``: JVPs
        vectorized over tangents; ``reverse-pfor``: ``batch_jacobian``) and fall back to
        the tiled one when an op cannot be vectorized; the four kernel names force one
        kernel (with the tiled fallback, noted in ``notes``).
    memory_budget : int, optional
        Bytes one computation may use; default a quarter of available memory. The
        result array must fit in it; model calls are chunked to fit.
    progress : callable, optional
        Called with the number of points finished after each chunk.
    """
    tf = _tf()
    x = np.asarray(points, dtype=target.dtype).reshape(len(points), target.n)
    if target.output_shape is None:
        target.evaluate(x[:1])
    n, m, p = target.n, target.m, len(x)
    budget = memory_budget or default_memory_budget()
    _check_fits(key, (p, m, n), np.dtype(target.dtype).itemsize, budget, "Jacobian array")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    direction = choose_mode(n, m) if mode == "auto" else mode.split("-")[0]
    order = KERNEL_ORDER[direction] if mode in ("auto", "forward", "reverse") else (mode, "reverse-tiled")

    def plan(direction: str) -> tuple[int, int, int]:
        width = n if direction == "forward" else m
        return (width, *plan_chunks(width, target.row_bytes(), p, budget))

    width, per_call, basis = plan(direction)
    if basis >= width:
        # the whole basis in one call: batch_jacobian without the gather, JVPs of the
        # identity's columns (traced instead of, not as well as, the indexed kernel:
        # tracing pfor is most of a first call)
        order = tuple(FULL_KERNELS.get(k, k) for k in order)
    kind, kernel, notes = select_kernel(target, order)
    strategy = _strategy_name(kind)
    if strategy.split("-")[0] != direction:  # fell back to the other direction
        direction = strategy.split("-")[0]
        width, per_call, basis = plan(direction)
    t_start = time.perf_counter()

    def probe():
        return tf.constant(x[:per_call])

    if kind in FULL_KERNELS.values():
        notes += autotune_xla(target, kind, lambda: (probe(),))
        full = target._kernel(kind, target.dtype)

        def call(sl, idx):
            return _numpy(full(tf.constant(x[sl])))
    else:
        notes += autotune_xla(target, kind, lambda: (probe(), tf.constant(np.arange(basis), tf.int32)))
        kernel = target._kernel(kind, target.dtype)

        def call(sl, idx):
            return _numpy(kernel(tf.constant(x[sl]), tf.constant(idx, tf.int32)))

    axis = 2 if direction == "forward" else 1
    out, first, calls = _sweep(x, (p, m, n), target.dtype, per_call, width, basis, axis, call, progress)
    return Derivative(
        values=out,
        method="jacobian",
        strategy=strategy,
        seconds=time.perf_counter() - t_start,
        first_call_seconds=first,
        calls=calls,
        chunk_points=per_call,
        notes=list(target.notes) + notes,
        dtype=target.dtype,
    )


def rows(
    target: Target,
    points: np.ndarray,
    outputs: list[int],
    *,
    memory_budget: int | None = None,
    key: str = "methods.rows",
    progress: Progress | None = None,
) -> Derivative:
    """Gradients of the selected outputs at every point: ``[P, k, n]``.

    Reverse mode (the usual case, ``k < n``): one call per chunk computes the ``k``
    selected gradients for all the chunk's points; the other outputs' derivatives are
    never formed. When there are at most as many inputs as selected outputs
    (``n <= k``), ``n`` JVPs cost less than ``k`` VJPs: forward mode runs instead (each
    JVP gives every output's column at once) and the selected outputs are kept.
    """
    tf = _tf()
    x = np.asarray(points, dtype=target.dtype).reshape(len(points), target.n)
    if target.output_shape is None:
        target.evaluate(x[:1])
    n, p, k = target.n, len(x), len(outputs)
    budget = memory_budget or default_memory_budget()
    _check_fits(key, (p, k, n), np.dtype(target.dtype).itemsize, budget, "rows array")
    order = KERNEL_ORDER["reverse"]
    if choose_mode(n, k) == "forward":
        order = ("forward-pfor", "forward-tiled") + order
    strategy, kernel, notes = select_kernel(target, order)
    selected = np.asarray(outputs, dtype=np.int32)
    forward = strategy.startswith("forward")
    width = n if forward else k
    per_call, basis = plan_chunks(width, target.row_bytes(), p, budget)
    if forward:
        def call(sl, idx):
            return _numpy(kernel(tf.constant(x[sl]), tf.constant(idx, tf.int32)))[:, selected, :]  # [b, k, c]
    else:
        def call(sl, idx):
            return _numpy(kernel(tf.constant(x[sl]), tf.constant(selected[idx])))

    t_start = time.perf_counter()
    out, first, calls = _sweep(x, (p, k, n), target.dtype, per_call, width, basis, 2 if forward else 1, call, progress)
    return Derivative(
        values=out,
        method="rows",
        strategy=strategy,
        seconds=time.perf_counter() - t_start,
        first_call_seconds=first,
        calls=calls,
        chunk_points=per_call,
        notes=list(target.notes) + notes,
        dtype=target.dtype,
    )


def fd_step(
    points: np.ndarray, scheme: str, dtype: str, step: float | str = "auto", spread: np.ndarray | None = None
) -> np.ndarray:
    """The finite-difference step for every point and input, ``[P, n]``.

    ``auto``: ``h[p, j] = eps ** (1/3) * max(|x[p, j]|, s[j])`` for central differences
    and ``eps ** (1/2) * max(|x[p, j]|, s[j])`` for forward differences, where ``eps``
    is the machine epsilon of the dtype the model computes in and ``s[j]`` is the
    standard deviation of input ``j`` over the points (``spread``; 1 where it is zero). These
    powers balance truncation error (``O(h^2)`` resp. ``O(h)``) against rounding
    error (``O(eps / h)``) [Nocedal & Wright, Numerical Optimization, 2006, sec. 8.1].
    A number is used as the absolute step for every input.
    """
    x = np.asarray(points, dtype=np.float64)
    if step != "auto":
        return np.full(x.shape, float(step))
    eps = float(np.finfo(np.dtype(dtype)).eps)
    power = 1.0 / 3.0 if scheme == "central" else 0.5
    if spread is None:
        spread = x.std(axis=0) if len(x) > 1 else np.zeros(x.shape[1])
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    return eps**power * np.maximum(np.abs(x), spread[None, :])


def finite_difference(
    target: Target,
    points: np.ndarray,
    *,
    scheme: str = "central",
    step: float | str = "auto",
    memory_budget: int | None = None,
    key: str = "methods.finite_difference",
    progress: Progress | None = None,
    spread: np.ndarray | None = None,
) -> Derivative:
    """Finite-difference Jacobians ``[P, m, n]`` (float64) from batched model calls.

    Every point's ``2 n`` (central) or ``n + 1`` (forward) perturbed copies go through
    the model together, as many points per call as the memory budget allows. The model
    is evaluated in float64 when it computes in float64 given float64 inputs, otherwise
    in its own dtype; the step follows that dtype (see :func:`fd_step`; ``spread`` is
    each input's standard deviation over all points, computed from ``points`` when not
    given). The step actually applied is ``(x + h) - x`` in that dtype, so rounding of
    ``x + h`` does not bias the quotient.
    """
    if scheme not in ("central", "forward"):
        raise ValueError(f"scheme must be 'central' or 'forward', got {scheme!r}")
    x64 = np.asarray(points, dtype=np.float64).reshape(len(points), target.n)
    dtype = target.native_dtype("float64")
    if dtype not in ("float32", "float64"):
        dtype = target.dtype
    n, p = target.n, len(x64)
    if target.output_shape is None:
        target.evaluate(x64[:1].astype(dtype), dtype=dtype)
    m = target.m
    budget = memory_budget or default_memory_budget()
    _check_fits(key, (p, m, n), 8, budget, "finite-difference array")
    h = fd_step(x64, scheme, dtype, step, spread=spread)
    x = x64.astype(dtype)
    plus = (x + h.astype(dtype)) - x
    minus = x - (x - h.astype(dtype)) if scheme == "central" else np.zeros_like(x)
    span = plus.astype(np.float64) + minus  # the quotients' denominators, exact in float64
    copies = 2 if scheme == "central" else 1
    per_call, basis = plan_chunks(copies * n + 1, target.row_bytes(dtype), p, budget)
    cols_per_call = max(1, basis // copies)
    evaluate = target._kernel("evaluate", dtype)
    fd_kernel = None
    if not target._eager:
        try:
            # perturbed copies built inside TensorFlow: no numpy copies of c * B rows
            fd_kernel = target._kernel(f"fd-{scheme}", dtype)
        except Exception:  # noqa: BLE001 - fall back to building the copies in numpy
            fd_kernel = None

    def call(sl, cols):
        if fd_kernel is not None:
            tf = _tf()
            return _numpy(fd_kernel(tf.constant(x[sl]), tf.constant(plus[sl]), tf.constant(minus[sl]),
                                    tf.constant(span[sl]), tf.constant(cols, tf.int32)))  # [b, m, c]
        xs, c = x[sl], len(cols)
        eye = np.zeros((c, n), dtype=dtype)
        eye[np.arange(c), cols] = 1
        up = xs[:, None, :] + eye[None] * plus[sl, None, :]  # [b, c, n]
        if scheme == "central":
            down = xs[:, None, :] - eye[None] * minus[sl, None, :]
            y = _call(target, evaluate, np.concatenate([up, down], axis=1).reshape(-1, n)).astype(np.float64)
            y = y.reshape(len(xs), 2, c, m)
            diff = y[:, 0] - y[:, 1]
        else:
            y = _call(target, evaluate, np.concatenate([up.reshape(-1, n), xs], axis=0)).astype(np.float64)
            diff = y[: len(xs) * c].reshape(len(xs), c, m) - y[len(xs) * c :][:, None, :]
        return np.transpose(diff / span[sl][:, cols][:, :, None], (0, 2, 1))  # [b, m, c]

    t_start = time.perf_counter()
    # the numpy fallback's result is a transposed view: placed into a C-ordered array
    out, first, calls = _sweep(x, (p, m, n), np.float64, per_call, n, cols_per_call, 2, call, progress,
                               whole=fd_kernel is not None)
    notes = list(target.notes)
    if dtype != "float64":
        notes.append(
            f"The model computes in {dtype} even when given float64 inputs, so finite differences "
            f"were evaluated in {dtype} (step and expected accuracy follow {dtype})."
        )
    return Derivative(
        values=out,
        method="finite_difference",
        strategy=f"{scheme}, batched",
        seconds=time.perf_counter() - t_start,
        first_call_seconds=first,
        calls=calls,
        chunk_points=per_call,
        notes=notes,
        step=h,
        dtype=dtype,
    )


def _call(target: Target, kernel, batch: np.ndarray) -> np.ndarray:
    if target._eager:
        return target._eager_eval(batch)
    return _numpy(kernel(_tf().constant(batch)))


def _numpy(tensor) -> np.ndarray:
    """A read-only numpy view of an eager CPU tensor, without ``Tensor.numpy()``'s copy.

    ``np.asarray(memoryview(t))`` is TensorFlow's documented zero-copy route; the view
    keeps the tensor alive. Copying a large Jacobian costs up to a quarter of the
    kernel's own time (measured on the 1024 -> 10 MLP), and the fresh pages of every
    copy add page faults. Other devices or dtypes without a buffer protocol are copied.
    """
    try:
        return np.asarray(memoryview(tensor))
    except (TypeError, ValueError, NotImplementedError):
        return tensor.numpy()


def as_target(fn, point_shape, *, batched: bool = False, dtype: str = "float64", jit_compile: bool | str = "auto") -> Target:
    """Wrap a plain function or Keras model for the engine functions.

    ``fn`` takes one point of shape ``point_shape`` (or, with ``batched=True``, a
    batch of them); Keras models are batched.
    """
    return Target(fn, tuple(point_shape), batched=batched, dtype=dtype, jit_compile=jit_compile)


__all__ = [
    "Derivative",
    "NotDifferentiableError",
    "Target",
    "as_target",
    "choose_mode",
    "default_memory_budget",
    "fd_step",
    "finite_difference",
    "gradient_blockers",
    "jacobian",
    "plan_chunks",
    "rows",
]
