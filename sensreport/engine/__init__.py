"""Derivatives of a function at many points: Jacobians, rows and finite differences.

Everything here is batched. A :class:`Target` wraps a model or function as a map from
a batch of flat points ``[B, n]`` to a batch of flat outputs ``[B, m]``, and compiles
each derivative kernel once, as a ``tf.function`` whose signature leaves the batch
dimension open, so neither a new chunk size nor a new call retraces it.

Layout: :mod:`.runtime` (TensorFlow, memory, zero-copy views), :mod:`.kernels` (the
kernel registry), :mod:`.target` (:class:`Target`, which compiles kernels), :mod:`.xla`
(XLA per kernel), :mod:`.chunks` (splitting calls to a budget), :mod:`.methods`
(``jacobian``, ``rows``, ``finite_difference``), :mod:`.diagnostics` (ops that block
gradients, custom gradients).

The kernels (reverse/forward, vectorized or tiled, whole-basis variants, batched
finite differences with their error estimates) are described where they are defined,
in :mod:`.kernels`; :mod:`.fdiff` holds the finite-difference error model.

``auto`` picks forward mode when there are at most as many inputs as outputs. XLA
(``jit_compile``) is off, on, or chosen per kernel by timing (:func:`autotune_xla`).
All functions take and return numpy arrays.
"""

from __future__ import annotations

from .chunks import MAX_ROWS_PER_CALL, Progress, check_fits, plan_chunks
from .diagnostics import NO_GRADIENT_OPS, ZERO_GRADIENT_OPS, gradient_blockers
from .kernels import KERNELS, strategy_name
from .fdiff import CHANNELS as FD_CHANNELS
from .methods import (
    KERNEL_ORDER,
    MODES,
    Derivative,
    FDEstimate,
    MethodRun,
    choose_mode,
    fd_dtype,
    fd_step,
    finite_difference,
    jacobian,
    rows,
    select_kernel,
)
from .runtime import (
    DEFAULT_MEMORY_FRACTION,
    NotDifferentiableError,
    as_numpy,
    available_memory,
    default_memory_budget,
    first_line,
    keep_freed_memory,
    tensorflow,
)
from .target import Target, as_target
from .xla import XlaChoices, autotune_xla

__all__ = [
    "DEFAULT_MEMORY_FRACTION",
    "KERNELS",
    "KERNEL_ORDER",
    "MAX_ROWS_PER_CALL",
    "MODES",
    "NO_GRADIENT_OPS",
    "ZERO_GRADIENT_OPS",
    "Derivative",
    "FDEstimate",
    "FD_CHANNELS",
    "MethodRun",
    "NotDifferentiableError",
    "Progress",
    "Target",
    "XlaChoices",
    "as_numpy",
    "as_target",
    "autotune_xla",
    "available_memory",
    "check_fits",
    "choose_mode",
    "default_memory_budget",
    "fd_dtype",
    "fd_step",
    "finite_difference",
    "first_line",
    "gradient_blockers",
    "jacobian",
    "keep_freed_memory",
    "plan_chunks",
    "rows",
    "select_kernel",
    "strategy_name",
    "tensorflow",
]
