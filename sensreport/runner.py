"""Chain the stages: spec -> points -> model -> derivatives -> measures -> outputs.

This is the only module that knows the order of the stages; the CLI and the Python
API both call :func:`run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import measures as M
from .errors import InputError
from .points import Points, index_names, load_points
from .results import MethodResult, RunResult
from .spec import Spec, default_checks, load_spec, parse_spec
from .checks import compare, load_baseline
from .checks import evaluate as evaluate_checks
from .sweep import PREVIEW_POINTS, ArrayStore, MethodPlan, make_plan, sweep


def run(
    spec: Spec | str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    *,
    plotlyjs: str | None = None,
    write: bool = True,
    command: list[str] | None = None,
    progress: bool = False,
    baseline: str | os.PathLike | None = None,
) -> RunResult:
    """Run a spec end to end and (with ``write=True``) write its outputs.

    Parameters
    ----------
    spec : Spec, path or dict
        A validated :class:`Spec`, a path to a YAML spec, or a spec mapping (relative
        paths then resolve against the working directory).
    out : path, optional
        Output folder; default the spec's ``report.dir``. ``{date}``, ``{time}`` and
        ``{datetime}`` in it are filled in; a ``latest`` link beside the first
        templated folder is moved to the new run after a successful write.
    plotlyjs : {"inline", "cdn"}, optional
        Overrides ``report.plotlyjs``.
    progress : bool
        Show a progress bar on stderr when it is a terminal.
    baseline : path, optional
        A previous run's results.json to compare with (overrides ``checks.baseline.path``).

    Returns
    -------
    RunResult
        Check ``result.status``: ``ok``, or ``incomplete`` when a method failed or
        results contain NaN/Inf (the report says where).
    """
    if isinstance(spec, dict):
        spec = parse_spec(spec, base_dir=Path.cwd())
    elif not isinstance(spec, Spec):
        spec = load_spec(spec)
    if baseline is not None:
        spec = dataclasses.replace(spec, checks=default_checks(spec.raw.get("checks"), Path.cwd(), baseline))
    baseline_doc = _baseline(spec)
    now = _dt.datetime.now()
    out_dir, latest = expand_out(Path(out) if out else spec.report_dir, now)
    staging = None
    if spec.arrays == "disk":
        # .npy arrays are written chunk by chunk into a hidden folder beside the outputs
        # and renamed into place with the other files only when the run succeeds
        if write:
            _make_dir(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=".arrays.", dir=out_dir if write else None))
    try:
        result = compute(spec, command=command, array_dir=staging, progress=progress)
        apply_checks(result, spec.checks, baseline_doc)
        if write:
            write_outputs(result, out_dir, plotlyjs or spec.plotlyjs)
            result.out_dir = out_dir
            if latest is not None:
                point_latest(latest, out_dir)
    finally:
        if staging is not None and write:
            shutil.rmtree(staging, ignore_errors=True)
    return result


def compute(
    spec: Spec,
    command: list[str] | None = None,
    *,
    array_dir: Path | None = None,
    progress: bool = False,
    on_chunk=None,
) -> RunResult:
    """Compute everything the spec asks for; write nothing except, with
    ``execution.arrays: disk``, the ``.npy`` arrays into ``array_dir``.

    ``progress`` shows a progress bar on stderr (only when it is a terminal).
    ``on_chunk(done, pids)`` is called after each chunk of a Ray run (a test seam).
    """
    from . import engine
    from .models import load_model

    timings: dict[str, float] = {}
    if spec.engine == "ray":
        from .distributed import _ray

        _ray()  # fail before any work when Ray is missing
    t0 = time.perf_counter()
    points = load_points(spec.points, spec.input_names)
    timings["load_points"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    engine._tf()
    timings["import_tensorflow"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded = load_model(spec.model, points.point_shape)
    target = loaded.target
    target.jit_compile = spec.xla
    timings["load_model"] = time.perf_counter() - t0

    x = _fit_points(points, target.input_shape)
    input_names = _input_names(spec, points, target.input_shape)
    t0 = time.perf_counter()
    try:
        y = target.evaluate(x, memory_budget=(spec.memory_budget or engine.default_memory_budget()) // 2)
        y = y.astype(np.float64)
    except Exception as exc:  # noqa: BLE001 - user models fail in many ways
        raise InputError(
            f"model.{spec.model.kind}",
            f"calling the model on the points (shape {[len(x), *target.input_shape]}) failed: {engine._first_line(exc)}",
        ) from None
    timings["evaluate"] = time.perf_counter() - t0
    output_names = _output_names(spec, target)
    row_idx = _row_indices(spec, output_names)

    warnings: list[str] = []
    ad_blocked = None
    if spec.jacobian_mode or row_idx:
        blockers = engine.gradient_blockers(target)
        if blockers["none"]:
            ad_blocked = (
                f"the model contains {', '.join(blockers['none'])} ops (tf.numpy_function / tf.py_function or "
                "code TensorFlow cannot trace), through which TensorFlow has no derivative, so automatic "
                "derivatives would be missing or silently zero. Use methods.finite_difference for this model."
            )
        if blockers["zero"]:
            warnings.append(
                f"The model contains {', '.join(blockers['zero'])} ops, whose derivative TensorFlow defines as "
                "zero; automatic derivatives through them can differ from the true rate of change "
                "(compare with finite differences)."
            )
        if blockers["unregistered"]:
            warnings.append(
                f"The model contains ops with no registered gradient ({', '.join(blockers['unregistered'])}); "
                "automatic derivatives may be incomplete."
            )

    budget = spec.memory_budget or engine.default_memory_budget()
    planned = []
    item = np.dtype(target.dtype).itemsize
    if spec.jacobian_mode:
        planned.append(MethodPlan("jacobian", tuple(range(target.m)), item, mode=spec.jacobian_mode, blocked=ad_blocked))
    if row_idx:
        planned.append(MethodPlan("rows", tuple(row_idx), item, blocked=ad_blocked))
    if spec.fd_scheme:
        planned.append(MethodPlan("finite_difference", tuple(range(target.m)), 8, scheme=spec.fd_scheme, step=spec.fd_step))
    flat = x.reshape(len(x), -1)
    fd_check = spec.checks.get("fd_vs_ad") or {}
    plan = make_plan(planned, flat, y, budget=budget, arrays=spec.arrays, ad_dtype=target.dtype,
                     rtol=fd_check.get("max_rel_error"))
    notes: list[str] = [plan.describe()] if plan.arrays != "memory" else []
    store = ArrayStore(plan, array_dir)
    t0 = time.perf_counter()
    engine_facts: dict[str, Any] = {"engine": "local"}
    with _progress_bar(len(x) * len(planned), progress) as bar:
        if spec.engine == "ray":
            from .distributed import RayConfig, sweep_ray

            partial, engine_facts = sweep_ray(spec.model, points.point_shape, spec.xla, plan, x, y,
                                              RayConfig(**spec.ray), sink=store, keep_preview=PREVIEW_POINTS,
                                              progress=bar, on_result=on_chunk)
        else:
            partial = sweep(target, plan, x, y, sink=store, progress=bar)
    store.flush()
    timings["derivatives"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    methods: dict[str, MethodResult] = {}
    for mp in plan.methods:
        part = partial.methods[mp.name]
        methods[mp.name] = MethodResult(
            mp.name, part.status, part.reason, values=store.arrays.get(mp.name) if part.status == "ok" else None,
            outputs=list(mp.outputs), strategy=part.strategy, dtype=part.dtype,
            seconds=part.seconds if part.status == "ok" else None,
            first_call_seconds=part.first_call_seconds, calls=part.calls, chunk_points=part.chunk_points,
            notes=part.notes, path=store.paths.get(mp.name), preview=store.preview.get(mp.name) if part.status == "ok" else None,
        )
        if part.status == "ok":
            timings[mp.name] = part.seconds
            if mp.name == "finite_difference":  # the steps are a function of the points: recompute, not store
                methods[mp.name].step = engine.fd_step(flat, mp.scheme, part.dtype, mp.step, spread=plan.spread)
    source = next((k for k in ("jacobian", "finite_difference", "rows") if k in methods and methods[k].status == "ok"), None)
    values, overall, m_outputs, dead = {}, {}, [], []
    if source:
        acc = partial.methods[source].measures
        m_outputs = list(plan.method(source).outputs)
        values = acc.result(plan.spread)
        overall = {k: M.overall(v, k) for k, v in values.items()}
        dead = acc.dead_inputs()
        if len(x) == 1:
            warnings.append("Only one point: the std-scaled measure needs the inputs' spread and is not available.")
    agreement = None
    if partial.agreement is not None and all(methods[k].status == "ok" for k in (plan.compared, "finite_difference")):
        summary = partial.agreement.summary()
        ad_outputs = list(plan.method(plan.compared).outputs)
        for w in summary["worst"]:
            w["output"] = ad_outputs[w["output"]]
        summary["compared"] = plan.compared
        summary["dtype"] = target.dtype
        agreement = {"summary": summary, "outputs": ad_outputs}
    nonfinite = {"outputs": M.nonfinite(y)}
    for name, m in methods.items():
        if m.status == "ok":
            nonfinite[name] = partial.methods[name].nonfinite.summary()
    timings["measures"] = time.perf_counter() - t0
    memory = {"budget": plan.budget, "array_bytes": plan.array_bytes, "arrays": plan.arrays,
              "chunk_points": plan.chunk_points, "peak_rss": _peak_rss(), "execution": engine_facts}

    return RunResult(
        title=spec.title,
        description=spec.description,
        model={"kind": loaded.kind, "source": loaded.source, "sha256": loaded.sha256, "summary": loaded.summary},
        input_names=input_names,
        output_names=output_names,
        input_shape=list(target.input_shape),
        output_shape=list(target.output_shape),
        points=x.reshape(len(x), -1),
        outputs=y,
        methods=methods,
        measure_source=source,
        measure_outputs=m_outputs,
        measures=values,
        overall=overall,
        shown_measures=list(spec.measures),
        agreement=agreement,
        nonfinite=nonfinite,
        dead_inputs=dead,
        warnings=warnings,
        notes=notes + list(dict.fromkeys(n for m in methods.values() for n in m.notes)),
        timings=timings,
        memory=memory,
        provenance=_provenance(spec, loaded, points, command),
        spec_text=spec.text,
    )


def _baseline(spec: Spec) -> dict | None:
    cfg = spec.checks.get("baseline")
    if not cfg or cfg.get("path") is None or not Path(cfg["path"]).exists():
        return None  # a missing baseline (e.g. the first scheduled run) is reported by the check
    return load_baseline(Path(cfg["path"]))


def apply_checks(result: RunResult, config: dict, baseline_doc: dict | None) -> None:
    """Compare with the baseline and evaluate the checks; store both on ``result``."""
    doc = result.to_dict()
    cfg = config.get("baseline")
    comparison = None
    if cfg and cfg.get("path") is not None:
        if baseline_doc is None:
            comparison = {"error": f"baseline not found: {cfg['path']}"}
        else:
            comparison = compare(doc, baseline_doc, cfg["measure"], cfg["top_k"])
            comparison["path"] = str(cfg["path"])
    if config.get("fd_vs_ad") and not config["fd_vs_ad"].get("explicit") and doc.get("agreement") is None:
        config = {k: v for k, v in config.items() if k != "fd_vs_ad"}  # the default check needs both methods
    result.baseline = comparison
    result.checks = [c.to_dict() for c in evaluate_checks(config, doc, comparison)]


PLACEHOLDERS = ("{date}", "{time}", "{datetime}")


def expand_out(path: Path, now: _dt.datetime) -> tuple[Path, Path | None]:
    """Fill ``{date}``, ``{time}``, ``{datetime}`` in ``path``; return it and where ``latest`` goes.

    ``latest`` is a link beside the first folder that holds a placeholder
    (``reports/{date}/credit`` -> ``reports/latest`` pointing at ``<date>``); None when
    the path has no placeholder.
    """
    values = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H%M%S"),
              "datetime": now.strftime("%Y-%m-%dT%H%M%S")}
    parts = path.parts
    first = next((i for i, part in enumerate(parts) if any(p in part for p in PLACEHOLDERS)), None)
    try:
        expanded = Path(*(part.format(**values) if any(p in part for p in PLACEHOLDERS) else part for part in parts))
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError("report.dir", f"{path}: only {{date}}, {{time}} and {{datetime}} can be filled in ({exc})") from None
    if first is None:
        return expanded, None
    return expanded, Path(*parts[:first]) / "latest"


def point_latest(latest: Path, out_dir: Path) -> None:
    """Atomically make ``latest`` a relative link to ``out_dir``'s folder at its level."""
    target = Path(os.path.relpath(out_dir, latest.parent)).parts[0]
    tmp = latest.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, latest)


