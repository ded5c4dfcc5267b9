"""Plan the requested methods for the prepared inputs and run the sweep (locally or on
Ray); hand back the merged reductions and the arrays."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import engine
from ..analysis.agreement import MAX_Z
from ..inputs import Prepared
from ..results import MethodResult
from ..spec import Spec
from .plan import PREVIEW_POINTS, MethodPlan, Plan, make_plan
from .sweep import ArrayStore, Partial, sweep


@dataclass
class Computed:
    """The compute stage's result: merged reductions, where the arrays are, how it ran."""

    partial: Partial
    store: ArrayStore
    facts: dict[str, Any] = field(default_factory=dict)  # engine: local | ray, and Ray's timings
    seconds: float = 0.0


def plan_methods(spec: Spec, prepared: Prepared, budget: int) -> Plan:
    """The plan for every method the spec requests (see :func:`make_plan`)."""
    target = prepared.target
    item = np.dtype(target.dtype).itemsize
    planned = []
    if spec.jacobian_mode:
        planned.append(MethodPlan("jacobian", tuple(range(target.m)), item, mode=spec.jacobian_mode,
                                  blocked=prepared.ad_blocked))
    if prepared.row_outputs:
        planned.append(MethodPlan("rows", tuple(prepared.row_outputs), item, blocked=prepared.ad_blocked))
    if spec.fd_scheme:
        planned.append(MethodPlan("finite_difference", tuple(range(target.m)), 8, kept=2, scheme=spec.fd_scheme,
                                  step=spec.fd_step))
    flat = prepared.flat
    fd_check = spec.checks.get("fd_vs_ad") or {}
    return make_plan(planned, flat, prepared.y, budget=budget, arrays=spec.arrays, ad_dtype=target.dtype,
                     max_z=fd_check.get("max_z", MAX_Z), max_rel_error=fd_check.get("max_rel_error"),
                     fd_dtype=engine.fd_dtype(target) if spec.fd_scheme else None)


def execute(spec: Spec, prepared: Prepared, plan: Plan, *, array_dir: Path | None = None, progress: bool = False,
            on_chunk=None) -> Computed:
    """Run the plan over all points; ``on_chunk(done, pids)`` is a test seam of Ray runs."""
    store = ArrayStore(plan, array_dir)
    t0 = time.perf_counter()
    facts: dict[str, Any] = {"engine": "local"}
    x, y = prepared.x, prepared.y
    with progress_bar(len(x) * len(plan.methods), progress) as bar:
        if spec.engine == "ray":
            from .ray import RayConfig, sweep_ray

            partial, facts = sweep_ray(spec.model, prepared.points.point_shape, spec.xla, plan, x, y,
                                       RayConfig(**spec.ray), sink=store, keep_preview=PREVIEW_POINTS,
                                       progress=bar, on_result=on_chunk, binding=prepared.binding)
        else:
            partial = sweep(prepared.target, plan, x, y, sink=store, progress=bar)
    store.flush()
    return Computed(partial, store, facts, time.perf_counter() - t0)


def method_results(plan: Plan, computed: Computed) -> dict[str, MethodResult]:
    """Each planned method's result: how it ran, and its arrays where they were kept."""
    store, out = computed.store, {}
    for mp in plan.methods:
        part = computed.partial.methods[mp.name]
        ok = part.status == "ok"
        out[mp.name] = MethodResult(
            part.run, outputs=list(mp.outputs), values=store.arrays.get(mp.name) if ok else None,
            step=plan.fd_step if ok and mp.name == "finite_difference" else None,
            error=store.arrays.get(f"{mp.name}_error") if ok else None,
            path=store.paths.get(mp.name), preview=store.preview.get(mp.name) if ok else None)
    return out


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool):
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal; else a no-op callback."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="pt", desc="derivatives", file=sys.stderr, leave=False) as bar:
        yield bar.update
