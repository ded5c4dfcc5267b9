"""A model or function prepared for batched differentiation: :class:`Target`."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .chunks import MAX_ROWS_PER_CALL, plan_chunks
from .diagnostics import custom_gradient_ops
from .kernels import FLOAT64, INDEX, KERNELS, SCALE, STEPS, strategy_name
from .runtime import NotDifferentiableError, as_numpy, default_memory_budget, first_line, tensorflow
from .xla import XlaChoices


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
        timing of both on the first chunk finds XLA faster (see
        :func:`~sensreport.engine.xla.autotune_xla`). A kernel XLA cannot compile runs
        without it.
    fixed : int
        Columns appended to every point that are held, not differentiated (``batched``
        functions only): ``fn`` is then called as ``fn(x, held)`` with ``held`` of shape
        ``[B, fixed]`` (a model's categorical inputs, coded as numbers by the caller).
        Points given to the engine have ``width = n + fixed`` columns; derivatives have
        ``n`` (finite differences never perturb a held column, and the automatic
        kernels drop the held columns' zero derivatives).
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
        fixed: int = 0,
    ):
        if fixed and not batched:
            raise ValueError("held (fixed) columns need a batched function")
        self.fn = fn
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n = int(np.prod(self.input_shape, dtype=np.int64)) if self.input_shape else 1
        self.fixed = int(fixed)
        self.width = self.n + self.fixed  # columns of a point as the engine takes it
        self.batched = batched
        self.dtype = str(dtype)
        self.name = name
        self.activation_size = activation_size
        self.xla = XlaChoices(jit_compile)
        self.output_shape: tuple[int, ...] | None = None
        self.notes: list[str] = []
        self._vectorize = "pfor"
        self._eager = False
        self._autograph = False  # set once a function needed AutoGraph to be traced (see _trace)
        self._custom_gradients: list[str] | None = None  # set when the model is first traced
        self._traced_output_shape: tuple[int, ...] | None = None
        self._native_output_dtype: dict[str, str] = {}  # input dtype -> the dtype the model's outputs come in
        self._kernels: dict[tuple[str, str, bool], Any] = {}  # the tf.functions (traced once each)
        self._calls: dict[tuple[str, str, bool], Any] = {}  # what is called: their concrete functions

    # ------------------------------------------------------------------ shapes
    @property
    def m(self) -> int:
        if self.output_shape is None:
            raise RuntimeError("call Target.evaluate once before asking for m")
        return math.prod(self.output_shape)  # a tuple of ints; 1 for a scalar output

    @property
    def jit_compile(self) -> bool | str:
        return self.xla.setting

    @property
    def eager(self) -> bool:
        """True when TensorFlow cannot trace the function: it is called eagerly, no derivatives."""
        return self._eager

    @property
    def custom_gradients(self) -> list[str]:
        """Ops of the traced model with a ``tf.custom_gradient`` (empty when there is none).

        Forward-mode kernels and ``tf.vectorized_map`` cannot honour a custom gradient:
        for such a model the engine uses reverse-mode kernels only, and maps a per-point
        function with ``tf.map_fn``, so that every derivative is the one
        ``tf.GradientTape`` gives.
        """
        if self._custom_gradients is None:
            self.kernel("evaluate", self.dtype)
        return list(self._custom_gradients or [])

    def note(self, text: str) -> None:
        """Remember a fact about how this target runs (results show the notes)."""
        if text not in self.notes:
            self.notes.append(text)

    def traces(self) -> dict[tuple[str, str, bool], int]:
        """How often each compiled kernel ``(kind, dtype, xla)`` has been traced so far."""
        return {k: fn.experimental_get_tracing_count() for k, fn in self._kernels.items()
                if hasattr(fn, "experimental_get_tracing_count")}

    # ------------------------------------------------------------ model calls
    def flat_call(self, xf):
        """[B, width] -> [B, m] inside TensorFlow, in the dtype of ``xf``."""
        tf = tensorflow()
        batch = tf.shape(xf)[0]
        held = tf.stop_gradient(xf[:, self.n:]) if self.fixed else None
        if self.fixed:
            xf = xf[:, : self.n]
        x = tf.reshape(xf, tf.concat([[batch], tf.constant(self.input_shape, tf.int32)], 0))
        if self.fixed:
            y = self.fn(x, held)
        elif self.batched:
            y = self.fn(x)
        elif self._vectorize == "pfor":
            y = tf.vectorized_map(self.fn, x, fallback_to_while_loop=False)
        else:
            y = tf.map_fn(self.fn, x, fn_output_signature=xf.dtype)
        y = tf.convert_to_tensor(y)
        if self.output_shape is None and y.shape.rank is not None:
            self._traced_output_shape = tuple(int(s) if s is not None else -1 for s in y.shape[1:])
        self._native_output_dtype[xf.dtype.name] = y.dtype.name
        if y.dtype != xf.dtype:
            y = tf.cast(y, xf.dtype)
        return tf.reshape(y, [batch, -1])

    def kernel(self, kind: str, dtype: str, jit: bool | None = None):
        """Compile (once) the kernel ``kind`` (see :data:`~sensreport.engine.kernels.KERNELS`)
        for inputs of ``dtype``, with XLA when ``jit``; returns its concrete function.

        ``jit=None`` follows the target's :class:`~sensreport.engine.xla.XlaChoices`.
        Raises when the kernel cannot be traced (callers fall back to another kernel),
        except that a kernel XLA cannot trace runs without XLA, and a per-point function
        that cannot be vectorized is mapped with ``tf.map_fn`` instead.
        """
        key_xla = (kind, dtype)
        jit = self.xla.use(key_xla) if jit is None else (bool(jit) and kind != "evaluate"
                                                         and key_xla not in self.xla.refused)
        key = (kind, dtype, jit)
        if key in self._calls:
            return self._calls[key]
        tf = tensorflow()
        spec = KERNELS[kind]
        tdtype = tf.as_dtype(dtype)
        kinds = {INDEX: tf.TensorSpec([None], tf.int32), FLOAT64: tf.TensorSpec([None, self.n], tf.float64),
                 STEPS: tf.TensorSpec([None, 4, self.n], tf.float64), SCALE: tf.TensorSpec([None], tf.float64)}
        sig = [kinds.get(a, tf.TensorSpec([None, self.width], tdtype)) for a in spec.args]
        if spec.vectorized or spec.traced_model:
            self.kernel("evaluate", dtype)  # settles vectorization / eager mode of the model first
            if self._eager:
                raise RuntimeError("the function cannot be traced by TensorFlow")

        def body(*args):
            return spec.fn(self, *args)

        try:
            compiled, concrete = self._trace(tf, body, sig, jit)
        except NotDifferentiableError:
            raise
        except Exception as exc:  # noqa: BLE001 - any tracing failure decides the fallback
            if jit:
                # XLA cannot compile this kernel: the same kernel runs without it. An XLA
                # failure never changes how the model is vectorized or which kernel runs,
                # so whether XLA was tried (a timing, with "auto") cannot change the path.
                self.xla.refused.add(key_xla)
                self.note(f"XLA could not compile {strategy_name(kind)} ({first_line(exc)}); it runs without XLA.")
                return self.kernel(kind, dtype, jit=False)
            if spec.vectorized or spec.traced_model:
                raise  # the caller falls back to another kernel
            if not self.batched and self._vectorize == "pfor":
                self._vectorize = "map_fn"
                self.note(
                    "The per-point function could not be vectorized with tf.vectorized_map "
                    f"({first_line(exc)}); points were mapped with tf.map_fn instead (slower, same numbers)."
                )
                self._kernels.clear()
                self._calls.clear()
                return self.kernel(kind, dtype)
            if kind == "evaluate":
                # A black-box function (e.g. plain numpy) that TensorFlow cannot trace:
                # call it eagerly. Finite differences still work; derivatives cannot.
                self._eager = True
                self.note(
                    f"The function could not be traced by TensorFlow ({first_line(exc)}); "
                    "it was evaluated eagerly (slower)."
                )
                compiled = concrete = self.eager_evaluate
            else:
                raise
        if jit:
            concrete = self._first_call_guard(kind, dtype, concrete)
        if kind == "evaluate" and self._custom_gradients is None and not self._eager:
            self._custom_gradients = custom_gradient_ops(concrete)
            if self._custom_gradients and not self.batched and self._vectorize == "pfor":
                # vectorized_map's conversion drops custom gradients; a while loop keeps them
                self._vectorize = "map_fn"
                self.note("The function defines custom gradients (tf.custom_gradient), which tf.vectorized_map "
                          "cannot keep; points were mapped with tf.map_fn instead (slower, same numbers).")
                self._kernels.clear()
                self._calls.clear()
                return self.kernel(kind, dtype)
        self._kernels[key] = compiled
        self._calls[key] = concrete
        return concrete

    def _trace(self, tf, body, sig, jit: bool):
        """The ``tf.function`` of ``body`` and its concrete function for ``sig``.

        Traced without AutoGraph first: a Keras model, a SavedModel and most functions
        are plain TensorFlow ops, and AutoGraph's conversion of every function on the
        way (the model's layers included) cost 0.3 s at the first kernel of a Keras MLP. A
        function that needs it (a Python ``if`` or ``while`` on a tensor's value) fails
        to trace without it, and is traced again with it, as are this target's later
        kernels. Where both tracings succeed they compute the same numbers, so the retry
        decides only whether tracing works, never the numbers.
        """
        def traced(autograph: bool):
            compiled = tf.function(body, input_signature=sig, reduce_retracing=True, jit_compile=jit or None,
                                   autograph=autograph)
            # Calls go to the concrete function: the signature is fixed (batch dimension
            # open), so the tf.function's per-call dispatch (argument binding, trace
            # cache lookup: ~0.1 ms) buys nothing
            return compiled, compiled.get_concrete_function(*sig)

        if not self._autograph:
            try:
                return traced(False)
            except NotDifferentiableError:
                raise
            except Exception:  # noqa: BLE001 - any failure: try again with AutoGraph
                pass
        out = traced(True)
        self._autograph = True
        return out

    def _first_call_guard(self, kind: str, dtype: str, concrete):
        """XLA compiles at the first call, and can refuse an op only then (e.g. the
        TensorLists of tf.map_fn): the first call falls back to the same kernel without
        XLA, which is then used from the next call on."""
        state = {"checked": False}

        def call(*args):
            if state["checked"]:
                return concrete(*args)
            try:
                out = concrete(*args)
            except Exception as exc:  # noqa: BLE001 - any compile failure: run without XLA
                self.xla.refused.add((kind, dtype))
                self.note(f"XLA could not compile {strategy_name(kind)} ({first_line(exc)}); it runs without XLA.")
                plain = self.kernel(kind, dtype, jit=False)
                self._calls[(kind, dtype, True)] = plain
                return plain(*args)
            state["checked"] = True
            self._calls[(kind, dtype, True)] = concrete  # later lookups skip the guard
            return out

        return call

    def call(self, kernel, batch: np.ndarray) -> np.ndarray:
        """Outputs ``[b, m]`` of ``batch`` through the evaluate ``kernel`` (or eagerly)."""
        if self._eager:
            return self.eager_evaluate(batch)
        return as_numpy(kernel(tensorflow().constant(batch)))

    def evaluate(self, points: np.ndarray, dtype: str | None = None, memory_budget: int | None = None) -> np.ndarray:
        """Outputs ``[P, m]`` at flat points ``[P, width]``, in calls that fit ``memory_budget``."""
        dtype = dtype or self.dtype
        x = np.asarray(points).reshape(len(points), self.width)  # converted chunk by chunk below
        fn = self.kernel("evaluate", dtype)
        chunk_rows = MAX_ROWS_PER_CALL
        if self.output_shape is not None or memory_budget is not None:
            if self.output_shape is None:
                self.evaluate(x[:1], dtype)
            chunk_rows, _ = plan_chunks(1, self.row_bytes(dtype), len(x), memory_budget or default_memory_budget())
        outs = []
        for start in range(0, len(x), max(1, chunk_rows)):
            outs.append(self.call(fn, np.asarray(x[start : start + chunk_rows], dtype=dtype)))
        y = np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), dtype)
        if self.output_shape is None:
            shape = self._traced_output_shape
            if shape is None or -1 in shape or int(np.prod(shape, dtype=np.int64)) != y.shape[1]:
                shape = (y.shape[1],)
            self.output_shape = tuple(shape)
        return y

    def eager_evaluate(self, chunk: np.ndarray) -> np.ndarray:
        """Outputs of a black-box function, called eagerly point by point (or per batch)."""
        tf = tensorflow()
        chunk = np.asarray(chunk)
        if self.fixed:
            flat = chunk.reshape(len(chunk), self.width)
            y = np.asarray(self.fn(tf.constant(flat[:, : self.n].reshape((len(chunk),) + self.input_shape)),
                                   tf.constant(flat[:, self.n:])))
            return y.reshape(len(chunk), -1).astype(chunk.dtype)
        x = chunk.reshape((len(chunk),) + self.input_shape)
        if self.batched:
            y = np.asarray(self.fn(tf.constant(x)))
        else:
            y = np.stack([np.asarray(self.fn(tf.constant(p))) for p in x])
        return y.reshape(len(chunk), -1).astype(chunk.dtype)

    def native_dtype(self, dtype: str) -> str:
        """The dtype the model really computes in when given inputs of ``dtype``."""
        try:
            self.evaluate(np.zeros((1, self.width)), dtype=dtype)
        except Exception:  # noqa: BLE001 - a function that refuses this dtype
            return self.dtype
        native = self._native_output_dtype.get(str(dtype))
        return native if native is not None and not self._eager else dtype

    # ----------------------------------------------------------- memory plan
    def row_bytes(self, dtype: str | None = None) -> int:
        """Estimated bytes one model row (one point, one basis vector) needs in a call."""
        item = np.dtype(dtype or self.dtype).itemsize
        act = self.activation_size if self.activation_size is not None else 4 * (self.n + self.m)
        # inputs, tangents/cotangents, outputs, and activations kept for the backward pass
        return int(item * (3 * self.width + 3 * self.m + 3 * act))

    def differentiated(self, points: np.ndarray) -> np.ndarray:
        """The differentiated columns ``[P, n]`` of points as the engine takes them."""
        flat = np.asarray(points).reshape(len(points), self.width)
        return flat[:, : self.n] if self.fixed else flat


def as_target(fn, point_shape, *, batched: bool = False, dtype: str = "float64", jit_compile: bool | str = "auto") -> Target:
    """Wrap a plain function or Keras model for the engine functions.

    ``fn`` takes one point of shape ``point_shape`` (or, with ``batched=True``, a
    batch of them); Keras models are batched.
    """
    return Target(fn, tuple(point_shape), batched=batched, dtype=dtype, jit_compile=jit_compile)
