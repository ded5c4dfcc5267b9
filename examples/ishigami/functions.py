"""The Ishigami function, a standard test of global sensitivity analysis.

f(x) = sin x1 + a sin^2 x2 + b x3^4 sin x1 with a = 7, b = 0.1 and each x_i uniform on
[-pi, pi] (Ishigami and Homma 1990). Written for one point (``model.batched`` false);
the engine vectorizes it over the points.
"""

import tensorflow as tf

A = 7.0
B = 0.1


def ishigami(x):
    """sin x1 + 7 sin^2 x2 + 0.1 x3^4 sin x1 for x = [x1, x2, x3]."""
    return tf.sin(x[0]) + A * tf.sin(x[1]) ** 2 + B * x[2] ** 4 * tf.sin(x[0])
