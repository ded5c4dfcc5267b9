"""Sensitivity measures, non-finite scans and dead inputs, streamed over chunks (pure numpy).

All functions take derivative arrays ``J[p, i, j] = d y_i / d x_j`` at points ``p``
and return plain arrays or dicts; nothing here knows about TensorFlow or files.
Non-finite derivatives are left out of the averages (and reported separately by
:func:`nonfinite`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .stats import finite_max, nanmean, shares

#: Plain-language definitions with references, shown in the report's methods section.
DEFINITIONS = {
    "mean_abs": (
        "Mean |dy/dx|",
        "The average absolute derivative over the points: how much the output moves per unit of the input.",
        "Saltelli et al., Global Sensitivity Analysis: The Primer, Wiley 2008, ch. 1.",
    ),
    "rms": (
        "RMS dy/dx (DGSM)",
        "The root mean square of the derivative over the points, sqrt(nu) for the derivative-based "
        "global sensitivity measure nu = E[(dy/dx)^2]; large where the output is steep anywhere.",
        "Sobol' & Kucherenko, Derivative based global sensitivity measures, Math. Comput. Simul. 79 (2009) 3009-3017.",
    ),
    "std_scaled": (
        "Std-scaled",
        "Mean |dy/dx| times the input's standard deviation over the points: the output change caused by a "
        "typical variation of the input, comparable across inputs with different units.",
        "Saltelli et al., Global Sensitivity Analysis: The Primer, Wiley 2008, sec. 1.2.3 (sigma-normalised derivatives).",
    ),
    "elasticity": (
        "Elasticity",
        "Mean |x / y * dy/dx|: the percent change of the output per percent change of the input. Points "
        "where the output is within 1e-6 of zero (relative to its largest value) are left out.",
        "Sydsaeter & Hammond, Essential Mathematics for Economic Analysis, 2016, sec. 7.7.",
    ),
    "positive_share": (
        "Share positive",
        "The share of points where the derivative is positive: 1 means the output always rises with the "
        "input, 0 always falls, values in between mean the direction depends on the point.",
        "",
    ),
}

ELASTICITY_GUARD = 1e-6


def _ratio(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


#: The sums kept per batch of points for the confidence intervals.
BATCH_SUMS = ("sum_abs", "sum_sq", "count", "positive", "sum_elastic", "count_elastic")


class Batches:
    """``count`` batches of consecutive points out of ``points``: batch ``b`` holds points
    ``[b P / count, (b + 1) P / count)``. Fixed by the point indices, not by how the points
    are chunked, so the batches' sums are the same on one machine and on many."""

    def __init__(self, points: int, count: int):
        self.points, self.count = int(points), max(1, min(int(count), int(points)))
        self.edges = (np.arange(self.count + 1) * self.points) // self.count

    def pieces(self, offset: int, length: int):
        """``(batch, slice into the chunk)`` for a chunk of ``length`` points from ``offset``."""
        start, stop = offset, offset + length
        first = int(np.searchsorted(self.edges, start, side="right")) - 1
        for b in range(max(first, 0), self.count):
            lo, hi = max(start, self.edges[b]), min(stop, self.edges[b + 1])
            if lo >= stop:
                break
            if hi > lo:
                yield b, slice(lo - offset, hi - offset)


#: Values per block of the accumulators' float64 temporaries (2 MiB each: a block's
#: several passes then find it in a core's cache).
BLOCK_VALUES = 1 << 18


