"""Finite differences with an error estimate per entry, and kinks (see NUMERICS notes).

Central differences evaluate every input column at ``x +- h`` and ``x +- 2h`` (and the
point itself once); forward differences at ``x + h``, ``x + 2h`` and ``x``. From those:

* ``fd``: the difference quotient at step ``h`` (central: ``(f(x+h) - f(x-h)) / 2h``);
* ``error``: its estimated error: the disagreement with the quotient at ``2h``
  (a conservative bound on the truncation error for a smooth function; numdifftools
  judges steps the same way) plus the round-off of the quotient,
  ``eps_f (|f(x+h)| + |f(x-h)|) / 2h``, where ``eps_f`` is the relative error of one
  evaluation of the model (:func:`evaluation_error`: a multiple of the unit round-off
  of the dtype it computes in), plus any disagreement of the one-sided slopes beyond
  their own errors (a slope change within the step);
* ``backward`` / ``forward``: the one-sided quotients at ``h``, and ``kink_error`` their
  own estimated errors added (each from the one-sided quotient at ``2h`` and its
  round-off). Where the two one-sided slopes differ by more than a few times that
  (:data:`KINK_FACTOR`), the function is not smooth between ``x - h`` and ``x + h``: a
  ReLU, ``max`` or ``abs`` switches there, and the entry is a kink, not a test of the
  derivative.

All quotients use the steps actually applied (``fl(x + h) - x``), in float64.
"""

from __future__ import annotations

import numpy as np

#: Channels of the estimate arrays ``[CHANNELS, P, m, n]``.
CHANNELS = ("fd", "error", "backward", "forward", "kink_error")
#: The relative error of one model evaluation, as a multiple of the unit round-off of the
#: dtype it computes in: a forward pass accumulates the round-off of many operations.
#: Calibrated on healthy float32 Keras models (ReLU, GELU, tanh, LSTM) and float64
#: functions: see tests/test_agreement_models.py.
EVAL_ERROR_ULPS = 16.0
#: One-sided slopes further apart than this many times their estimated errors: a kink.
#: A smooth function gives a ratio near 1; a slope jump at distance ``a h`` from the point
#: gives ``2 (1 - a) / a``, so 2 flags jumps within ``h / 2``, where the central
#: difference at ``h`` would be off by more than its estimate allows (z near 2 at the edge).
KINK_FACTOR = 2.0


def relu(v):
    """``max(v, 0)`` with arithmetic only (numpy arrays and TensorFlow tensors alike)."""
    return (v + abs(v)) / 2


def evaluation_error(dtype: str) -> float:
    """``eps_f``: the relative error of one evaluation of a model computing in ``dtype``."""
    return EVAL_ERROR_ULPS * float(np.finfo(np.dtype(dtype)).eps) / 2


def estimates(y_plus, y_minus, y_plus2, y_minus2, y0, h_plus, h_minus, h_plus2, h_minus2, eps_f, y_scale=0.0,
              central=True):
    """The five channels (see :data:`CHANNELS`) from model outputs at the perturbed points.

    Works on numpy arrays and TensorFlow tensors alike (only arithmetic and ``abs``).
    ``y_*`` are float64 outputs at ``x + h``, ``x - h``, ``x + 2h``, ``x - 2h`` and ``x``;
    ``h_*`` the applied steps (positive), broadcastable against them; ``y_scale`` each
    output's magnitude over all points (``[m]``): a model's round-off follows the size of
    its intermediate values, which an output that cancels to near 0 at a point hides, so
    the round-off terms count ``|y| + y_scale`` rather than ``|y|``. For forward
    differences (``central=False``) the ``minus`` arguments are ignored and the kink
    channels are NaN.
    """
    if central:
        span, span2 = h_plus + h_minus, h_plus2 + h_minus2
        fd = (y_plus - y_minus) / span
        fd2 = (y_plus2 - y_minus2) / span2
        error = abs(fd2 - fd) + eps_f * (abs(y_plus) + abs(y_minus) + y_scale) / span
        backward = (y0 - y_minus) / h_minus
        forward = (y_plus - y0) / h_plus
        kink_error = (abs((y_plus2 - y0) / h_plus2 - forward) + eps_f * (abs(y_plus) + abs(y0) + y_scale) / h_plus
                      + abs((y0 - y_minus2) / h_minus2 - backward)
                      + eps_f * (abs(y_minus) + abs(y0) + y_scale) / h_minus)
        # For a smooth function the one-sided slopes differ by about h|f''|, which their own
        # errors (kink_error) cover; what they differ by beyond that is a slope change within
        # the step that the comparison with 2h can miss (several kinks close together), and
        # it bounds how far the central difference can be off: count it in its error.
        error = error + relu(abs(forward - backward) - kink_error)
        return fd, error, backward, forward, kink_error
    fd = (y_plus - y0) / h_plus
    fd2 = (y_plus2 - y0) / h_plus2
    error = abs(fd2 - fd) + eps_f * (abs(y_plus) + abs(y0) + y_scale) / h_plus
    nan = fd * float("nan")
    return fd, error, nan, nan, nan
