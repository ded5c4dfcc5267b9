"""The validated spec as typed data: :class:`Spec` and its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..distributions import Distribution
from .schema import CHECK_DEFAULTS

def default_checks(given: dict[str, Any] | None, base: Path, baseline: str | Path | None = None) -> dict[str, Any]:
    """The checks to run: the spec's, with defaults filled in.

    ``nonfinite`` (fail), ``dead_inputs`` (warn) and ``fd_vs_ad`` (fail; only when both
    methods ran, unless the spec asks for it) are on unless set to ``false``. The
    baseline check runs when a path is given, in the spec or as ``baseline``.
    """
    given = dict(given or {})
    out: dict[str, Any] = {}
    for name, defaults in CHECK_DEFAULTS.items():
        value = given.get(name, {} if name != "baseline" else None)
        if value is False or (name == "baseline" and value is None and baseline is None):
            continue
        cfg = {**defaults, **(value or {})}
        if name == "fd_vs_ad":
            cfg["explicit"] = name in given
        if name == "baseline":
            path = baseline if baseline is not None else cfg["path"]
            cfg["path"] = (base / path).resolve() if path is not None else None
        out[name] = cfg
    return out


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # keras | saved_model | callable
    target: str  # a resolved path, or a callable reference with its file resolved
    batched: bool = True
    dtype: str | None = None
    signature: str | None = None
    input_key: str | None = None
    output_key: str | None = None
    output_names: tuple[str, ...] | None = None
    output_units: dict[str, str] = field(default_factory=dict)  # model.output_units: output name -> unit
    #: an in-memory model given to run() in a spec mapping (a keras.Model or a callable);
    #: ``target`` then describes it
    obj: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class PointsSpec:
    kind: str  # values | csv | npy | npz | sample
    values: Any = None
    path: Path | None = None
    n: int | None = None
    seed: int = 0
    #: sample: input name, tensor name or "default" -> the distribution it is drawn from
    distributions: dict[str, Distribution] = field(default_factory=dict)
    method: str = "random"  # sample: random | sobol | halton | lhs


@dataclass(frozen=True)
class Spec:
    """A validated spec with resolved paths. Build one with :func:`load_spec` or :func:`parse_spec`."""

    path: Path | None
    base_dir: Path
    raw: dict[str, Any]
    text: str
    sha256: str
    title: str
    description: str
    model: ModelSpec
    input_names: tuple[str, ...] | None
    points: PointsSpec
    jacobian_mode: str | None  # None: not requested
    rows_outputs: tuple[str | int, ...] | None
    fd_scheme: str | None
    fd_step: float | str
    measures: tuple[str, ...]
    report_dir: Path
    plotlyjs: str
    memory_budget: int | None
    timeout: float | None = None  # execution.timeout: seconds the run may take
    arrays: str = "auto"
    compress_arrays: bool = False  # execution.compress_arrays: arrays.npz through zlib (np.savez_compressed)
    xla: bool | str = False
    checks: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    ray: dict[str, Any] = field(default_factory=dict)
    report_templates: Path | None = None  # report.templates: user templates that replace built-in ones
    #: report.mlflow: what to log the run to MLflow with ({experiment, run_name, tags}); None: not logged
    mlflow: dict[str, Any] | None = None
    #: inputs.fixed: model inputs held at each point's value (not differentiated)
    fixed: tuple[str, ...] = ()
    #: inputs.groups: group name -> member input names or patterns (``numeric[*]``)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: methods.discrete.inputs: held inputs whose other values are tried at every point
    discrete: tuple[str, ...] = ()
    #: inputs.axes: sequence input name -> {time: labels or a count, feature: names}
    axes: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[tuple, int] = field(default_factory=dict, repr=False, compare=False)
    input_units: dict[str, str] = field(default_factory=dict)  # inputs.units: input name -> unit
    confidence: float = 0.95  # sensitivity.confidence: the level of every confidence interval
    #: the inputs' distributions by input name, tensor name or "default": inputs.distributions
    #: for given points, the sample's distributions for a sample; empty when none are declared
    distributions: dict[str, Distribution] = field(default_factory=dict)