def _fit_points(points: Points, input_shape: tuple[int, ...]) -> np.ndarray:
    """Points as ``[P, *input_shape]``; flat rows of the right length are reshaped."""
    v = points.values
    if v.shape[1:] == tuple(input_shape):
        return v
    n = int(np.prod(input_shape, dtype=np.int64))
    if int(np.prod(v.shape[1:], dtype=np.int64)) == n:
        return v.reshape((len(v),) + tuple(input_shape))
    raise InputError(
        points.source,
        f"each point has shape {list(v.shape[1:])} ({int(np.prod(v.shape[1:]))} values) but the model "
        f"takes inputs of shape {list(input_shape)} ({n} values)",
    )


def _input_names(spec: Spec, points: Points, shape: tuple[int, ...]) -> list[str]:
    n = int(np.prod(shape, dtype=np.int64))
    if spec.input_names:
        if len(spec.input_names) != n:
            raise InputError("inputs.names", f"{len(spec.input_names)} names given but the model has {n} inputs")
        if points.names and list(points.names) != list(spec.input_names):
            raise InputError(
                "inputs.names",
                f"the names differ from the CSV header ({', '.join(points.names)}); give the same names in "
                "the same order, or leave inputs.names out to take them from the header",
            )
        return list(spec.input_names)
    if points.names and len(points.names) == n:
        return list(points.names)
    return index_names("x", shape)


