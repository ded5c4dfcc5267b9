"""How one derivative call is split to fit a memory budget, and how the pieces are put
back together into one array."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..errors import ComputeError
from ..sizes import format_bytes

#: Most rows (points x basis vectors) sent to the model in one call.
MAX_ROWS_PER_CALL = 1 << 16

Progress = Callable[[int], None]


def plan_chunks(rows_per_point: int, row_bytes: int, points: int, budget: int) -> tuple[int, int]:
    """Choose (points per call, basis vectors per call) so one call stays in ``budget``.

    ``rows_per_point`` is how many basis vectors (or perturbed copies) each point
    needs in all. The basis is split only when even one point's rows exceed the budget.
    """
    max_rows = max(1, min(MAX_ROWS_PER_CALL, budget // max(1, row_bytes)))
    basis = max(1, min(rows_per_point, max_rows))
    per_call = max(1, min(points, max_rows // basis))
    return per_call, basis


def check_fits(key: str, shape: tuple[int, ...], itemsize: int, budget: int, what: str) -> None:
    """Raise a :class:`ComputeError` naming ``key`` when an array of ``shape`` exceeds ``budget``."""
    need = int(np.prod(shape, dtype=np.int64)) * itemsize
    if need > budget:
        raise ComputeError(
            key,
            f"the {what} {list(shape)} needs {format_bytes(need)} but the memory budget is {format_bytes(budget)}. "
            "Select fewer outputs (methods.rows), use fewer points, or raise "
            "execution.memory_budget.",
        )


def sweep_basis(
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
    lead: int = 0,
) -> tuple[np.ndarray, float, int]:
    """Run ``call(point_slice, basis_indices)`` over chunks of points (outer) and basis
    (inner) and assemble the read-only ``shape`` array; returns (array, first call's
    seconds, calls).

    Each result fills the chunk's points and, along ``axis`` (1: outputs, 2: inputs), its
    basis indices. When one call covers everything (and ``whole``), its result is the
    array: nothing is allocated up front (an unused array cost more than a copy, with
    fresh pages on every call). ``progress`` is told how many points each finished
    chunk held. ``lead`` counts leading axes before the points axis (channels of one
    result, e.g. a finite difference and its error estimate), which every call fills whole.
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
                where = [slice(None)] * lead + [sl, slice(None), slice(None)]
                where[lead + axis] = slice(idx[0], idx[-1] + 1)
                out[tuple(where)] = values
            if progress is not None:
                progress(sl.stop - sl.start)
    out.flags.writeable = False  # read-only in every path, like a one-call result (a view)
    return out, first, calls
