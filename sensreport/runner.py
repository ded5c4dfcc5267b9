"""Chain the stages: spec -> inputs -> plan -> derivatives -> analysis -> checks -> outputs.

This is the only module that knows the order of the stages; the CLI and the Python
API both call :func:`run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import gc
import os
import time
from pathlib import Path

from . import checks
from .analysis.collect import analyse
from .analysis.globalsa import poincare_constants
from .compute.discrete import check_discrete, discrete_effects
from .compute.execute import execute, method_results, plan_methods
from .engine import default_memory_budget, keep_freed_memory
from .deadline import Deadline, stage
from .errors import InputError
from .inputs import prepare
from .logs import get_logger, quiet_tensorflow
from .outputs import Outputs
from .provenance import provenance
from .results import RunResult, computed_arrays
from .spec import Spec, default_checks, load_spec, parse_spec

log = get_logger()


@quiet_tensorflow()  # TensorFlow's logger at ERROR during the run only, restored after
def run(
    spec: Spec | str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    *,
    plotlyjs: str | None = None,
    write: bool = True,
    command: list[str] | None = None,
    progress: bool = False,
    baseline: str | os.PathLike | None = None,
    fail_on: str = "fail",
    timeout: float | None = None,
    mlflow: bool | dict | None = None,
) -> RunResult:
    """Run a spec end to end and (with ``write=True``) write its outputs.

    Parameters
    ----------
    spec : Spec, path or dict
        A validated :class:`Spec`, a path to a YAML spec, or a spec mapping (relative
        paths then resolve against the working directory). A mapping may hold
        in-memory objects: a ``keras.Model`` under ``model.keras``, any callable under
        ``model.callable``, a numpy array or a pandas DataFrame (whose columns name
        the inputs) under ``inputs.points.values``.
    out : path, optional
        Output folder; default the spec's ``report.dir``. ``{date}``, ``{time}`` and
        ``{datetime}`` in it are filled in; a ``latest`` link beside the first
        templated folder is moved to the new run after a successful write.
    plotlyjs : {"inline", "cdn"}, optional
        Overrides ``report.plotlyjs``.
    write : bool
        ``False`` writes no file (``result.save(dir)`` writes the report later).
    progress : bool
        Show a progress bar on stderr when it is a terminal.
    baseline : path, optional
        A previous run's results.json to compare with (overrides ``checks.baseline.path``).
    fail_on : {"fail", "warn"}
        What makes the verdict's exit code non-zero besides a failed method: failing
        checks only, or warnings too (the CLI's ``--fail-on``); the report shows the
        verdict under this choice.
    timeout : float, optional
        Seconds the run may take (default the spec's ``execution.timeout``; 0: none).
        Past it the run raises :class:`~sensreport.errors.ComputeError` and writes
        nothing. Checked at every stage, and in the main thread an alarm (``SIGALRM``)
        interrupts Python code; a TensorFlow op that never returns cannot be interrupted
        in-process (the CLI runs the work in a child process it kills instead; see
        :mod:`sensreport.deadline`).
    mlflow : bool or dict, optional
        Log the run to MLflow (:func:`sensreport.mlflow_log.log_run`): ``True`` with the
        spec's ``report.mlflow`` settings, a mapping ``{experiment, run_name, tags}``
        instead of them, ``False`` not at all; default: when the spec has
        ``report.mlflow``. Needs ``pip install 'sensreport[mlflow]'``.

    Returns
    -------
    RunResult
        ``result.verdict`` holds the verdict (``passed``, ``passed_with_warnings``,
        ``failed``, ``incomplete``) and the exit code the CLI uses.
    """
    if fail_on not in checks.FAIL_ON:
        raise ValueError(f"fail_on must be one of {', '.join(checks.FAIL_ON)}, got {fail_on!r}")
    if isinstance(spec, dict):
        spec = parse_spec(spec, base_dir=Path.cwd())
    elif not isinstance(spec, Spec):
        spec = load_spec(spec)
    if baseline is not None:
        spec = dataclasses.replace(spec, checks=default_checks(spec.raw.get("checks"), Path.cwd(), baseline))
    baseline_doc = checks.baseline_document(spec.checks)  # read (and refused) before any work
    tracking = _mlflow_settings(spec, mlflow)
    log.info("running %s (%s model, %s points)", spec.path or "a spec mapping", spec.model.kind, spec.points.kind)
    limit = spec.timeout if timeout is None else timeout
    outputs = Outputs(Path(out) if out else spec.report_dir, _dt.datetime.now(), write=write,
                      key="--out" if out else "report.dir")
    with _objects_frozen(), Deadline(limit) if limit else contextlib.nullcontext(), outputs:
        # .npy arrays are written chunk by chunk into a hidden staging folder and renamed
        # into place with the other files only when the run succeeds
        staging = outputs.array_dir() if spec.arrays == "disk" else None
        # arrays.npz is written from when the derivatives are ready, while the analysis runs
        begin = (lambda arrays: outputs.begin_arrays(arrays, spec.compress_arrays)) if write else None
        result = compute(spec, command=command, array_dir=staging, progress=progress, on_arrays=begin)
        stage("evaluating the checks")
        t0 = time.perf_counter()
        checks.apply(result, spec.checks, baseline_doc, fail_on)
        result.timings["checks"] = time.perf_counter() - t0
        if write:
            result.out_dir = outputs.write(result, plotlyjs or spec.plotlyjs, templates=spec.report_templates,
                                           compress_arrays=spec.compress_arrays)
    _finish(result, spec, plotlyjs, write, tracking)
    return result


@contextlib.contextmanager
def _objects_frozen():
    """Every object alive now left out of the garbage collector's passes while the block
    runs (gc.freeze), and put back after; TensorFlow's, when the run imports it, join them
    (:func:`~sensreport.engine.tensorflow`). A run makes many objects, which sets off full
    passes; each walked all of TensorFlow's 300,000 objects (0.2 s) and found nothing. A
    freeze already in place (the CLI's, or a caller's) is left alone."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@quiet_tensorflow()
def compute(
    spec: Spec,
    command: list[str] | None = None,
    *,
    array_dir: Path | None = None,
    progress: bool = False,
    on_chunk=None,
    on_arrays=None,
) -> RunResult:
    """Compute everything the spec asks for; write nothing except, with
    ``execution.arrays: disk``, the ``.npy`` arrays into ``array_dir``. The result's
    checks and verdict are decided afterwards (:func:`sensreport.checks.apply`).

    ``progress`` shows a progress bar on stderr (only when it is a terminal).
    ``on_chunk(done, pids)`` is called after each chunk of a Ray run (a test seam).
    ``on_arrays(arrays)`` is handed the computed arrays of arrays.npz
    (:func:`~sensreport.results.computed_arrays`) before the analysis starts.
    """
    if spec.engine == "ray":
        from .compute.ray import require_ray

        if spec.model.obj is not None:
            raise InputError("execution.engine", "Ray workers load the model from a file, and this one is in memory: "
                                                 "save it (model.save('model.keras')) and name the file, or use the "
                                                 "local engine")

        require_ray()  # fail before any work when Ray is missing
    started = time.perf_counter()
    keep_freed_memory()  # the reductions' temporaries reuse memory, not fresh pages
    budget = spec.memory_budget or default_memory_budget()
    prepared = prepare(spec, budget)
    check_discrete(spec.discrete, prepared.layout.held)  # before any heavy work
    stage("planning the computation")
    t0 = time.perf_counter()
    plan = plan_methods(spec, prepared, budget)
    planned = time.perf_counter() - t0
    stage("computing derivatives")
    computed = execute(spec, prepared, plan, array_dir=array_dir, progress=progress, on_chunk=on_chunk)
    effects = []
    if spec.discrete:
        stage("evaluating discrete effects")
        effects = discrete_effects(prepared.target, prepared.x, prepared.layout.held, spec.discrete, budget)
    stage("analysing the derivatives")
    flat = prepared.flat
    methods = method_results(plan, computed)
    if on_arrays is not None:
        on_arrays(computed_arrays(flat, prepared.y, prepared.layout, effects, methods))
    found = analyse(plan, computed, methods, flat, prepared.y, list(spec.measures), prepared.target.dtype,
                    prepared.layout.groups, prepared.layout.held, level=spec.confidence,
                    constants=poincare_constants(prepared.distributions, flat.shape[1]), seed=spec.points.seed)
    # stages in the order they ran; each method's seconds are part of "derivatives"
    timings = {**prepared.timings, "plan": planned, "derivatives": computed.seconds}
    if effects:
        timings["discrete"] = sum(e.seconds for e in effects)
    timings.update({name: m.run.seconds for name, m in methods.items() if m.status == "ok"})
    timings["streaming_reductions"] = computed.partial.reduce_seconds
    timings.update(found.timings)
    notes = [plan.describe()] if plan.arrays != "memory" else []
    loaded = prepared.loaded
    return RunResult(
        title=spec.title,
        description=spec.description,
        model={"kind": loaded.kind, "source": loaded.source, "sha256": loaded.sha256, "summary": loaded.summary},
        input_names=prepared.input_names,
        output_names=prepared.output_names,
        input_units=prepared.input_units,
        input_distributions=prepared.distributions,
        output_units=prepared.output_units,
        input_shape=list(prepared.target.input_shape),
        output_shape=list(prepared.target.output_shape),
        points=flat,
        outputs=prepared.y,
        methods=methods,
        measure_source=found.measure_source,
        measure_outputs=found.measure_outputs,
        measures=found.measures,
        overall=found.overall,
        shown_measures=list(spec.measures),
        agreement=found.agreement,
        nonfinite=found.nonfinite,
        dead_inputs=found.dead_inputs,
        warnings=prepared.warnings + found.warnings,
        notes=notes + list(dict.fromkeys(n for m in methods.values() for n in m.run.notes)),
        timings=timings,
        memory={"budget": plan.budget, "array_bytes": plan.array_bytes, "arrays": plan.arrays,
                "chunk_points": plan.chunk_points, "peak_rss": _peak_rss(), "execution": computed.facts},
        provenance=provenance(spec, loaded, prepared.points, command, run_seconds=time.perf_counter() - started,
                              flat=flat, arrays=prepared.layout.arrays),
        spec_text=spec.text,
        point_stats=found.point_stats,
        leading_measure=found.leading,
        layout=prepared.layout,
        groups=found.groups,
        categories=found.categories,
        discrete=effects,
        confidence=spec.confidence,
        intervals=found.intervals,
        group_intervals=found.group_intervals,
        sobol=found.sobol,
        subspace=found.subspace,
        custom_gradients=[] if prepared.target.eager else prepared.target.custom_gradients,
    )


def _peak_rss() -> int | None:
    """Peak resident memory of this process so far, in bytes."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
    except (ImportError, OSError):  # pragma: no cover - not on Linux
        return None


def _mlflow_settings(spec: Spec, asked: bool | dict | None) -> dict | None:
    """What to log to MLflow (``{experiment, run_name, tags}``), or None; refused before
    any work when MLflow is not installed."""
    if asked is None or asked is True:
        settings = spec.mlflow if asked is None else dict(spec.mlflow or {})
    elif asked is False:
        settings = None
    elif isinstance(asked, dict):
        settings = dict(asked)
    else:
        raise TypeError(f"mlflow must be True, False, None or a mapping, got {type(asked).__name__}")
    if settings is not None:
        from .mlflow_log import require_mlflow

        require_mlflow()
    return settings


def _finish(result: RunResult, spec: Spec, plotlyjs: str | None, write: bool, tracking: dict | None) -> None:
    """After the run: what ``result.save()`` needs to write the same report, the log
    record, and the MLflow run when asked for."""
    result.report_options = {"plotlyjs": plotlyjs or spec.plotlyjs, "templates": spec.report_templates,
                             "compress_arrays": spec.compress_arrays}
    log.info("%s; %s", result.verdict.headline if result.verdict else result.status,
             f"wrote {result.out_dir}" if write else "wrote nothing (write=False)")
    if tracking is not None:
        from .mlflow_log import log_run

        result.mlflow = log_run(result, **tracking)
        log.info("logged to MLflow run %s (%s)", result.mlflow["run_id"], result.mlflow["tracking_uri"])
