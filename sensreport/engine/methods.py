"""The engine's three methods on a :class:`~sensreport.engine.target.Target`: full
Jacobians, selected rows and finite differences, each batched and chunked to fit a
memory budget, and the record of how each ran."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .chunks import Progress, check_fits, plan_chunks, sweep_basis
from .fdiff import CHANNELS, KINK_FACTOR, estimates, evaluation_error
from .kernels import FULL_KERNELS, strategy_name
from .runtime import NotDifferentiableError, as_numpy, default_memory_budget, first_line, tensorflow
from .target import Target
from .xla import autotune_xla

#: ``mode`` values: ``auto`` picks the direction by shape; ``forward`` and ``reverse`` use
#: the vectorized kernel and fall back to the tiled one; the last four name one kernel.
MODES = ("auto", "forward", "reverse", "forward-pfor", "forward-tiled", "reverse-pfor", "reverse-tiled")
#: What each direction tries, in order; the tiled reverse kernel needs neither pfor nor
#: forward-mode rules, so it is everyone's last resort.
KERNEL_ORDER = {
    "forward": ("forward-pfor", "forward-tiled", "reverse-tiled"),
    "reverse": ("reverse-pfor", "reverse-tiled"),
}


@dataclass
class MethodRun:
    """How one method ran: the kernel, dtype, times, calls and notes, or why it failed.

    The engine fills one per call; the sweep merges the chunks' records
    (:meth:`merge`), and the results keep the merged one: the same record all the way.
    """

    method: str  # jacobian | rows | finite_difference
    status: str = "ok"  # ok | failed
    reason: str | None = None
    strategy: str | None = None
    dtype: str | None = None
    seconds: float = 0.0
    first_call_seconds: float | None = None
    calls: int = 0
    chunk_points: int = 0
    notes: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason

    def merge(self, other: "MethodRun") -> "MethodRun":
        """Add another chunk's record (times and calls add up; the first failure stays)."""
        if other.status != "ok" and self.status == "ok":
            self.fail(other.reason or "failed")
        self.seconds += other.seconds
        if self.first_call_seconds is None:
            self.first_call_seconds = other.first_call_seconds
        self.calls += other.calls
        self.chunk_points = max(self.chunk_points, other.chunk_points)
        self.strategy = self.strategy or other.strategy
        self.dtype = self.dtype or other.dtype
        self.notes = list(dict.fromkeys(self.notes + other.notes))
        return self


#: Entries of :meth:`FDEstimate.kinks`' temporaries (4 MB of float64): whole-array ones
#: of a large chunk each cost fresh pages.
KINK_BLOCK = 1 << 19


