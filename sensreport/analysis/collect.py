"""From the sweep's reductions to the run's findings: each method's result, the measures
and their leading one, FD-vs-AD agreement, non-finite scans, dead inputs and the
per-point statistics. Numbers only: the checks stage judges them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import measures as M
from .agreement import Agreement
from .categories import CategorySplit, category_splits
from .globalsa import (ActiveSubspace, Intervals, SobolBounds, active_subspace, batch_intervals, eigen_intervals,
                       group_intervals, sobol_bounds)
from .groups import GroupMeasures, group_measures
from .pointstats import PointStats, leading_measure, point_stats, rankable_measures


@dataclass
class Analysis:
    measure_source: str | None
    measure_outputs: list[int]
    measures: dict[str, np.ndarray]
    overall: dict[str, np.ndarray]
    leading: str | None
    dead_inputs: list[int]
    agreement: Agreement | None
    nonfinite: dict[str, dict]
    point_stats: PointStats | None
    warnings: list[str] = field(default_factory=list)
    #: seconds of its two parts: ``measures`` (the reductions' results, agreement, scans)
    #: and ``point_stats`` (spread and stability across points)
    timings: dict[str, float] = field(default_factory=dict)
    groups: GroupMeasures | None = None
    categories: list[CategorySplit] = field(default_factory=list)
    #: confidence intervals of the measures, shares and ranks (None: too few points)
    intervals: Intervals | None = None
    sobol: SobolBounds | None = None
    subspace: ActiveSubspace | None = None
    #: the feature groups' measure intervals ``(low, high)`` ``[k, g]``
    group_intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def analyse(plan, computed, methods: dict, points: np.ndarray, outputs: np.ndarray, shown: list[str],
            ad_dtype: str, groups: dict[str, tuple[int, ...]] | None = None, held=(), level: float = 0.95,
            constants: np.ndarray | None = None, seed: int = 0) -> Analysis:
    """``plan``, ``computed`` and the ``methods``' results from the compute stage;
    ``points`` ``[P, n]``, ``outputs`` ``[P, m]``; ``groups`` the feature groups' columns;
    ``held`` the held inputs (their measures are split by category); ``level`` the
    confidence intervals' level; ``constants`` each input's Poincaré constant ``[n]``
    (NaN where its distribution is unknown) for the Sobol' bounds; ``seed`` the bootstrap's."""
    t0 = time.perf_counter()
    partial = computed.partial
    source = next((k for k in ("jacobian", "finite_difference", "rows") if k in methods and methods[k].status == "ok"),
                  None)
    values, overall, m_outputs, dead, warnings = {}, {}, [], [], []
    intervals = sobol = subspace = sums = None
    if source:
        acc = partial.methods[source].measures
        m_outputs = list(plan.method(source).outputs)
        values = acc.result(plan.spread)
        sums = acc.batch_sums()
        intervals = batch_intervals(sums, plan.spread, level, seed) if sums is not None else None
        overall = {k: M.overall(v, k) for k, v in values.items()}
        dead = acc.dead_inputs()
        if constants is not None:
            rms_interval = intervals.measures["rms"] if intervals else (np.full_like(values["rms"], np.nan),) * 2
            sobol = sobol_bounds(values["rms"], rms_interval, constants, outputs, m_outputs, groups)
        sub_acc = partial.methods[source].subspace
        if sub_acc is not None:
            subspace = active_subspace(sub_acc, m_outputs[: sub_acc.k], points)
            eigen_intervals(subspace, sub_acc, level, seed)
        if len(points) == 1:
            warnings.append("Only one point: the std-scaled measure needs the inputs' spread and is not available.")
    agreement = None
    if partial.agreement is not None and all(methods[k].status == "ok" for k in (plan.compared, "finite_difference")):
        summary = partial.agreement.summary()
        ad_outputs = list(plan.method(plan.compared).outputs)
        for w in summary["worst"]:
            w["output"] = ad_outputs[w["output"]]  # name outputs by their index in the model
        agreement = Agreement(summary, ad_outputs, plan.compared, ad_dtype, partial.agreement.cell_z,
                              partial.agreement.cell_kinks, plan.method("finite_difference").scheme or "central",
                              sample=partial.agreement.sample())
    nonfinite = {"outputs": M.nonfinite(outputs)}
    for name, m in methods.items():
        if m.status == "ok":
            nonfinite[name] = partial.methods[name].nonfinite.summary()
    lead = leading_measure(shown, values, overall)
    groups_found = group_measures(values, overall, groups or {})
    group_iv = {}
    if groups_found is not None and sums is not None:
        group_iv = group_intervals(sums, {g: tuple(groups[g]) for g in groups_found.names}, plan.spread, level, seed)
    t1 = time.perf_counter()
    stats, splits = None, []
    if source:
        deriv = methods[source].values
        rows_y = np.asarray(outputs, dtype=np.float64)[:, m_outputs]
        stats = point_stats(deriv, points, rows_y, values, rankable_measures(shown, values, overall), lead,
                            directions=partial.methods[source].measures.directions())
        if deriv is not None and held:
            splits = category_splits(deriv, points, rows_y, held, plan.spread)
    timings = {"measures": t1 - t0, "point_stats": time.perf_counter() - t1}
    return Analysis(source, m_outputs, values, overall, lead, dead, agreement, nonfinite, stats, warnings, timings,
                    groups_found, splits, intervals, sobol, subspace, group_iv)
