"""The result of a run, and its conversions to JSON and to arrays."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis.agreement import Agreement
from .analysis.categories import CategorySplit
from .analysis.globalsa import ActiveSubspace, Intervals, SobolBounds
from .analysis.groups import GroupMeasures
from .analysis.pointstats import PointStats
from .analysis.stats import ranking
from .compute.discrete import DiscreteEffect
from .distributions import Distribution
from .engine.methods import MethodRun
from .inputs.layout import InputLayout

RESULTS_SCHEMA_VERSION = 1
#: Check statuses, worst first: the order the report and the CLI list them in.
CHECK_STATUSES = ("fail", "error", "warn", "info", "pass")
#: Names per ranking list in results.json.
RANKING_TOP = 100


@dataclass
class MethodResult:
    """One requested method: how it ran (``run``) and its arrays, or why it failed."""

    run: MethodRun
    outputs: list[int] = field(default_factory=list)  # output index of each of the k rows
    values: np.ndarray | None = None  # [P, k, n], when kept in memory (or memory-mapped from disk)
    step: np.ndarray | None = None  # finite differences: the step of every point and input, [P, n]
    error: np.ndarray | None = None  # finite differences: each entry's estimated error, [P, k, n], when kept
    path: Path | None = None  # the .npy file holding ``values`` with execution.arrays: disk
    preview: np.ndarray | None = None  # the first points' values, kept whatever the storage

    @property
    def name(self) -> str:
        return self.run.method

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def reason(self) -> str | None:
        return self.run.reason

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        d = {
            "status": r.status,
            "reason": r.reason,
            "outputs": self.outputs,
            "strategy": r.strategy,
            "dtype": r.dtype,
            "seconds": r.seconds if r.status == "ok" else None,
            "first_call_seconds": r.first_call_seconds,
            "model_calls": r.calls,
            "points_per_call": r.chunk_points,
            "notes": r.notes,
        }
        if self.step is not None:
            d["step"] = {"min": float(self.step.min()), "max": float(self.step.max()),
                         "per_input_median": [float(v) for v in np.median(self.step, axis=0)]}
        d["array"] = ("arrays.npz" if self.values is not None and self.path is None
                      else self.path.name if self.path is not None else None)
        return d


@dataclass
class CheckResult:
    """One check's finding, decided once by :mod:`sensreport.checks`.

    ``status``: ``pass``; ``info``, ``warn`` or ``fail`` when its condition is not met
    (by its ``severity``); ``error`` when it could not be evaluated (a method it needs
    failed, a baseline is missing). ``key`` is the spec key that configures it.
    """

    id: str
    status: str  # pass | info | warn | fail | error
    value: Any
    threshold: Any
    severity: str  # fail | warn | info
    message: str
    key: str = ""
    title: str = ""
    items: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The run's one verdict: what the report's banner, the CLI and the exit code show.

    ``status``: ``passed``, ``passed_with_warnings``, ``failed`` (a check failed) or
    ``incomplete`` (a requested method failed). ``exit_codes`` is the exit code under
    each ``--fail-on`` value; ``fail_on`` the one this run was asked for.
    """

    status: str
    failing: tuple[str, ...]
    warning: tuple[str, ...]
    errors: tuple[str, ...]
    failed_methods: tuple[str, ...]
    exit_codes: dict[str, int]
    fail_on: str = "fail"

    @property
    def exit_code(self) -> int:
        return self.exit_codes[self.fail_on]

    @property
    def headline(self) -> str:
        """One line for the banner and the CLI: the verdict and what decided it."""
        if self.status == "incomplete":
            return f"Incomplete: {', '.join(self.failed_methods)} failed"
        if self.status == "failed":
            return f"Check failed: {', '.join(self.failing)}"
        if self.status == "passed_with_warnings":
            return f"Checks passed with warnings: {', '.join(self.warning)}"
        return "Checks passed"

    @property
    def tone(self) -> str:
        """How the banner looks under this run's ``fail_on``: ``fail``, ``warn`` or ``pass``."""
        if self.exit_code != 0:
            return "fail"
        return "warn" if self.warning else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "headline": self.headline, "failing": list(self.failing),
                "warning": list(self.warning), "errors": list(self.errors),
                "failed_methods": list(self.failed_methods), "exit_codes": dict(self.exit_codes),
                "fail_on": self.fail_on, "exit_code": self.exit_code}