def blocks(shape: tuple[int, ...]):
    """Slices over axis 1 (outputs) of a ``[b, k, n]`` array, each about BLOCK_VALUES values."""
    b, k, n = shape
    step = max(1, BLOCK_VALUES // max(1, b * n))
    for start in range(0, k, step):
        yield slice(start, min(k, start + step))


#: Every sum a :class:`MeasureAccumulator` keeps.
SUMS = ("sum_abs", "sum_sq", "count", "positive", "negative", "sum", "sum_elastic", "count_elastic")
#: Values (outputs x inputs) of one point in a group of outputs, the unit of work the
#: threads share: a few outputs, so that groups and batches give the threads enough items.
GROUP_VALUES = 1 << 10
#: Values per tile of a group's points (1 MiB of float64: a tile's passes find it in a
#: core's cache), and at most 255 points (the tile's sign counts add up in uint8).
TILE_VALUES = 1 << 17
TILE_POINTS = 255


def tiles(shape: tuple[int, ...]) -> tuple[list[slice], int]:
    """How :class:`MeasureAccumulator` splits a ``[b, k, n]`` chunk: groups of outputs
    (slices over axis 1) and the points per tile. Fixed by the shape alone."""
    b, k, n = shape
    rows = max(1, min(k, GROUP_VALUES // max(1, n)))
    step = max(1, min(TILE_POINTS, TILE_VALUES // max(1, rows * n)))
    step = -(-b // -(-b // step)) if b else step  # tiles of equal size: no sliver of a few points at the end
    return [slice(s, min(k, s + rows)) for s in range(0, k, rows)], step


def _group_sums(jac, ax, y, inv, usable, step) -> tuple[dict[str, np.ndarray], bool]:
    """The sums of one group of outputs ``jac [b, r, n]`` over its points, a tile of
    ``step`` points at a time; and whether every derivative was finite."""
    out = {name: np.zeros(jac.shape[1:]) for name in SUMS}
    finite = True
    for s in range(0, len(jac), step):
        t = slice(s, s + step)
        if not (usable[t].all() and _add_finite(out, jac[t], ax[t], inv[t])):
            finite &= _add_masked(out, jac[t], ax[t], y[t], usable[t])
    return out, finite


def _add_finite(out: dict[str, np.ndarray], jac: np.ndarray, ax: np.ndarray, inv: np.ndarray) -> bool:
    """Add a tile ``jac [t, r, n]`` (at ``|x| [t, n]``, with ``1 / |y| [t, r]``) into ``out``,
    the common case: every derivative finite, every output usable for elasticities. No
    masks; the tile is copied once, outputs first, and widened once. No BLAS: calls from
    several threads into numpy's OpenBLAS wait for each other. False (nothing added) when
    a sum is not finite (a NaN or an infinity in the tile, or an overflow); the masked
    path then handles it."""
    j = np.ascontiguousarray(jac.transpose(1, 0, 2))  # [r, t, n]; its signs are counted below
    t = j.shape[1]
    wide = j.astype(np.float64)  # exact
    with np.errstate(over="ignore", invalid="ignore"):
        total = wide.sum(1)
        sq = np.einsum("ipj,ipj->ij", wide, wide)
        np.abs(wide, out=wide)
        sum_abs = wide.sum(1)  # finite exactly when every derivative is
        np.multiply(wide, ax, out=wide)
        elastic = np.einsum("ipj,pi->ij", wide, inv)
    if not (np.isfinite(sum_abs).all() and np.isfinite(sq).all() and np.isfinite(elastic).all()):
        return False
    out["sum_abs"] += sum_abs
    out["sum_sq"] += sq
    out["sum"] += total
    out["sum_elastic"] += elastic
    out["count"] += t
    out["count_elastic"] += t
    # exact counts: at most TILE_POINTS points, added as bytes
    out["positive"] += np.add.reduce(np.greater(j, 0).view(np.uint8), axis=1, dtype=np.uint8)
    out["negative"] += np.add.reduce(np.less(j, 0).view(np.uint8), axis=1, dtype=np.uint8)
    return True


def _add_masked(out: dict[str, np.ndarray], jac: np.ndarray, ax: np.ndarray, y: np.ndarray,
                usable: np.ndarray) -> bool:
    """Add a tile ``jac [t, r, n]`` with non-finite derivatives left out of every sum and
    unusable outputs (``usable [t, r]`` False) out of the elasticities; returns whether
    every derivative was finite."""
    j = np.asarray(jac, dtype=np.float64)
    finite = np.isfinite(j)
    jz = np.where(finite, j, 0.0)
    out["sum_abs"] += np.abs(jz).sum(0)
    out["sum_sq"] += (jz**2).sum(0)
    out["count"] += finite.sum(0)
    out["positive"] += (jz > 0).sum(0)
    out["negative"] += (jz < 0).sum(0)
    out["sum"] += jz.sum(0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        e = np.abs(jz * ax[:, None, :] / np.where(usable, y, 1.0)[:, :, None])
    ok = finite & usable[:, :, None] & np.isfinite(e)
    out["sum_elastic"] += np.where(ok, e, 0.0).sum(0)
    out["count_elastic"] += ok.sum(0)
    return bool(finite.all())


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


#: Threads the streaming reductions spread their blocks over (numpy releases the GIL in its
#: loops, and TensorFlow is idle while a chunk is reduced): the cores this process may
#: use, at most 4 (past that, memory bandwidth is the limit).
REDUCTION_THREADS = max(1, min(4, _cores()))
_THREAD_PREFIX = "sensreport-reduce"
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def parallel_map(fn, items) -> list:
    """``[fn(item) for item in items]``, the items spread over up to
    :data:`REDUCTION_THREADS` threads (inline for one item, or when already on one).

    Each ``fn`` must touch only what its item owns (anything shared is combined from
    the results, in order), so the numbers do not depend on the number of threads.
    """
    global _pool
    items = list(items)
    if len(items) <= 1 or REDUCTION_THREADS == 1 or threading.current_thread().name.startswith(_THREAD_PREFIX):
        return [fn(item) for item in items]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(REDUCTION_THREADS, thread_name_prefix=_THREAD_PREFIX)
    return list(_pool.map(fn, items))


_blas = None


@contextlib.contextmanager
def serial_blas():
    """numpy's BLAS on one thread inside the block (also a decorator). The reductions
    spread their own work over :data:`REDUCTION_THREADS`; OpenBLAS's threads, woken by a
    product, spin-wait after it on the cores TensorFlow takes for the next chunk (a
    100,000-point Jacobian sweep in chunks of one model call ran about 1.4x slower beside
    them). The limit is set and lifted through threadpoolctl, which finds every loaded
    BLAS (numpy has no API for it); the controller is built once, on first use."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        yield


def map_blocks(fn, shape: tuple[int, ...]) -> list:
    """``fn(rows)`` for every block of :func:`blocks` (see :func:`parallel_map`), the
    results in block order. The blocks are the same whatever the number of threads."""
    return parallel_map(fn, blocks(shape))


class MeasureAccumulator:
    """Streaming sums behind every measure, fed one chunk of points at a time.

    The same sums serve a whole array at once, chunks of points on one machine, and
    partial results from several workers (:meth:`merge`), so the numbers do not depend
    on how the points were split (up to float rounding of the sums).

    Parameters
    ----------
    k, n : int
        Outputs (rows) and inputs of the derivative arrays.
    output_guard : ndarray [k]
        |y| at or below which a point is left out of that output's elasticity; see
        :func:`elasticity_guard`.
    """

    def __init__(self, k: int, n: int, output_guard: np.ndarray, batches: Batches | None = None):
        self.guard = np.asarray(output_guard, dtype=np.float64)
        self.shape = (k, n)
        z = lambda: np.zeros((k, n))  # noqa: E731
        self.sum_abs, self.sum_sq, self.count = z(), z(), z()
        self.positive, self.negative, self.sum = z(), z(), z()
        self.sum_elastic, self.count_elastic = z(), z()
        #: with ``batches``: the sums behind the measures per batch of consecutive points
        #: (batch -> name -> ``[k, n]``), from which the confidence intervals are drawn
        self.batches = batches
        self.by_batch: dict[int, dict[str, np.ndarray]] = {}

    def update(self, jac: np.ndarray, points: np.ndarray, outputs: np.ndarray, offset: int = 0) -> bool:
        """Add ``jac [b, k, n]`` at ``points [b, n]`` with ``outputs [b, k]``; ``offset`` is
        the index of the first point (it places the points in their batches).

        Works through tiles of a few outputs and points (:func:`tiles`), spread over
        threads (:func:`parallel_map`) and added in order, so its float64 temporaries stay
        in cache and the sums do not depend on the number of threads. Returns whether
        every derivative was finite (then no NaN/Inf scan of the chunk is needed).
        """
        b, k, n = jac.shape
        pieces = [(None, slice(0, b))] if self.batches is None else list(self.batches.pieces(offset, b))
        groups, step = tiles(jac.shape)
        y = np.asarray(outputs, dtype=np.float64)
        ax = np.abs(np.asarray(points, dtype=np.float64))
        abs_y = np.abs(y)
        with np.errstate(divide="ignore"):
            inv = 1.0 / abs_y
        usable = np.isfinite(y) & (abs_y > np.maximum(self.guard, np.finfo(np.float64).tiny))

        def group_sums(item):
            sl, rows = item
            return _group_sums(jac[sl, rows], ax[sl], y[sl, rows], inv[sl, rows], usable[sl, rows], step)

        sums = parallel_map(group_sums, [(sl, rows) for _, sl in pieces for rows in groups])
        finite = True
        for p, (batch, _) in enumerate(pieces):  # in order: the same sums on one thread and on several
            piece = {name: np.zeros(self.shape) for name in SUMS}
            for g, rows in enumerate(groups):
                part, ok = sums[p * len(groups) + g]
                finite &= ok
                for name in SUMS:
                    piece[name][rows] = part[name]
            for name in SUMS:
                setattr(self, name, getattr(self, name) + piece[name])
            if batch is not None:
                mine = self.by_batch.setdefault(batch, {name: np.zeros(self.shape) for name in BATCH_SUMS})
                for name in BATCH_SUMS:
                    mine[name] += piece[name]
        return finite

    def merge(self, other: "MeasureAccumulator") -> "MeasureAccumulator":
        """Add another accumulator's sums (e.g. from another worker) into this one."""
        for name in SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for batch, sums in other.by_batch.items():
            mine = self.by_batch.setdefault(batch, {name: np.zeros(self.shape) for name in BATCH_SUMS})
            for name in BATCH_SUMS:
                mine[name] += sums[name]
        return self

    def batch_sums(self) -> dict[str, np.ndarray] | None:
        """The sums behind the measures per batch, each ``[batches, k, n]`` (batches in
        order; those without points left out), or None without batches."""
        if not self.by_batch:
            return None
        order = sorted(self.by_batch)
        return {name: np.stack([self.by_batch[b][name] for b in order]) for name in BATCH_SUMS}

    def result(self, spread: np.ndarray) -> dict[str, np.ndarray]:
        """The measures ``[k, n]``; ``spread [n]`` is each input's std over all points (NaN if unknown)."""
        mean_abs = _ratio(self.sum_abs, self.count)
        return {
            "mean_abs": mean_abs,
            "rms": np.sqrt(_ratio(self.sum_sq, self.count)),
            "std_scaled": mean_abs * np.asarray(spread, dtype=np.float64)[None, :],
            "elasticity": _ratio(self.sum_elastic, self.count_elastic),
            "positive_share": _ratio(self.positive, self.count),
        }

    def directions(self) -> dict[str, np.ndarray]:
        """The mean derivative and the shares of points with a positive and with a negative
        one, each ``[k, n]`` (non-finite derivatives left out; NaN where none is finite)."""
        return {"mean": _ratio(self.sum, self.count), "positive": _ratio(self.positive, self.count),
                "negative": _ratio(self.negative, self.count)}

    def dead_inputs(self) -> list[int]:
        """Inputs whose derivative was exactly zero for every output at every point: their
        sums of |dy/dx| are zero (non-negative terms, finite ones only, added in float64,
        so any non-zero derivative leaves a non-zero sum)."""
        return [int(j) for j in np.flatnonzero((self.sum_abs == 0).all(axis=0))]


def output_magnitude(outputs: np.ndarray) -> np.ndarray:
    """Per output: its largest finite |y| over all points ``[P, m]`` (0 when none is finite).

    A block of points at a time: whole-array temporaries of 100,000 x 64 outputs cost a
    quarter of a second, mostly in fresh pages."""
    y = np.asarray(outputs)
    p, m = y.shape
    out = np.zeros(m)
    step = max(1, BLOCK_VALUES // max(1, m))
    for s in range(0, p, step):
        np.maximum(out, finite_max(np.abs(y[s : s + step], dtype=np.float64), axis=0)[0], out=out)
    return out


def elasticity_guard(outputs: np.ndarray) -> np.ndarray:
    """Per output: ``ELASTICITY_GUARD`` times its largest finite |y| over all points."""
    return ELASTICITY_GUARD * output_magnitude(outputs)


def input_spread(points: np.ndarray) -> np.ndarray:
    """Each input's standard deviation over the points (ddof 0); NaN with a single point.

    Two passes over blocks of points, so no temporary as large as ``points`` is made.
    """
    x = np.asarray(points)
    p, n = x.shape
    if p < 2:
        return np.full(n, np.nan)
    step = max(1, BLOCK_VALUES // max(1, n))
    mean = sum(x[s : s + step].sum(0, dtype=np.float64) for s in range(0, p, step)) / p
    ss = sum(((x[s : s + step] - mean) ** 2).sum(0) for s in range(0, p, step))
    return np.sqrt(ss / p)


def sensitivity_measures(jac: np.ndarray, points: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-output, per-input measures ``[m, n]`` from Jacobians ``[P, m, n]``.

    Parameters
    ----------
    jac : ndarray [P, m, n]
    points : ndarray [P, n]
        The inputs, for the input spread and elasticities.
    outputs : ndarray [P, m]
        The outputs at the points, for elasticities.

    Returns
    -------
    dict with ``mean_abs``, ``rms``, ``std_scaled``, ``elasticity``, ``positive_share``;
    ``std_scaled`` is NaN with a single point (no spread to measure). Non-finite
    derivatives are left out of every average.
    """
    acc = MeasureAccumulator(jac.shape[1], jac.shape[2], elasticity_guard(outputs))
    acc.update(jac, points, outputs)
    return acc.result(input_spread(points))


#: Measures that are magnitudes (rankable), in the order the report offers them;
#: ``positive_share`` is a direction, not a size.
RANKABLE = ("std_scaled", "mean_abs", "rms", "elasticity")

#: Measures that are already comparable across outputs: averaged, not normalised.
UNITLESS = frozenset({"positive_share"})


def overall(measure: np.ndarray, name: str = "") -> np.ndarray:
    """One value per input from a ``[m, n]`` measure, every output counting equally.

    Each output's row is divided by its sum over inputs (so outputs in different
    units are comparable), then the shares are averaged over outputs. Rows that
    sum to zero or are all NaN are left out. ``positive_share`` is a share already
    and is simply averaged over outputs.
    """
    m = np.asarray(measure, dtype=np.float64)
    if name in UNITLESS:
        return nanmean(m, 0)
    return nanmean(shares(m, axis=1), 0)




def all_finite(a: np.ndarray) -> bool:
    """Whether every entry is finite; a ``[b, k, n]`` array is tested a block of outputs at
    a time (no chunk-sized temporary: fresh memory is costly to fault in)."""
    if a.ndim != 3 or a.size <= BLOCK_VALUES:
        return bool(np.isfinite(a).all())
    return all(map_blocks(lambda rows: bool(np.isfinite(a[:, rows]).all()), a.shape))


class NonfiniteAccumulator:
    """Count and locate NaN / infinite entries across chunks (the first ``limit`` kept)."""

    def __init__(self, limit: int = 20):
        self.limit = limit
        self.count = self.nan = self.inf = 0
        self.locations: list[list[int]] = []

    def update(self, array: np.ndarray, offset: int = 0) -> None:
        a = np.asarray(array)
        if all_finite(a):
            return
        bad = ~np.isfinite(a)
        self.count += int(bad.sum())
        self.nan += int(np.isnan(a).sum())
        self.inf += int(np.isinf(a).sum())
        for idx in np.argwhere(bad)[: max(0, self.limit - len(self.locations))]:
            self.locations.append([int(idx[0]) + offset, *(int(v) for v in idx[1:])])

    def merge(self, other: "NonfiniteAccumulator") -> "NonfiniteAccumulator":
        self.count += other.count
        self.nan += other.nan
        self.inf += other.inf
        self.locations = sorted(self.locations + other.locations)[: self.limit]
        return self

    def summary(self) -> dict:
        return {"count": self.count, "nan": self.nan, "inf": self.inf, "locations": self.locations}


def nonfinite(array: np.ndarray, limit: int = 20) -> dict:
    """Count and locate NaN / infinite entries: ``{count, nan, inf, locations}``.

    ``locations`` holds up to ``limit`` index tuples into ``array``.
    """
    acc = NonfiniteAccumulator(limit)
    acc.update(array)
    return acc.summary()


def dead_inputs(jac: np.ndarray) -> list[int]:
    """Inputs whose derivative is exactly zero for every output at every point."""
    acc = MeasureAccumulator(jac.shape[1], jac.shape[2], np.zeros(jac.shape[1]))
    acc.update(jac, np.zeros((jac.shape[0], jac.shape[2])), np.zeros(jac.shape[:2]))
    return acc.dead_inputs()
