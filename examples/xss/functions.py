"""A tiny smooth model for the escaping example: 5 inputs, 3 outputs."""

import tensorflow as tf


def mix(x):
    """[x0 * x1 + x2, sin(x3) - x4 ** 2, exp(0.1 * x0) + x1 * x4]."""
    return tf.stack([x[0] * x[1] + x[2], tf.sin(x[3]) - x[4] ** 2, tf.exp(0.1 * x[0]) + x[1] * x[4]])
