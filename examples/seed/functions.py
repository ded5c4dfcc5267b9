"""The three classic cases, written for one point as in the textbooks.

The engine vectorizes each over the points (``model.batched`` is false).
"""

import numpy as np
import tensorflow as tf


def quadratic(x):
    """x^2 + 2x + 1; at x = 2 the derivative is 6."""
    return x**2 + 2 * x + 1


def vector(x):
    """stack([x0^2, sin x1, exp x2]); its Jacobian is diag(2 x0, cos x1, exp x2)."""
    return tf.stack([x[0] ** 2, tf.sin(x[1]), tf.exp(x[2])])


def _cube_root_times_sine(a):
    # Plain numpy: TensorFlow sees an opaque tf.numpy_function and has no derivative for it.
    return (np.cbrt(a) * np.sin(a)).astype(a.dtype)


def blackbox(x):
    """cbrt(x) * sin(x) computed in numpy; d/dx = sin(x) / (3 x^(2/3)) + cbrt(x) cos(x)."""
    return tf.numpy_function(_cube_root_times_sine, [x], x.dtype)
