"""The plan: what every requested method needs, where the arrays go, how large a chunk
is. This is the only place the memory budget is split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis import measures as M
from ..analysis.agreement import MAX_Z
from ..analysis.globalsa import eigen_batches, interval_batches, subspace_outputs
from ..errors import ComputeError
from ..sizes import format_bytes

ARRAY_MODES = ("auto", "memory", "disk", "none")
#: Most bytes of automatic derivatives one chunk computes: about one engine call (at most
#: 65,536 rows: 1,024 points of 64 outputs x 128 inputs in float32 are 32 MiB), so that a
#: chunk's Jacobian is the call's own result, reduced where TensorFlow left it, instead of
#: several calls copied into a fresh array (a 100,000-point sweep of that model: about 2 s).
CHUNK_BYTES = 32 << 20
#: Most bytes of finite-difference channels (all of them, float64) one chunk computes. Below
#: that, a chunk with finite differences holds the points of one engine call (65,536 rows of
#: perturbed copies: 127 points of 128 inputs, central), so that its estimates are the call's
#: own result rather than several calls copied into a fresh array (at 4,096 points of that
#: model: 1.2 s of copies and first touches of memory). Both sizes are fixed, so the
#: chunking, and with it the sums' rounding, does not depend on the memory available when
#: the run starts.
FD_CHUNK_BYTES = 256 << 20
#: Points per chunk for the report's per-point views when arrays are not kept.
PREVIEW_POINTS = 50


@dataclass(frozen=True)
class MethodPlan:
    name: str  # jacobian | rows | finite_difference (a key of compute.methods.METHODS)
    outputs: tuple[int, ...]  # output index of each row of the result
    itemsize: int  # bytes per stored value
    kept: int = 1  # arrays stored per method (finite differences: the values and their error estimate)
    mode: str | None = None  # jacobian: auto | forward | reverse | a kernel name
    scheme: str | None = None  # finite differences
    step: float | str = "auto"  # finite differences, as the spec gave it
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
    compared: str | None = None  # the automatic method FD is compared with
    max_z: float = MAX_Z  # FD-vs-AD: entries agree within this many estimated errors
    max_rel_error: float | None = None  # FD-vs-AD: an extra bound on the relative error, if the spec sets one
    ad_dtype: str = "float32"  # the automatic derivatives' dtype
    fd_step: np.ndarray | None = None  # finite differences: every point's step [P, n], computed once
    output_scale: np.ndarray | None = None  # each output's largest |y| over all points (FD round-off)
    #: the method whose gradients feed the active subspaces (the measures' preferred source)
    #: and how many of its first outputs get one (0: none; see
    #: :func:`~sensreport.analysis.globalsa.subspace_outputs`)
    subspace_method: str | None = None
    subspace_outputs: int = 0
    #: batches of consecutive points whose sums give the confidence intervals (0: none),
    #: and whether the subspaces keep theirs (the eigenvalues' intervals)
    interval_batches: int = 0
    eigen_batches: bool = False

    def batches(self):
        """The batches of points the accumulators keep sums for, or None."""
        return M.Batches(self.points, self.interval_batches) if self.interval_batches else None

    @property
    def call_budget(self) -> int:
        """Bytes the model calls inside one chunk may use (the rest holds the chunk's arrays)."""
        return self.budget // 2

    def method(self, name: str) -> MethodPlan | None:
        return next((m for m in self.methods if m.name == name), None)

    def describe(self) -> str:
        where = {"memory": "kept in memory", "disk": "written to disk as .npy files chunk by chunk",
                 "none": "not kept (measures computed by streaming over chunks)"}[self.arrays]
        return (f"Derivative arrays ({format_bytes(self.array_bytes)} in all) {where}; chunks of {self.chunk_points} "
                f"points under a memory budget of {format_bytes(self.budget)}.")


def make_plan(
    methods: list[MethodPlan],
    points: np.ndarray,
    outputs: np.ndarray,
    *,
    budget: int,
    arrays: str = "auto",
    ad_dtype: str = "float32",
    max_z: float = MAX_Z,
    max_rel_error: float | None = None,
    fd_dtype: str | None = None,
) -> Plan:
    """Estimate memory and decide storage and chunk size.

    ``arrays='auto'`` keeps the arrays in memory when they take at most half the budget
    and otherwise keeps none; ``memory`` insists (and fails with a clear message when
    they cannot fit); ``disk`` writes them chunk by chunk to ``.npy`` files. ``max_z``
    and ``max_rel_error`` are the FD-vs-AD agreement's thresholds (``checks.fd_vs_ad``).
    ``fd_dtype`` is the dtype finite differences evaluate in (their steps follow it).
    """
    from .. import engine

    p, n = points.shape
    per_point = sum(len(m.outputs) * n * m.itemsize * m.kept for m in methods)
    total = p * per_point
    if arrays == "auto":
        arrays = "memory" if total <= budget // 2 else "none"
    if arrays == "memory" and total > budget // 2:
        raise ComputeError(
            "execution.arrays",
            f"keeping the derivative arrays in memory needs {format_bytes(total)}, more than half the memory "
            f"budget ({format_bytes(budget)}). Use execution.arrays: none (measures are streamed) or disk, "
            "select fewer outputs (methods.rows), or raise execution.memory_budget.",
        )
    # a chunk's arrays (kept, plus agreement temporaries) get a quarter of the budget;
    # the model calls inside a chunk get the rest
    automatic = sum(len(m.outputs) * n * m.itemsize for m in methods if m.name != "finite_difference")
    fd = next((m for m in methods if m.name == "finite_difference"), None)
    channels = len(fd.outputs) * n * 8 * len(engine.FD_CHANNELS) if fd is not None else 0
    # the points whose perturbed copies (4 or 2 per input, and the point) fill one engine call
    fd_call = engine.MAX_ROWS_PER_CALL // ((4 if (fd.scheme or "central") == "central" else 2) * n + 1) if fd else p
    chunk = max(1, min(p, (budget // 4) // max(1, 3 * per_point), CHUNK_BYTES // automatic if automatic else p,
                       FD_CHUNK_BYTES // channels if channels else p, fd_call))
    names = {m.name for m in methods}
    compared = next((a for a in ("jacobian", "rows") if a in names), None) if "finite_difference" in names else None
    spread = M.input_spread(points)
    magnitude = M.output_magnitude(outputs)
    steps = None
    first = next((m for name in ("jacobian", "finite_difference", "rows") for m in methods
                  if m.name == name and not m.blocked), None)
    sub_k = subspace_outputs(len(first.outputs), n, budget) if first is not None else 0
    widest = max((len(m.outputs) for m in methods), default=1)
    batches = interval_batches(p, widest, n, budget)
    if fd is not None:
        steps = engine.fd_step(points, fd.scheme or "central", fd_dtype or "float64", fd.step, spread=spread)
        steps.flags.writeable = False
    return Plan(
        methods=tuple(methods),
        points=p,
        n=n,
        budget=budget,
        chunk_points=int(chunk),
        arrays=arrays,
        array_bytes=int(total),
        spread=spread,
        guard=M.ELASTICITY_GUARD * magnitude,
        compared=compared,
        max_z=max_z,
        max_rel_error=max_rel_error,
        ad_dtype=ad_dtype,
        fd_step=steps,
        output_scale=magnitude,
        subspace_method=first.name if sub_k else None,
        subspace_outputs=sub_k,
        interval_batches=batches,
        eigen_batches=bool(sub_k) and eigen_batches(sub_k, n, batches),
    )
