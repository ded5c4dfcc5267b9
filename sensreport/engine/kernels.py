"""The derivative kernels: module-level functions in one registry, :data:`KERNELS`.

Every kernel takes a :class:`~sensreport.engine.target.Target` (only its public
``flat_call`` and ``n``) and tensors, and is compiled once per dtype by
:meth:`Target.kernel` into a ``tf.function`` whose signature leaves the batch
dimension open (``B`` points, ``c`` basis vectors in one call):

* ``reverse-pfor``: one forward pass and the ``c`` selected outputs' backward passes
  vectorized by ``GradientTape.batch_jacobian`` (also how selected rows are computed:
  never the full Jacobian to slice a row from it);
* ``forward-pfor``: JVPs of ``c`` one-hot tangents vectorized with ``tf.vectorized_map``
  around one ``tf.autodiff.ForwardAccumulator``; the primal pass does not depend on
  the tangent, so it is computed once;
* ``reverse-tiled`` / ``forward-tiled``: the batch tiled ``c`` times with one-hot
  cotangents / tangents in one ``GradientTape.gradient`` / ``ForwardAccumulator`` call.
  They repeat the primal pass but need no ``pfor`` rule for any op: the fallback;
* ``*-full``: the two pfor kernels for the whole basis at once (no index argument):
  ``batch_jacobian`` of all outputs (no ``gather``, whose gradient is a scatter in every
  backward pass) and JVPs of the identity's columns (a constant);
* ``fd-central`` / ``fd-forward``: every point's perturbed copies (at ``h`` and ``2h``)
  built and evaluated in one call; the quotients, their error estimates and the
  one-sided slopes (:mod:`.fdiff`) in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .fdiff import estimates, evaluation_error
from .runtime import NotDifferentiableError, tensorflow

#: Argument kinds of a kernel's signature: points ``[None, n]`` in the kernel's dtype,
#: basis indices ``[None]`` (int32), and float64 ``[None, n]`` (finite-difference spans).
#: and the four applied steps of every point and input ``[None, 4, n]`` (float64).
#: and each output's magnitude ``[None]`` (float64).
POINTS, INDEX, FLOAT64, STEPS, SCALE = "points", "index", "float64", "steps", "scale"


@dataclass(frozen=True)
class KernelDef:
    """One kernel: its function, its arguments after the target, and whether it is built
    on ``pfor`` (vectorized_map / batch_jacobian), which some ops lack, so that callers
    fall back to a tiled kernel."""

    fn: Callable
    args: tuple[str, ...]
    vectorized: bool = False
    traced_model: bool = False  # needs a model TensorFlow can trace (not an eager black box)


def _unconnected() -> NotDifferentiableError:
    return NotDifferentiableError("no gradient path from the inputs to the outputs")


def _tile(x, count, n):
    tf = tensorflow()
    return tf.reshape(tf.tile(x[None], [count, 1, 1]), [-1, n])


def _derivatives(t, jac):
    # held columns (Target.fixed) have no derivative: dropped from [..., width]
    return jac[..., : t.n] if t.fixed else jac


def evaluate(t, x):
    return t.flat_call(x)


def forward_tiled(t, x, cols):
    # the batch tiled once per tangent: one model call on c * B rows
    tf = tensorflow()
    n = t.width
    batch, c = tf.shape(x)[0], tf.shape(cols)[0]
    xt = _tile(x, c, n)
    tangents = tf.one_hot(cols, n, dtype=x.dtype)  # [c, width]
    tangents = tf.reshape(tf.broadcast_to(tangents[:, None, :], [c, batch, n]), [-1, n])
    with tf.autodiff.ForwardAccumulator(xt, tangents) as acc:
        y = t.flat_call(xt)
    jvp = acc.jvp(y)
    if jvp is None:
        raise _unconnected()
    return tf.transpose(tf.reshape(jvp, [c, batch, -1]), [1, 2, 0])  # [B, m, c]


def _forward_pfor_tangents(t, x, tangents):
    # JVPs vectorized over the tangents: the primal pass is loop-invariant, done once
    tf = tensorflow()

    def jvp(v):
        with tf.autodiff.ForwardAccumulator(x, tf.broadcast_to(v[None, :], tf.shape(x))) as acc:
            y = t.flat_call(x)
        out = acc.jvp(y)
        if out is None:
            raise _unconnected()
        return out  # [B, m]

    return tf.transpose(tf.vectorized_map(jvp, tangents, fallback_to_while_loop=False), [1, 2, 0])


def forward_pfor(t, x, cols):
    return _forward_pfor_tangents(t, x, tensorflow().one_hot(cols, t.width, dtype=x.dtype))


def forward_pfor_full(t, x):
    # all inputs: the identity as a constant, which XLA can fold into the first layer
    return _forward_pfor_tangents(t, x, tensorflow().eye(t.n, t.width, dtype=x.dtype))


def reverse_tiled(t, x, outs):
    # the batch tiled once per cotangent: one model call on c * B rows
    tf = tensorflow()
    n = t.width
    batch, c = tf.shape(x)[0], tf.shape(outs)[0]
    xt = _tile(x, c, n)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = t.flat_call(xt)
    cot = tf.one_hot(outs, tf.shape(y)[1], dtype=x.dtype)  # [c, m]
    cot = tf.reshape(tf.broadcast_to(cot[:, None, :], [c, batch, tf.shape(y)[1]]), [c * batch, -1])
    grad = tape.gradient(y, xt, output_gradients=cot)
    if grad is None:
        raise _unconnected()
    return _derivatives(t, tf.transpose(tf.reshape(grad, [c, batch, n]), [1, 0, 2]))  # [B, c, n]


def reverse_pfor(t, x, outs):
    # one forward pass, the selected outputs' backward passes vectorized (batch_jacobian)
    tf = tensorflow()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.gather(t.flat_call(x), outs, axis=1)
    jac = tape.batch_jacobian(y, x)
    if jac is None:
        raise _unconnected()
    return _derivatives(t, jac)  # [B, c, n]


def reverse_pfor_full(t, x):
    # all outputs: no gather (whose gradient, a scatter, would cost in every backward pass)
    tf = tensorflow()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = t.flat_call(x)
    jac = tape.batch_jacobian(y, x)
    if jac is None:
        raise _unconnected()
    return _derivatives(t, jac)  # [B, m, n]


def _fd(t, x, steps, scale, cols, central: bool):
    # every point's perturbed copies (x +- h and x +- 2h per column, and x itself) in one
    # model call; the estimates in float64 ([5, B, m, c], the channels of fdiff.CHANNELS)
    tf = tensorflow()
    n = t.width  # held columns (Target.fixed) are never perturbed: cols < t.n
    batch, c = tf.shape(x)[0], tf.shape(cols)[0]
    eye = tf.one_hot(cols, n, dtype=x.dtype)[None]  # [1, c, width]
    s = tf.gather(steps, cols, axis=2)  # [B, 4, c]: applied +h, -h, +2h, -2h (exact in x's dtype)
    sx = tf.cast(s, x.dtype)
    signs = (1.0, -1.0, 1.0, -1.0) if central else (1.0, 1.0)
    picks = (0, 1, 2, 3) if central else (0, 2)
    copies = [x[:, None, :] + sign * eye * sx[:, k, :, None] for sign, k in zip(signs, picks)]
    y = t.flat_call(tf.concat([tf.reshape(tf.concat(copies, axis=1), [-1, n]), x], axis=0))
    k_ = len(picks)
    yc = tf.cast(tf.reshape(y[: batch * k_ * c], [batch, k_, c, -1]), tf.float64)  # [B, k, c, m]
    y0 = tf.cast(y[batch * k_ * c :], tf.float64)[:, None, :]  # [B, 1, m]
    h = s[:, :, :, None]  # [B, 4, c, 1]
    if central:
        parts = estimates(yc[:, 0], yc[:, 1], yc[:, 2], yc[:, 3], y0, h[:, 0], h[:, 1], h[:, 2], h[:, 3],
                          evaluation_error(x.dtype.name), y_scale=scale[None, None, :], central=True)
    else:
        parts = estimates(yc[:, 0], None, yc[:, 1], None, y0, h[:, 0], None, h[:, 2], None,
                          evaluation_error(x.dtype.name), y_scale=scale[None, None, :], central=False)
    return tf.transpose(tf.stack(parts), [0, 1, 3, 2])  # [5, B, m, c]


def fd_central(t, x, steps, scale, cols):
    return _fd(t, x, steps, scale, cols, central=True)


def fd_forward(t, x, steps, scale, cols):
    return _fd(t, x, steps, scale, cols, central=False)


_FD_ARGS = (POINTS, STEPS, SCALE, INDEX)

#: Every kernel by name; :meth:`Target.kernel` compiles them.
KERNELS: dict[str, KernelDef] = {
    "evaluate": KernelDef(evaluate, (POINTS,)),
    "forward-tiled": KernelDef(forward_tiled, (POINTS, INDEX)),
    "forward-pfor": KernelDef(forward_pfor, (POINTS, INDEX), vectorized=True),
    "forward-pfor-full": KernelDef(forward_pfor_full, (POINTS,), vectorized=True),
    "reverse-tiled": KernelDef(reverse_tiled, (POINTS, INDEX)),
    "reverse-pfor": KernelDef(reverse_pfor, (POINTS, INDEX), vectorized=True),
    "reverse-pfor-full": KernelDef(reverse_pfor_full, (POINTS,), vectorized=True),
    "fd-central": KernelDef(fd_central, _FD_ARGS, traced_model=True),
    "fd-forward": KernelDef(fd_forward, _FD_ARGS, traced_model=True),
}

#: The kernels for all basis vectors at once (no index argument).
FULL_KERNELS = {"reverse-pfor": "reverse-pfor-full", "forward-pfor": "forward-pfor-full"}


def strategy_name(kind: str) -> str:
    """The name results show for a kernel (an all-basis-vectors variant is still X-pfor)."""
    return kind.removesuffix("-full")