@dataclass
class FDEstimate:
    """Finite differences with their error estimate and one-sided slopes, each ``[P, m, n]``
    (read-only views of one array; see :mod:`.fdiff`)."""

    fd: np.ndarray
    error: np.ndarray
    backward: np.ndarray
    forward: np.ndarray
    kink_error: np.ndarray

    def kinks(self) -> np.ndarray:
        """Entries where the one-sided slopes disagree beyond their errors (NaN-safe: False)."""
        out = np.empty(self.fd.shape, dtype=bool)
        step = max(1, KINK_BLOCK // max(1, self.fd[:, :1].size))  # outputs at a time: small temporaries
        jump = bound = None  # two buffers for all blocks (fresh pages cost more than the arithmetic)
        with np.errstate(invalid="ignore"):
            for start in range(0, out.shape[1], step):
                o = slice(start, start + step)
                forward, backward, kink_error = self.forward[:, o], self.backward[:, o], self.kink_error[:, o]
                if jump is None or jump.shape != forward.shape:
                    jump, bound = np.empty(forward.shape), np.empty(forward.shape)
                np.abs(np.subtract(forward, backward, out=jump, dtype=np.float64), out=jump)
                np.greater(jump, np.multiply(KINK_FACTOR, kink_error, out=bound, dtype=np.float64), out=out[:, o])
        return out


@dataclass
class Derivative:
    """A derivative array and how it was obtained.

    ``values`` is ``[P, k, n]`` (points, outputs, inputs) and read-only (when one call
    computed it, it is a view of TensorFlow's result, not a copy; ``np.array(values)``
    gives a writable copy). ``run.seconds`` is the whole wall time including the first
    call, ``run.first_call_seconds`` the time of the first chunk (which includes tracing).
    ``step`` is the finite-difference step of every point and input, ``[P, n]``.
    """

    values: np.ndarray
    run: MethodRun
    step: np.ndarray | None = None
    estimate: "FDEstimate | None" = None  # finite differences: error estimate and one-sided slopes

    # the record's fields, read directly (``d.strategy``)
    method = property(lambda self: self.run.method)
    strategy = property(lambda self: self.run.strategy)
    seconds = property(lambda self: self.run.seconds)
    first_call_seconds = property(lambda self: self.run.first_call_seconds)
    calls = property(lambda self: self.run.calls)
    chunk_points = property(lambda self: self.run.chunk_points)
    notes = property(lambda self: self.run.notes)
    dtype = property(lambda self: self.run.dtype)


def honour_custom_gradients(target: Target, order: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """``order`` without forward-mode kernels when the model has custom gradients.

    ``ForwardAccumulator`` differentiates the forward ops and ignores a
    ``tf.custom_gradient``, so forward mode would return a Jacobian other than the one
    ``tf.GradientTape`` gives; reverse mode calls the custom gradient. Returns the
    kernels to try and a note saying so.
    """
    custom = target.custom_gradients
    if not custom or not any(k.startswith("forward") for k in order):
        return order, []
    kept = tuple(k for k in order if not k.startswith("forward"))
    if kept in ((), ("reverse-tiled",)):
        kept = KERNEL_ORDER["reverse"]  # forward was asked for: its vectorized counterpart first
    shown = ", ".join(custom[:3]) + (f" and {len(custom) - 3} more" if len(custom) > 3 else "")
    return kept, [f"The model defines custom gradients (tf.custom_gradient: {shown}), which forward mode cannot "
                  f"honour; reverse mode ({strategy_name(kept[0])}) ran instead, as tf.GradientTape would."]


def select_kernel(target: Target, order) -> tuple[str, Any, list[str]]:
    """The first kernel in ``order`` that traces for ``target``: (name, kernel, notes)."""
    notes: list[str] = []
    for i, kind in enumerate(order):
        try:
            return kind, target.kernel(kind, target.dtype), notes
        except NotDifferentiableError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. an op without a forward-mode or pfor rule
            if i == len(order) - 1:
                raise
            notes.append(f"{strategy_name(kind)} could not be traced ({first_line(exc)}); "
                         f"{strategy_name(order[i + 1])} was used.")
    raise ValueError("no kernel to try")  # pragma: no cover


def choose_mode(n: int, m: int) -> str:
    """Forward mode when there are fewer inputs than outputs, reverse otherwise.

    Forward mode costs about one JVP per input, reverse mode one VJP per output; a
    VJP costs a little more than a JVP, so ties go to forward.
    """
    return "forward" if n <= m else "reverse"


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
    tf = tensorflow()
    x = np.asarray(points, dtype=target.dtype).reshape(len(points), target.width)
    if target.output_shape is None:
        target.evaluate(x[:1])
    n, m, p = target.n, target.m, len(x)
    budget = memory_budget or default_memory_budget()
    check_fits(key, (p, m, n), np.dtype(target.dtype).itemsize, budget, "Jacobian array")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    direction = choose_mode(n, m) if mode == "auto" else mode.split("-")[0]
    order = KERNEL_ORDER[direction] if mode in ("auto", "forward", "reverse") else (mode, "reverse-tiled")
    order, custom_notes = honour_custom_gradients(target, order)
    direction = order[0].split("-")[0]

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
    notes = custom_notes + notes
    strategy = strategy_name(kind)
    if strategy.split("-")[0] != direction:  # fell back to the other direction
        direction = strategy.split("-")[0]
        width, per_call, basis = plan(direction)
    t_start = time.perf_counter()

    def probe():
        return tf.constant(x[:per_call])

    if kind in FULL_KERNELS.values():
        notes += autotune_xla(target, kind, lambda: (probe(),))
        full = target.kernel(kind, target.dtype)

        def call(sl, idx):
            return as_numpy(full(tf.constant(x[sl])))
    else:
        notes += autotune_xla(target, kind, lambda: (probe(), tf.constant(np.arange(basis), tf.int32)))
        kernel = target.kernel(kind, target.dtype)

        def call(sl, idx):
            return as_numpy(kernel(tf.constant(x[sl]), tf.constant(idx, tf.int32)))

    axis = 2 if direction == "forward" else 1
    out, first, calls = sweep_basis(x, (p, m, n), target.dtype, per_call, width, basis, axis, call, progress)
    return _automatic("jacobian", target, out, strategy, t_start, first, calls, per_call, notes)


def _automatic(method: str, target: Target, values: np.ndarray, strategy: str, t_start: float, first: float,
               calls: int, per_call: int, notes: list[str]) -> Derivative:
    """The result of an automatic-differentiation method, with the record of how it ran."""
    return Derivative(values=values, run=MethodRun(
        method=method, strategy=strategy, seconds=time.perf_counter() - t_start, first_call_seconds=first,
        calls=calls, chunk_points=per_call, notes=list(target.notes) + notes, dtype=target.dtype))


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
    tf = tensorflow()
    x = np.asarray(points, dtype=target.dtype).reshape(len(points), target.width)
    if target.output_shape is None:
        target.evaluate(x[:1])
    n, p, k = target.n, len(x), len(outputs)
    budget = memory_budget or default_memory_budget()
    check_fits(key, (p, k, n), np.dtype(target.dtype).itemsize, budget, "rows array")
    order = KERNEL_ORDER["reverse"]
    if choose_mode(n, k) == "forward":
        order = ("forward-pfor", "forward-tiled") + order
    order, custom_notes = honour_custom_gradients(target, order)
    strategy, kernel, notes = select_kernel(target, order)
    notes = custom_notes + notes
    selected = np.asarray(outputs, dtype=np.int32)
    forward = strategy.startswith("forward")
    width = n if forward else k
    per_call, basis = plan_chunks(width, target.row_bytes(), p, budget)
    if forward:
        def call(sl, idx):
            return as_numpy(kernel(tf.constant(x[sl]), tf.constant(idx, tf.int32)))[:, selected, :]  # [b, k, c]
    else:
        def call(sl, idx):
            return as_numpy(kernel(tf.constant(x[sl]), tf.constant(selected[idx])))

    t_start = time.perf_counter()
    out, first, calls = sweep_basis(x, (p, k, n), target.dtype, per_call, width, basis, 2 if forward else 1, call, progress)
    return _automatic("rows", target, out, strategy, t_start, first, calls, per_call, notes)


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


def applied_steps(x: np.ndarray, h: np.ndarray, scheme: str) -> np.ndarray:
    """The steps as applied in ``x``'s dtype, ``[P, 4, n]`` float64: ``fl(x + h) - x``,
    ``x - fl(x - h)``, and the same for ``2h`` (the minus ones zero for forward differences)."""
    dtype = x.dtype
    hd, h2 = h.astype(dtype), (2 * h).astype(dtype)
    out = np.zeros((len(x), 4, x.shape[1]))
    out[:, 0] = (x + hd) - x
    out[:, 2] = (x + h2) - x
    if scheme == "central":
        out[:, 1] = x - (x - hd)
        out[:, 3] = x - (x - h2)
    return out


def fd_dtype(target: Target) -> str:
    """The dtype finite differences of ``target`` evaluate in: float64 when the model
    computes in float64 given float64 inputs, else its own dtype."""
    dtype = target.native_dtype("float64")
    return dtype if dtype in ("float32", "float64") else target.dtype


def finite_difference(
    target: Target,
    points: np.ndarray,
    *,
    scheme: str = "central",
    step: float | str | np.ndarray = "auto",
    memory_budget: int | None = None,
    key: str = "methods.finite_difference",
    progress: Progress | None = None,
    spread: np.ndarray | None = None,
    output_scale: np.ndarray | None = None,
) -> Derivative:
    """Finite-difference Jacobians ``[P, m, n]`` (float64) from batched model calls.

    Every point's ``2 n`` (central) or ``n + 1`` (forward) perturbed copies go through
    the model together, as many points per call as the memory budget allows. The model
    is evaluated in float64 when it computes in float64 given float64 inputs, otherwise
    in its own dtype; the step follows that dtype (see :func:`fd_step`; ``spread`` is
    each input's standard deviation over all points, computed from ``points`` when not
    given; ``output_scale`` each output's largest |y| over all points, for the round-off
    estimate, computed from ``points`` when not given; an array ``[P, n]`` gives every point's step, as :func:`fd_step` computed
    it). The step actually applied is ``(x + h) - x`` in that dtype, so rounding of
    ``x + h`` does not bias the quotient.
    """
    if scheme not in ("central", "forward"):
        raise ValueError(f"scheme must be 'central' or 'forward', got {scheme!r}")
    x64 = np.asarray(points, dtype=np.float64).reshape(len(points), target.width)
    dtype = fd_dtype(target)
    n, p = target.n, len(x64)
    if target.output_shape is None:
        target.evaluate(x64[:1].astype(dtype), dtype=dtype)
    m = target.m
    budget = memory_budget or default_memory_budget()
    check_fits(key, (len(CHANNELS), p, m, n), 8, budget, "finite-difference array (with its error estimate)")
    if isinstance(step, np.ndarray):
        h = np.asarray(step, dtype=np.float64).reshape(p, n)  # the caller's steps (computed once per run)
    else:
        h = fd_step(x64[:, :n], scheme, dtype, step, spread=spread)
    x = x64.astype(dtype)
    steps = applied_steps(x[:, :n], h, scheme)  # [P, 4, n]: +h, -h, +2h, -2h as applied in the model's dtype
    copies = 4 if scheme == "central" else 2
    per_call, basis = plan_chunks(copies * n + 1, target.row_bytes(dtype), p, budget)
    cols_per_call = max(1, basis // copies)
    evaluate = target.kernel("evaluate", dtype)
    fd_kernel = None
    if not target.eager:
        try:
            # perturbed copies built inside TensorFlow: no numpy copies of c * B rows
            fd_kernel = target.kernel(f"fd-{scheme}", dtype)
        except Exception:  # noqa: BLE001 - fall back to building the copies in numpy
            fd_kernel = None
    eps_f = evaluation_error(dtype)
    central = scheme == "central"
    if output_scale is None:  # each output's magnitude over these points (the run passes all points')
        y = target.evaluate(x, dtype=dtype, memory_budget=budget).astype(np.float64)
        output_scale = np.nanmax(np.abs(np.where(np.isfinite(y), y, np.nan)), axis=0, initial=0.0)
    scale = np.asarray(output_scale, dtype=np.float64).reshape(m)

    def call(sl, cols):
        if fd_kernel is not None:
            tf = tensorflow()
            return as_numpy(fd_kernel(tf.constant(x[sl]), tf.constant(steps[sl]), tf.constant(scale),
                                      tf.constant(cols, tf.int32)))
        xs, c = x[sl], len(cols)
        width = target.width  # held columns (Target.fixed) are never perturbed
        eye = np.zeros((c, width), dtype=dtype)
        eye[np.arange(c), cols] = 1
        s = steps[sl][:, :, cols]  # [b, 4, c]
        picks = ((0, 1.0), (1, -1.0), (2, 1.0), (3, -1.0)) if central else ((0, 1.0), (2, 1.0))
        shifted = [xs[:, None, :] + sign * eye[None] * s[:, k, :, None].astype(dtype) for k, sign in picks]
        y = target.call(evaluate, np.concatenate([np.concatenate(shifted, axis=1).reshape(-1, width), xs], axis=0))
        y = y.astype(np.float64)
        yc = y[: len(xs) * len(picks) * c].reshape(len(xs), len(picks), c, m)
        y0 = y[len(xs) * len(picks) * c :][:, None, :]
        hs = s[:, :, :, None]
        if central:
            parts = estimates(yc[:, 0], yc[:, 1], yc[:, 2], yc[:, 3], y0, hs[:, 0], hs[:, 1], hs[:, 2], hs[:, 3], eps_f,
                              y_scale=scale)
        else:
            parts = estimates(yc[:, 0], None, yc[:, 1], None, y0, hs[:, 0], None, hs[:, 2], None, eps_f,
                              y_scale=scale, central=False)
        return np.transpose(np.stack(parts), (0, 1, 3, 2))  # [5, b, m, c]

    t_start = time.perf_counter()
    # the numpy fallback's result is a transposed view: placed into a C-ordered array
    out, first, calls = sweep_basis(x, (len(CHANNELS), p, m, n), np.float64, per_call, n, cols_per_call, 2, call,
                                    progress, whole=fd_kernel is not None, lead=1)
    notes = list(target.notes)
    if dtype != "float64":
        notes.append(
            f"The model computes in {dtype} even when given float64 inputs, so finite differences "
            f"were evaluated in {dtype} (step and expected accuracy follow {dtype})."
        )
    return Derivative(
        values=out[0],
        run=MethodRun(
            method="finite_difference",
            strategy=f"{scheme}, batched",
            seconds=time.perf_counter() - t_start,
            first_call_seconds=first,
            calls=calls,
            chunk_points=per_call,
            notes=notes,
            dtype=dtype,
        ),
        step=h,
        estimate=FDEstimate(*out),
    )
