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
* ``fd-central`` / ``fd-forward``: every point's perturbed copies built and evaluated
  in one call, the differences divided by the applied steps in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .runtime import NotDifferentiableError, tensorflow

#: Argument kinds of a kernel's signature: points ``[None, n]`` in the kernel's dtype,
#: basis indices ``[None]`` (int32), and float64 ``[None, n]`` (finite-difference spans).
POINTS, INDEX, FLOAT64 = "points", "index", "float64"


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


def evaluate(t, x):
    return t.flat_call(x)


def forward_tiled(t, x, cols):
    # the batch tiled once per tangent: one model call on c * B rows
    tf = tensorflow()
    n = t.n
    batch, c = tf.shape(x)[0], tf.shape(cols)[0]
    xt = _tile(x, c, n)
    tangents = tf.one_hot(cols, n, dtype=x.dtype)  # [c, n]
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
    return _forward_pfor_tangents(t, x, tensorflow().one_hot(cols, t.n, dtype=x.dtype))


def forward_pfor_full(t, x):
    # all inputs: the identity as a constant, which XLA can fold into the first layer
    return _forward_pfor_tangents(t, x, tensorflow().eye(t.n, dtype=x.dtype))


def reverse_tiled(t, x, outs):
    # the batch tiled once per cotangent: one model call on c * B rows
    tf = tensorflow()
    n = t.n
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
    return tf.transpose(tf.reshape(grad, [c, batch, n]), [1, 0, 2])  # [B, c, n]


def reverse_pfor(t, x, outs):
    # one forward pass, the selected outputs' backward passes vectorized (batch_jacobian)
    tf = tensorflow()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.gather(t.flat_call(x), outs, axis=1)
    jac = tape.batch_jacobian(y, x)
    if jac is None:
        raise _unconnected()
    return jac  # [B, c, n]


def reverse_pfor_full(t, x):
    # all outputs: no gather (whose gradient, a scatter, would cost in every backward pass)
    tf = tensorflow()
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = t.flat_call(x)
    jac = tape.batch_jacobian(y, x)
    if jac is None:
        raise _unconnected()
    return jac  # [B, m, n]


def _quotients(diff, span, cols):
    # differences [B, c, m] in the model's dtype (exact for nearby values), divided by the
    # applied steps in float64: [B, m, c], the layout of the result
    tf = tensorflow()
    den = tf.gather(span, cols, axis=1)[:, None, :]
    return tf.transpose(tf.cast(diff, tf.float64), [0, 2, 1]) / den


def fd_central(t, x, plus, minus, span, cols):
    tf = tensorflow()
    n = t.n
    batch, c = tf.shape(x)[0], tf.shape(cols)[0]
    eye = tf.one_hot(cols, n, dtype=x.dtype)[None]  # [1, c, n]
    up = x[:, None, :] + eye * tf.gather(plus, cols, axis=1)[:, :, None]
    down = x[:, None, :] - eye * tf.gather(minus, cols, axis=1)[:, :, None]
    y = t.flat_call(tf.reshape(tf.concat([up, down], axis=1), [-1, n]))
    y = tf.reshape(y, [batch, 2, c, -1])
    return _quotients(y[:, 0] - y[:, 1], span, cols)


def fd_forward(t, x, plus, minus, span, cols):
    tf = tensorflow()
    n = t.n
    batch, c = tf.shape(x)[0], tf.shape(cols)[0]
    eye = tf.one_hot(cols, n, dtype=x.dtype)[None]
    up = tf.reshape(x[:, None, :] + eye * tf.gather(plus, cols, axis=1)[:, :, None], [-1, n])
    y = t.flat_call(tf.concat([up, x], axis=0))
    y_up = tf.reshape(y[: batch * c], [batch, c, -1])
    return _quotients(y_up - y[batch * c :][:, None, :], span, cols)


_FD_ARGS = (POINTS, POINTS, POINTS, FLOAT64, INDEX)

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
