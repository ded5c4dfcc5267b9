"""Derivatives and their reductions over chunks of points, within a memory budget.

:func:`make_plan` estimates what every requested method needs, decides whether the
full arrays are kept (in memory, on disk, or not at all) and how many points one chunk
holds. :func:`run_chunk` computes every method on one chunk and folds the results into
a :class:`Partial` of streaming reductions (:mod:`sensreport.measures` accumulators);
partials from different chunks (or machines) combine with :meth:`Partial.merge`.
:func:`sweep` is the local loop over chunks. The measures come out the same whatever
the chunking, so a run that keeps no arrays reports the same numbers as one that does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import engine
from . import measures as M
from .errors import ComputeError

ARRAY_MODES = ("auto", "memory", "disk", "none")
#: Points per chunk for the report's per-point views when arrays are not kept.
PREVIEW_POINTS = 50


@dataclass(frozen=True)
class MethodPlan:
    name: str  # jacobian | rows | finite_difference
    outputs: tuple[int, ...]  # output index of each row of the result
    itemsize: int  # bytes per stored value
    mode: str | None = None  # jacobian: auto | forward | reverse | reverse-pfor
    scheme: str | None = None  # finite differences
    step: float | str = "auto"
    blocked: str | None = None  # why automatic differentiation cannot run, if it cannot


@dataclass(frozen=True)
class Plan:
    """What to compute and how to split it. Built by :func:`make_plan`."""

    methods: tuple[MethodPlan, ...]
    points: int
    n: int
    budget: int
    chunk_points: int
    arrays: str  # memory | disk | none
    array_bytes: int  # the full arrays of all methods together
    spread: np.ndarray  # each input's std over all points (finite-difference steps, std-scaled)
    guard: np.ndarray  # per output: |y| at or below which elasticity is undefined
    rtol: float | None = None  # FD-vs-AD tolerance, when both run
    compared: str | None = None  # the automatic method FD is compared with

    def method(self, name: str) -> MethodPlan | None:
        return next((m for m in self.methods if m.name == name), None)

    def describe(self) -> str:
        gib = self.array_bytes / 2**30
        where = {"memory": "kept in memory", "disk": "written to disk as .npy files chunk by chunk",
                 "none": "not kept (measures computed by streaming over chunks)"}[self.arrays]
        return (f"Derivative arrays ({gib:.2f} GiB in all) {where}; chunks of {self.chunk_points} points "
                f"under a memory budget of {self.budget / 2**30:.2f} GiB.")


def make_plan(
    methods: list[MethodPlan],
    points: np.ndarray,
    outputs: np.ndarray,
    *,
    budget: int,
    arrays: str = "auto",
    ad_dtype: str = "float32",
    rtol: float | None = None,
) -> Plan:
    """Estimate memory and decide storage and chunk size.

    ``arrays='auto'`` keeps the arrays in memory when they take at most half the budget
    and otherwise keeps none; ``memory`` insists (and fails with a clear message when
    they cannot fit); ``disk`` writes them chunk by chunk to ``.npy`` files. ``rtol``
    is the FD-vs-AD tolerance (default by the dtype, see :func:`measures.tolerance`).
    """
    p, n = points.shape
    per_point = sum(len(m.outputs) * n * m.itemsize for m in methods)
    total = p * per_point
    if arrays == "auto":
        arrays = "memory" if total <= budget // 2 else "none"
    if arrays == "memory" and total > budget // 2:
        raise ComputeError(
            "execution.arrays",
            f"keeping the derivative arrays in memory needs {engine._gib(total)}, more than half the memory "
            f"budget ({engine._gib(budget)}). Use execution.arrays: none (measures are streamed) or disk, "
            "select fewer outputs (methods.rows), or raise execution.memory_budget.",
        )
    # a chunk's arrays (kept, plus agreement temporaries) get a quarter of the budget;
    # the model calls inside a chunk get the rest
    chunk = max(1, min(p, (budget // 4) // max(1, 3 * per_point)))
    names = {m.name for m in methods}
    compared = next((a for a in ("jacobian", "rows") if a in names), None) if "finite_difference" in names else None
    return Plan(
        methods=tuple(methods),
        points=p,
        n=n,
        budget=budget,
        chunk_points=int(chunk),
        arrays=arrays,
        array_bytes=int(total),
        spread=M.input_spread(points),
        guard=M.elasticity_guard(outputs),
        rtol=(rtol or M.tolerance(ad_dtype)) if compared else None,
        compared=compared,
    )


@dataclass
class MethodPartial:
    """One method's reductions over the chunks seen so far."""

    measures: M.MeasureAccumulator
    nonfinite: M.NonfiniteAccumulator
    status: str = "ok"
    reason: str | None = None
    seconds: float = 0.0
    first_call_seconds: float | None = None
    calls: int = 0
    chunk_points: int = 0
    strategy: str | None = None
    dtype: str | None = None
    notes: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason

    def merge(self, other: "MethodPartial") -> "MethodPartial":
        if other.status != "ok" and self.status == "ok":
            self.fail(other.reason or "failed")
        self.measures.merge(other.measures)
        self.nonfinite.merge(other.nonfinite)
        self.seconds += other.seconds
        if self.first_call_seconds is None:
            self.first_call_seconds = other.first_call_seconds
        self.calls += other.calls
        self.chunk_points = max(self.chunk_points, other.chunk_points)
        self.strategy = self.strategy or other.strategy
        self.dtype = self.dtype or other.dtype
        self.notes = list(dict.fromkeys(self.notes + other.notes))
        return self