def _output_names(spec: Spec, target) -> list[str]:
    if spec.model.output_names:
        if len(spec.model.output_names) != target.m:
            raise InputError(
                "model.output_names", f"{len(spec.model.output_names)} names given but the model has {target.m} outputs"
            )
        return list(spec.model.output_names)
    return index_names("y", target.output_shape)


def _row_indices(spec: Spec, output_names: list[str]) -> list[int]:
    if not spec.rows_outputs:
        return []
    out = []
    for i, o in enumerate(spec.rows_outputs):
        key = f"methods.rows.outputs[{i}]"
        if isinstance(o, int):
            if not 0 <= o < len(output_names):
                raise InputError(key, f"output index {o} is out of range: the model has {len(output_names)} outputs")
            out.append(o)
        elif o in output_names:
            out.append(output_names.index(o))
        else:
            raise InputError(key, f"'{o}' is not an output name ({', '.join(output_names[:10])})")
    return out


def _peak_rss() -> int | None:
    """Peak resident memory of this process so far, in bytes."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB
    except (ImportError, OSError):  # pragma: no cover - not on Linux
        return None


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool):
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal; else a no-op callback."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="pt", desc="derivatives", file=sys.stderr, leave=False) as bar:
        yield bar.update


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _provenance(spec: Spec, loaded, points: Points, command: list[str] | None) -> dict[str, Any]:
    tf_version = sys.modules["tensorflow"].__version__ if "tensorflow" in sys.modules else None
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec_path": str(spec.path) if spec.path else None,
        "spec_sha256": spec.sha256,
        "model_sha256": loaded.sha256,
        "points_source": points.source,
        "seed": points.seed,
        "command": command,
        "cwd": os.getcwd(),
        "versions": {
            "sensreport": _version("sensreport"),
            "python": platform.python_version(),
            "tensorflow": tf_version,
            "keras": _version("keras"),
            "numpy": np.__version__,
            "jinja2": _version("jinja2"),
            "plotly": _version("plotly"),
        },
        "platform": platform.platform(),
    }


def _dump_json(doc: dict, fh) -> None:
    """Stream ``doc`` into a binary file (no copy of the whole text in memory)."""
    text = io.TextIOWrapper(fh, encoding="utf-8")
    json.dump(doc, text, indent=1, allow_nan=False)
    text.flush()
    text.detach()


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("report.dir", f"cannot create the output folder {path}: {exc}") from None


def write_outputs(result: RunResult, out_dir: Path, plotlyjs: str = "inline") -> dict[str, Path]:
    """Write report.html, results.json and arrays.npz into ``out_dir``.

    Everything is rendered to temporary files in ``out_dir`` first; only then is each
    moved over its final name with an atomic rename, so a failure at any point before
    leaves the previous run's files untouched.
    """
    from .report import render_report

    out_dir = Path(out_dir)
    _make_dir(out_dir)
    t0 = time.perf_counter()
    html = render_report(result, plotlyjs=plotlyjs)
    result.timings["render_report"] = time.perf_counter() - t0
    doc = result.to_dict()
    staged: list[tuple[Path, Path]] = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for name, writer in (
            ("arrays.npz", lambda fh: np.savez_compressed(fh, **result.arrays())),
            ("results.json", lambda fh: _dump_json(doc, fh)),
            ("report.html", lambda fh: fh.write(html.encode("utf-8"))),
        ):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a report is meant to be shared
            staged.append((Path(tmp), out_dir / name))
        for tmp, final in staged:
            os.replace(tmp, final)
        for m in result.methods.values():
            if m.path is not None and m.path.exists():
                final = out_dir / m.path.name
                os.replace(m.path, final)
                m.path = final
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
    return {final.name: final for _, final in staged}
