"""Derivatives and their reductions over chunks of points: the local sweep.

:func:`run_chunk` computes every planned method (:data:`~.methods.METHODS`) on one chunk
and folds the results into a :class:`Partial` of streaming reductions (the analysis
stage's accumulators); partials from different chunks (or machines, see
:mod:`.ray`) combine with :meth:`Partial.merge`. :func:`sweep` is the local loop over
chunks. The measures come out the same whatever the chunking, so a run that keeps no
arrays reports the same numbers as one that does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import engine
from ..analysis.agreement import AgreementAccumulator, disagreeing
from ..analysis.globalsa import SubspaceAccumulator
from ..analysis.measures import MeasureAccumulator, NonfiniteAccumulator, serial_blas
from ..errors import ComputeError
from .methods import METHODS
from .plan import PREVIEW_POINTS, Plan


@dataclass
class MethodPartial:
    """One method's reductions over the chunks seen so far, and how it ran."""

    run: engine.MethodRun
    measures: MeasureAccumulator
    nonfinite: NonfiniteAccumulator
    subspace: SubspaceAccumulator | None = None  # the plan's subspace method only

    @property
    def status(self) -> str:
        return self.run.status

    def merge(self, other: "MethodPartial") -> "MethodPartial":
        self.run.merge(other.run)
        self.measures.merge(other.measures)
        self.nonfinite.merge(other.nonfinite)
        if self.subspace is not None and other.subspace is not None:
            self.subspace.merge(other.subspace)
        return self


@dataclass
class Partial:
    """Reductions of every method over some chunks; merge partials to combine chunks."""

    methods: dict[str, MethodPartial]
    agreement: AgreementAccumulator | None
    points: int = 0
    #: seconds spent folding chunks into the reductions (measures, scans, agreement)
    reduce_seconds: float = 0.0

    def merge(self, other: "Partial") -> "Partial":
        for name, mp in other.methods.items():
            self.methods[name].merge(mp)
        if self.agreement is not None and other.agreement is not None:
            self.agreement.merge(other.agreement)
        self.points += other.points
        self.reduce_seconds += other.reduce_seconds
        return self


def empty_partial(plan: Plan) -> Partial:
    """A partial with nothing in it yet (the start of a merge)."""
    batches = plan.batches()
    methods = {
        m.name: MethodPartial(engine.MethodRun(m.name),
                              MeasureAccumulator(len(m.outputs), plan.n, plan.guard[list(m.outputs)], batches),
                              NonfiniteAccumulator(),
                              SubspaceAccumulator(plan.subspace_outputs, plan.n, plan.spread,
                                                  batches if plan.eigen_batches else None)
                              if m.name == plan.subspace_method else None)
        for m in plan.methods
    }
    agreement = None
    if plan.compared:
        agreement = AgreementAccumulator(len(plan.method(plan.compared).outputs), plan.n, plan.ad_dtype,
                                         plan.max_z, plan.max_rel_error, points=plan.points)
    return Partial(methods, agreement)


Sink = Callable[[str, slice, np.ndarray], None]


@serial_blas()  # numpy's BLAS threads would spin on the cores TensorFlow takes for the next chunk
def run_chunk(
    target: engine.Target,
    plan: Plan,
    x: np.ndarray,
    y: np.ndarray,
    offset: int,
    *,
    sink: Sink | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
    progress: engine.Progress | None = None,
) -> Partial:
    """Compute every planned method at points ``offset .. offset + len(x)`` and reduce.

    ``sink(method, point_slice, values)`` receives the raw values when arrays are kept.
    Methods in ``skip`` (already failed) are not attempted again. A method that fails
    here is marked failed with its reason; the others go on.
    """
    partial = empty_partial(plan)
    partial.points = len(x)
    sl = slice(offset, offset + len(x))
    values: dict[str, np.ndarray] = {}
    estimates: dict[str, engine.FDEstimate] = {}
    for mp in plan.methods:
        part = partial.methods[mp.name]
        if mp.blocked:
            part.run.fail(mp.blocked)
            continue
        if mp.name in skip:
            part.run.fail("failed on an earlier chunk")
            continue
        try:
            d = METHODS[mp.name].run(target, x, mp, plan, sl, progress)
        except ComputeError:
            raise
        except engine.NotDifferentiableError as exc:
            part.run.fail(f"TensorFlow found {exc}.")
            continue
        except Exception as exc:  # noqa: BLE001 - a method failure is reported, not a crash
            where = f" (points {sl.start}-{sl.stop - 1})" if offset else ""
            part.run.fail(f"{type(exc).__name__}: {engine.first_line(exc)}{where}")
            continue
        part.run = d.run
        t0 = time.perf_counter()
        if not part.measures.update(d.values, target.differentiated(x), y[:, list(mp.outputs)], offset):
            part.nonfinite.update(d.values, offset)  # the measures saw a NaN or Inf: find them
        if part.subspace is not None:
            part.subspace.update(d.values, offset)
        partial.reduce_seconds += time.perf_counter() - t0
        values[mp.name] = d.values
        if d.estimate is not None:
            estimates[mp.name] = d.estimate
        if sink is not None:
            sink(mp.name, sl, d.values)
            if d.estimate is not None:
                sink(f"{mp.name}_error", sl, d.estimate.error)
    if partial.agreement is not None and plan.compared in values and "finite_difference" in values:
        rows = list(plan.method(plan.compared).outputs)
        est = estimates["finite_difference"]
        ad = values[plan.compared]
        # all outputs compared (the full Jacobian): the arrays themselves, not copies
        take = slice(None) if rows == list(range(est.fd.shape[1])) else rows
        fd, error, kinks = est.fd[:, take], est.error[:, take], est.kinks()[:, take]
        backward, forward = est.backward[:, take], est.forward[:, take]
        t0 = time.perf_counter()
        measured = partial.agreement.measure(ad, fd, error, kinks, backward, forward, offset)
        partial.reduce_seconds += time.perf_counter() - t0
        if measured.suspects:  # smooth entries beyond max_z: differenced again, then measured anew
            fd, error, kinks, backward, forward, retested = retest(target, plan, x, sl, ad, fd, error, kinks,
                                                                   backward, forward, rows)
            t0 = time.perf_counter()
            measured = partial.agreement.measure(ad, fd, error, kinks, backward, forward, offset)
            partial.reduce_seconds += time.perf_counter() - t0
            partial.agreement.retested += retested
        partial.agreement.add(measured)
    return partial