@dataclass
class Partial:
    """Reductions of every method over some chunks; merge partials to combine chunks."""

    methods: dict[str, MethodPartial]
    agreement: M.AgreementAccumulator | None
    points: int = 0

    def merge(self, other: "Partial") -> "Partial":
        for name, mp in other.methods.items():
            self.methods[name].merge(mp)
        if self.agreement is not None and other.agreement is not None:
            self.agreement.merge(other.agreement)
        self.points += other.points
        return self


def empty_partial(plan: Plan) -> Partial:
    """A partial with nothing in it yet (the start of a merge)."""
    methods = {
        m.name: MethodPartial(M.MeasureAccumulator(len(m.outputs), plan.n, plan.guard[list(m.outputs)]),
                              M.NonfiniteAccumulator())
        for m in plan.methods
    }
    agreement = M.AgreementAccumulator(plan.rtol) if plan.compared else None
    return Partial(methods, agreement)


Sink = Callable[[str, slice, np.ndarray], None]


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
    budget = plan.budget // 2
    values: dict[str, np.ndarray] = {}
    for mp in plan.methods:
        part = partial.methods[mp.name]
        if mp.blocked:
            part.fail(mp.blocked)
            continue
        if mp.name in skip:
            part.fail("failed on an earlier chunk")
            continue
        try:
            if mp.name == "jacobian":
                d = engine.jacobian(target, x, mode=mp.mode or "auto", memory_budget=budget, progress=progress)
            elif mp.name == "rows":
                d = engine.rows(target, x, list(mp.outputs), memory_budget=budget, progress=progress)
            else:
                d = engine.finite_difference(target, x, scheme=mp.scheme or "central", step=mp.step,
                                             memory_budget=budget, progress=progress, spread=plan.spread)
        except ComputeError:
            raise
        except engine.NotDifferentiableError as exc:
            part.fail(f"TensorFlow found {exc}.")
            continue
        except Exception as exc:  # noqa: BLE001 - a method failure is reported, not a crash
            where = f" (points {sl.start}-{sl.stop - 1})" if offset else ""
            part.fail(f"{type(exc).__name__}: {engine._first_line(exc)}{where}")
            continue
        part.seconds, part.first_call_seconds, part.calls = d.seconds, d.first_call_seconds, d.calls
        part.chunk_points, part.strategy, part.dtype, part.notes = d.chunk_points, d.strategy, d.dtype, d.notes
        part.measures.update(d.values, x.reshape(len(x), -1), y[:, list(mp.outputs)])
        part.nonfinite.update(d.values, offset)
        values[mp.name] = d.values
        if sink is not None:
            sink(mp.name, sl, d.values)
    if partial.agreement is not None and plan.compared in values and "finite_difference" in values:
        ad_plan = plan.method(plan.compared)
        partial.agreement.update(values[plan.compared], values["finite_difference"][:, list(ad_plan.outputs), :], offset)
    return partial


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
        keep = min(plan.points, PREVIEW_POINTS)
        for m in plan.methods:
            shape = (plan.points, len(m.outputs), plan.n)
            dtype = np.float64 if m.itemsize == 8 else np.float32
            if plan.arrays == "memory":
                self.arrays[m.name] = np.empty(shape, dtype)
            elif plan.arrays == "disk":
                if folder is None:
                    raise ValueError("execution.arrays: disk needs a folder to write to")
                path = folder / f"{m.name}.npy"
                self.arrays[m.name] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
                self.paths[m.name] = path
            self.preview[m.name] = np.full((keep, len(m.outputs), plan.n), np.nan, dtype)

    def __call__(self, name: str, sl: slice, values: np.ndarray) -> None:
        if name in self.arrays:
            self.arrays[name][sl] = values
        keep = len(self.preview[name])
        if sl.start < keep:
            stop = min(sl.stop, keep)
            self.preview[name][sl.start : stop] = values[: stop - sl.start]

    def flush(self) -> None:
        for name, arr in self.arrays.items():
            if isinstance(arr, np.memmap):
                arr.flush()