@dataclass
class RunResult:
    """Everything a run found; :meth:`to_dict` and :meth:`arrays` are what gets written."""

    title: str
    description: str
    model: dict[str, Any]  # kind, source, sha256, summary
    input_names: list[str]
    output_names: list[str]
    input_shape: list[int]
    output_shape: list[int]
    points: np.ndarray  # [P, n]
    outputs: np.ndarray  # [P, m]
    methods: dict[str, MethodResult]
    measure_source: str | None  # which method the measures come from
    measure_outputs: list[int]  # output index of each measure row
    measures: dict[str, np.ndarray]  # name -> [k, n]
    overall: dict[str, np.ndarray]  # name -> [n]
    shown_measures: list[str]
    agreement: Agreement | None
    nonfinite: dict[str, dict]
    dead_inputs: list[int]
    warnings: list[str]
    timings: dict[str, float]
    memory: dict[str, Any]
    provenance: dict[str, Any]
    spec_text: str = ""
    checks: list[CheckResult] = field(default_factory=list)  # decided by sensreport.checks
    verdict: Verdict | None = None  # decided by sensreport.checks
    point_stats: PointStats | None = None  # from the per-point derivatives, when kept
    #: the measure every view ranks by: the spec's first shown measure that has values
    leading_measure: str | None = None
    #: ops of the model with a tf.custom_gradient (reverse mode honours them)
    custom_gradients: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None  # comparison with a previous run, if any
    #: declared units (inputs.units, model.output_units), one per name, "" where none
    input_units: list[str] = field(default_factory=list)
    output_units: list[str] = field(default_factory=list)
    #: each input's declared distribution (inputs.distributions or the sample's), None where none
    input_distributions: list[Distribution | None] = field(default_factory=list)
    #: how the run went, for information (engine choices and fallbacks, array storage);
    #: ``warnings`` are what may make the numbers differ from the truth
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None  # where the outputs were written
    #: how run() wrote (or would have written) the report: plotlyjs, templates; save() reuses it
    report_options: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the MLflow run this result was logged to (run_id, experiment_id, tracking_uri), if any
    mlflow: dict[str, Any] | None = None
    #: every model input (differentiated or held), the feature groups, the points by input
    layout: InputLayout | None = None
    #: the feature groups' measures (inputs.groups and automatic ones), None without groups
    groups: GroupMeasures | None = None
    #: the measures split by the values of each held input with few of them
    categories: list[CategorySplit] = field(default_factory=list)
    #: methods.discrete: the outputs with each listed held input at each of its values
    discrete: list[DiscreteEffect] = field(default_factory=list)
    #: the level of every confidence interval (sensitivity.confidence)
    confidence: float = 0.95
    #: the confidence intervals of the measures, their shares and ranks (None: too few points)
    intervals: Intervals | None = None
    #: the feature groups' measure intervals ``(low, high)`` ``[k, g]``
    group_intervals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: upper bounds on the total Sobol' indices (where the inputs' distributions are known)
    sobol: SobolBounds | None = None
    #: per output, the active subspace of the scaled gradients (None when it does not fit)
    subspace: ActiveSubspace | None = None

    def __repr__(self) -> str:
        """One line: title, verdict, model, sizes, methods, top inputs (not every array)."""
        from .notebook import short_repr

        return short_repr(self)

    def _repr_html_(self) -> str:
        """What Jupyter shows: the verdict, failed checks, top inputs per output and a small heatmap."""
        from .notebook import repr_html

        return repr_html(self)

    def to_pandas(self, overall: bool = False):
        """The measures as a tidy pandas DataFrame: one row per output, input and measure.

        Columns ``output``, ``input``, ``measure``, ``value`` (as in results.json),
        ``rank`` (1: the most sensitive input of that output under that measure; empty
        for ``positive_share``), ``p25`` and ``p75`` (the spread of the per-point values
        across points; NaN when the per-point derivatives were not kept). With
        ``overall=True``, rows whose ``output`` is None hold the overall shares.
        Needs pandas (``pip install 'sensreport[pandas]'``), imported only here.
        """
        from .notebook import to_pandas

        return to_pandas(self, overall)

    def save(self, out: str | Path, *, plotlyjs: str | None = None) -> Path:
        """Write report.html, results.json and arrays.npz into ``out`` (e.g. after
        ``run(..., write=False)``) and return the folder.

        ``{date}``, ``{time}`` and ``{datetime}`` are filled in and a ``latest`` link
        beside the first templated folder is moved, as for ``run(out=...)``;
        ``plotlyjs`` (``inline`` or ``cdn``) overrides the run's ``report.plotlyjs``.
        """
        import datetime as _dt

        from .outputs import expand_out, point_latest, write_outputs

        out_dir, latest = expand_out(Path(out), _dt.datetime.now())
        options = self.report_options
        write_outputs(self, out_dir, plotlyjs or options.get("plotlyjs", "inline"), templates=options.get("templates"),
                      compress_arrays=options.get("compress_arrays", False))
        self.out_dir = out_dir
        if latest is not None:
            point_latest(latest, out_dir)
        return out_dir

    @property
    def status(self) -> str:
        """``ok``, or ``incomplete`` when a method failed or results are non-finite."""
        failed = any(m.status != "ok" for m in self.methods.values())
        bad = any(v["count"] for v in self.nonfinite.values())
        return "incomplete" if failed or bad else "ok"

    @property
    def check_status(self) -> str:
        """The worst check status: ``fail``, ``error``, ``warn``, ``info`` or ``pass``."""
        return next((s for s in CHECK_STATUSES if any(c.status == s for c in self.checks)), "pass")

    def problems(self) -> list[str]:
        """One sentence per failed method or non-finite array, for the CLI's summary."""
        out = [f"{name} failed: {m.reason}" for name, m in self.methods.items() if m.status != "ok"]
        out += [f"{v['count']} non-finite value(s) in {k}" for k, v in self.nonfinite.items() if v["count"]]
        return out

    def rankings(self, top: int | None = RANKING_TOP) -> dict[str, dict[str, list[str]]]:
        """For each measure: input names from most to least sensitive, overall and per output.

        At most ``top`` names per list (the full order follows from the measures).
        """
        out: dict[str, dict[str, Any]] = {}
        for name, values in self.measures.items():
            per_output = {self.output_names[o]: [self.input_names[j] for j in ranking(values[k])[:top]]
                          for k, o in enumerate(self.measure_outputs)}
            out[name] = {"overall": [self.input_names[j] for j in ranking(self.overall[name])[:top]],
                         "per_output": per_output}
        return out

    def _measure_values(self, measures: dict[str, np.ndarray], overall: dict[str, np.ndarray],
                        names: list[str]) -> dict[str, Any]:
        return {
            name: {
                "per_output": {self.output_names[o]: dict(zip(names, _floats(values[k])))
                               for k, o in enumerate(self.measure_outputs)},
                "overall": dict(zip(names, _floats(overall[name]))),
            }
            for name, values in measures.items()
        }

    def _category_dict(self, c: CategorySplit) -> dict[str, Any]:
        return {"values": c.values, "counts": [int(v) for v in c.counts],
                "measures": {name: {self.output_names[o]: {self.input_names[j]: _floats(v[:, k, j])
                                                           for j in range(v.shape[2])}
                                    for k, o in enumerate(self.measure_outputs)}
                             for name, v in c.measures.items()}}

    def _discrete_dict(self, e: DiscreteEffect) -> dict[str, Any]:
        mean = e.mean_effect
        return {"values": e.labels, "counts": [int(v) for v in e.counts], "seconds": e.seconds,
                "mean_effect": {name: [_floats(mean[a, :, i]) for a in range(len(e.labels))]
                                for i, name in enumerate(self.output_names)},
                "array": f"discrete_{e.input}"}

    def _per_output(self, values: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
        names = names or self.input_names
        return {self.output_names[o]: dict(zip(names, _floats(values[k]))) for k, o in enumerate(self.measure_outputs)}

    def _interval_map(self, low: np.ndarray, high: np.ndarray, names: list[str] | None = None) -> dict[str, Any]:
        names = names or self.input_names
        return {self.output_names[o]: {name: [a, b] for name, a, b in zip(names, _floats(low[k]), _floats(high[k]))}
                for k, o in enumerate(self.measure_outputs)}

    def intervals_method(self) -> str:
        iv = self.intervals
        return f"percentile bootstrap over {iv.batches} batches of consecutive points ({iv.replicates} replicates)"

    def confidence_dict(self) -> dict[str, Any] | None:
        """results.json's ``measures.confidence``: ``level``, how the intervals were made,
        each measure's ``<measure>.per_output.<output>.<input> = [low, high]``, ``shares``
        in the same layout with ``overall``, and ``ranks.<measure>.overall``; None without intervals."""
        iv = self.intervals
        if iv is None:
            return None
        out: dict[str, Any] = {"level": iv.level, "batches": iv.batches, "replicates": iv.replicates,
                               "method": self.intervals_method()}
        for name, (low, high) in iv.measures.items():
            out[name] = {"per_output": self._interval_map(low, high)}
        def by_input(pair):
            return {n: [a, c] for n, a, c in zip(self.input_names, _floats(pair[0]), _floats(pair[1]))}

        out["shares"] = {name: {"per_output": self._interval_map(*iv.shares[name]), "overall": by_input(iv.overall[name])}
                         for name in iv.shares}
        out["ranks"] = {name: {"overall": by_input(pair)} for name, pair in iv.overall_ranks.items()}
        return out

    def global_dict(self) -> dict[str, Any]:
        """results.json's ``global``: ``sobol_total_bound`` and ``active_subspace`` (None when not computed)."""
        out: dict[str, Any] = {"sobol_total_bound": None, "active_subspace": None}
        sb = self.sobol
        if sb is not None:
            groups = {self.output_names[o]: {g: _floats(v[k])[0] for g, v in sb.groups.items()}
                      for k, o in enumerate(self.measure_outputs)}
            out["sobol_total_bound"] = {
                "per_output": self._per_output(sb.bound),
                "confidence": {"level": self.confidence, "per_output": self._interval_map(sb.low, sb.high)},
                "poincare_constants": {n: c for n, c in zip(self.input_names, _floats(sb.constants)) if c is not None},
                "output_variance": {self.output_names[o]: v for o, v in zip(sb.outputs, _floats(sb.variance))},
                "groups": groups if sb.groups else {},
            }
        a = self.subspace
        if a is not None:
            keep = min(len(self.input_names), JSON_EIGENVECTORS)
            per = {}
            for k, o in enumerate(a.outputs):
                entry = {"eigenvalues": _floats(a.eigenvalues[k]),
                         "eigenvectors": [_floats(v) for v in a.eigenvectors[k, :keep]]}
                entry["eigenvalue_intervals"] = (None if a.low is None else
                                                 [list(p) for p in zip(_floats(a.low[k]), _floats(a.high[k]))])
                per[self.output_names[o]] = entry
            out["active_subspace"] = {
                "scaled_by": "each input's standard deviation over the points (x_j / std_j)",
                "scale": dict(zip(self.input_names, _floats(a.scale))),
                "eigenvectors_listed": keep, "array": "active_subspace_eigenvectors",
                "per_output": per}
        return out

    def inputs_dict(self) -> dict[str, Any]:
        """results.json's ``inputs``: the differentiated inputs' names and shape, every model
        input (``tensors``), the held ones with the values seen (``fixed``), the groups."""
        d: dict[str, Any] = {"names": self.input_names, "shape": self.input_shape,
                             "units": {n: u for n, u in zip(self.input_names, self.input_units) if u},
                             "distributions": {n: d.to_json() for n, d in zip(self.input_names,
                                                                              self.input_distributions) if d}}
        lay = self.layout
        d["tensors"] = [t.to_dict() for t in lay.tensors] if lay else []
        d["fixed"] = [h.to_dict() for h in lay.held] if lay else []
        d["groups"] = {g: [self.input_names[j] for j in cols] for g, cols in lay.groups.items()} if lay else {}
        return d

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written as results.json."""
        measures = self._measure_values(self.measures, self.overall, self.input_names)
        g = self.groups
        group_measures = None if g is None else {
            "source": self.measure_source, "shown": self.shown_measures, "leading": self.leading_measure,
            "values": self._measure_values(g.measures, g.overall, g.names),
            "confidence": None if not self.group_intervals or self.intervals is None else {
                "level": self.intervals.level, "method": self.intervals_method(),
                **{m: {"per_output": self._interval_map(*pair, names=g.names)}
                   for m, pair in self.group_intervals.items()}}}
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "status": self.status,
            "check_status": self.check_status,
            "problems": self.problems(),
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "checks": [c.to_dict() for c in self.checks],
            "title": self.title,
            "model": self.model,
            "inputs": self.inputs_dict(),
            "custom_gradients": list(self.custom_gradients),
            "outputs": {"names": self.output_names, "shape": self.output_shape,
                        "units": {n: u for n, u in zip(self.output_names, self.output_units) if u}},
            "points": int(len(self.points)),
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            "measures": {"source": self.measure_source, "shown": self.shown_measures, "leading": self.leading_measure,
                         "values": measures, "confidence": self.confidence_dict()},
            "global": self.global_dict(),
            "group_measures": group_measures,
            "categories": {c.input: self._category_dict(c) for c in self.categories},
            "discrete": {e.input: self._discrete_dict(e) for e in self.discrete},
            "rankings": self.rankings(),
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "nonfinite": self.nonfinite,
            "dead_inputs": [self.input_names[j] for j in self.dead_inputs],
            "baseline": self.baseline,
            "warnings": self.warnings,
            "notes": self.notes,
            "timings": self.timings,
            "memory": self.memory,
            "provenance": self.provenance,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The raw arrays written as arrays.npz."""
        out = computed_arrays(self.points, self.outputs, self.layout, self.discrete, self.methods)
        if self.subspace is not None:
            out["active_subspace_eigenvalues"] = self.subspace.eigenvalues
            out["active_subspace_eigenvectors"] = self.subspace.eigenvectors
        return out


def computed_arrays(points: np.ndarray, outputs: np.ndarray, layout, discrete, methods) -> dict[str, np.ndarray]:
    """The arrays of arrays.npz that the computation gives (all but the analysis's active
    subspace): known when the derivatives are, so that writing them can start then."""
    out = {"points": points, "outputs": outputs}
    if layout is not None:  # a model with named inputs: each one's values as read, held ones included
        for name, a in layout.arrays.items():
            out[f"points_{name}"] = a.astype(str) if a.dtype == object else a
    for e in discrete:
        out[f"discrete_{e.input}"] = e.values
    for name, m in methods.items():
        if m.status != "ok":
            continue
        if m.values is not None and m.path is None:
            out[name] = m.values
        if name == "rows":
            out["rows_outputs"] = np.asarray(m.outputs, dtype=np.int64)
        if m.step is not None:
            out["finite_difference_step"] = m.step
        if m.error is not None and m.path is None:
            out[f"{name}_error"] = m.error
    return out


#: Leading eigenvectors per output listed in results.json (all of them are in arrays.npz).
JSON_EIGENVECTORS = 10


def _floats(values) -> list[float | None]:
    """JSON has no NaN: map non-finite numbers to null."""
    v = np.asarray(values, dtype=np.float64).ravel()
    out = v.tolist()  # Python floats, the same as float(x) of each
    if not np.isfinite(v).all():
        for i in np.flatnonzero(~np.isfinite(v)).tolist():
            out[i] = None
    return out