#: Entries beyond max_z are differenced again at this fraction of the step: a pair of
#: kinks closer to the point than the step (two ReLUs switching on either side of it) can
#: bend both one-sided slopes alike, so that neither the comparison with 2h nor the kink
#: test sees them; at h/8 the difference sees the function around the point itself.
RETEST_STEP = 1 / 8


def retest(target, plan: Plan, x, sl: slice, ad, fd, error, kinks, backward, forward, rows):
    """The chunk's disagreeing smooth entries differenced again at ``RETEST_STEP`` times
    the step; returns the arrays with those entries replaced, and how many there were.

    A wrong derivative disagrees at every step, so it still fails; the estimate at the
    smaller step carries its larger round-off.
    """
    bad = disagreeing(ad, fd, error, kinks, plan.ad_dtype, plan.max_z)
    if not bad.any():
        return fd, error, kinks, backward, forward, 0
    pts = np.flatnonzero(bad.any(axis=(1, 2)))
    mp = plan.method("finite_difference")
    again = engine.finite_difference(target, x[pts], scheme=mp.scheme or "central",
                                     step=plan.fd_step[sl][pts] * RETEST_STEP, memory_budget=plan.call_budget,
                                     output_scale=plan.output_scale).estimate
    out = [np.array(a, dtype=np.float64) for a in (fd, error, backward, forward)] + [np.array(kinks)]
    fresh = [again.fd[:, rows], again.error[:, rows], again.backward[:, rows], again.forward[:, rows],
             again.kinks()[:, rows]]
    for a, b in zip(out, fresh):
        sub = a[pts]
        sub[bad[pts]] = b[bad[pts]]
        a[pts] = sub
    fd, error, backward, forward, kinks = out
    return fd, error, kinks, backward, forward, int(bad.sum())


def sweep(
    target: engine.Target,
    plan: Plan,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sink: Sink | None = None,
    progress: engine.Progress | None = None,
) -> Partial:
    """Run :func:`run_chunk` over all points, chunk by chunk, and merge the partials."""
    total = empty_partial(plan)
    failed: set[str] = set()
    for start in range(0, len(x), plan.chunk_points):
        part = run_chunk(target, plan, x[start : start + plan.chunk_points], y[start : start + plan.chunk_points],
                         start, sink=sink, skip=failed, progress=progress)
        total.merge(part)
        failed |= {name for name, mp in total.methods.items() if mp.status != "ok"}
    return total


class ArrayStore:
    """Where raw derivative values go: numpy arrays in memory, ``.npy`` files on disk, or nowhere.

    In every mode the first :data:`PREVIEW_POINTS` points are kept in memory as a
    preview for the report's per-point views.
    """

    def __init__(self, plan: Plan, folder: Path | None = None):
        self.plan = plan
        self.folder = folder
        self.arrays: dict[str, np.ndarray] = {}
        self.paths: dict[str, Path] = {}
        self.preview: dict[str, np.ndarray] = {}
        #: the in-memory arrays' shapes and dtypes, allocated at their first chunk
        self._memory: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        keep = min(plan.points, PREVIEW_POINTS)
        for m in plan.methods:
            shape = (plan.points, len(m.outputs), plan.n)
            dtype = np.float64 if m.itemsize == 8 else np.float32
            # finite differences keep their error estimate beside their values (in memory)
            for name in (m.name, f"{m.name}_error")[: m.kept if plan.arrays == "memory" else 1]:
                if plan.arrays == "memory":
                    self._memory[name] = (shape, np.dtype(dtype))
                elif plan.arrays == "disk":
                    if folder is None:
                        raise ValueError("execution.arrays: disk needs a folder to write to")
                    path = folder / f"{name}.npy"
                    self.arrays[name] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
                    self.paths[name] = path
            self.preview[m.name] = np.full((keep, len(m.outputs), plan.n), np.nan, dtype)

    def __call__(self, name: str, sl: slice, values: np.ndarray) -> None:
        if name in self._memory and name not in self.arrays:
            shape, dtype = self._memory[name]
            if sl.start == 0 and values.shape == shape and values.dtype == dtype:
                self.arrays[name] = values  # one chunk holds every point: kept as it is, not copied
            else:
                self.arrays[name] = np.empty(shape, dtype)
        if name in self.arrays and self.arrays[name] is not values:
            self.arrays[name][sl] = values
        if name not in self.preview:
            return
        keep = len(self.preview[name])
        if sl.start < keep:
            stop = min(sl.stop, keep)
            self.preview[name][sl.start : stop] = values[: stop - sl.start]

    def flush(self) -> None:
        for name, arr in self.arrays.items():
            if isinstance(arr, np.memmap):
                arr.flush()
