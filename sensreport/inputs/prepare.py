"""From a spec to what the computation starts from: points, the loaded model, the
outputs at the points, the names of inputs and outputs, and what blocks gradients."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import engine
from ..deadline import stage
from ..distributions import Distribution, resolve
from ..errors import InputError
from ..spec import Spec
from .models import LoadedModel, load_model, open_model
from .points import Points, index_names, load_points
from .layout import InputLayout, describe
from .tensors import Axes, Binding, Signature, TensorInfo, bind_points, make_axes


@dataclass
class Prepared:
    """The inputs stage's result: everything the plan and the sweep need."""

    points: Points
    loaded: LoadedModel
    x: np.ndarray  # [P, *input_shape], as the model takes them
    y: np.ndarray  # [P, m] float64, the outputs at the points
    input_names: list[str]
    output_names: list[str]
    row_outputs: list[int]  # methods.rows: the selected outputs' indices
    ad_blocked: str | None  # why automatic derivatives cannot run, if they cannot
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: how the points map onto a model's named tensors (None: one input tensor, one output)
    binding: Binding | None = None
    #: every model input: differentiated or held, its names, the groups, its values as read
    layout: InputLayout | None = None
    input_units: list[str] = field(default_factory=list)  # per input, "" where none is declared
    output_units: list[str] = field(default_factory=list)
    #: per input (aligned with ``input_names``): its declared distribution, None where none is
    distributions: list[Distribution | None] = field(default_factory=list)

    @property
    def target(self) -> engine.Target:
        return self.loaded.target

    @property
    def flat(self) -> np.ndarray:
        """The differentiated inputs at every point, ``[P, n]`` (no held input's column)."""
        return self.target.differentiated(self.x)


def prepare(spec: Spec, budget: int) -> Prepared:
    """Load the points and the model, evaluate the model at the points, name everything."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    stage("loading the points")
    points = load_points(spec.points, spec.input_names, budget=budget)
    timings["load_points"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    stage("importing TensorFlow")
    engine.tensorflow()
    timings["import_tensorflow"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stage("loading the model")
    opened = open_model(spec.model)
    if opened is None:  # a callable takes one array of numbers
        points.numeric()
    binding = None
    if opened is None and spec.axes:
        raise InputError("inputs.axes", "named axes need a Keras or SavedModel model, whose inputs have names")
    if opened is None or (opened.simple and not spec.fixed and not spec.axes and points.arrays is None):
        loaded = load_model(spec.model, points.point_shape, jit_compile=spec.xla, opened=opened)
        target = loaded.target
        x = _fit_points(points, target.input_shape)
        input_names = _input_names(spec, points, target.input_shape)
        default_outputs = None
        one = opened.signature.inputs[0] if opened else TensorInfo("x", tuple(target.input_shape), target.dtype)
        layout = describe([(one, True)], input_names, (), {}, {}, spec.groups)
    else:
        if not opened.signature.named and points.arrays is None:  # one input tensor: points as today
            one = opened.signature.inputs[0]
            points.arrays = {one.name: _fit_points(points, one.shape)}
        axes = _axes(spec, opened.signature)
        bound = bind_points(points, opened.signature, spec.fixed, spec.model.input_key, axes)
        binding = bound.binding
        loaded = load_model(spec.model, jit_compile=spec.xla, binding=binding, opened=opened)
        target = loaded.target
        x = binding.engine_points(bound.varied)
        input_names = _named_inputs(spec, points, bound.column_names, opened.signature.named or bool(axes))
        default_outputs = binding.output_names()
        varied = {t.name for t in binding.varied}
        layout = describe([(t, t.name in varied) for t in opened.signature.inputs], input_names, binding.held,
                          axes, bound.arrays, spec.groups)
    timings["load_model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stage("evaluating the model at the points")
    try:
        y = target.evaluate(x, memory_budget=budget // 2).astype(np.float64)
    except InputError:
        raise  # the model's own problem, said by the loader (e.g. a callable returning None)
    except Exception as exc:  # noqa: BLE001 - user models fail in many ways
        raise InputError(
            f"model.{spec.model.kind}",
            f"calling the model on the points (shape {[len(x), *target.input_shape]}) failed: {engine.first_line(exc)}",
        ) from None
    timings["evaluate"] = time.perf_counter() - t0
    output_names = _output_names(spec, target, default_outputs)
    row_idx = _row_indices(spec, output_names)
    ad_blocked, warnings = None, list(points.warnings)
    if spec.jacobian_mode or row_idx:
        ad_blocked, found = _gradient_findings(target)
        warnings += found
    return Prepared(points, loaded, x, y, input_names, output_names, row_idx, ad_blocked, warnings, timings,
                    binding, layout,
                    input_units=_units(spec.input_units, input_names, "inputs.units"),
                    output_units=_units(spec.model.output_units, output_names, "model.output_units"),
                    distributions=_distributions(spec, input_names))


def _tensor_name(name: str) -> str:
    """The tensor a flattened name belongs to: ``risk`` for ``risk[0]``, ``series`` for ``series[t=3, f]``."""
    return name.split("[", 1)[0]


def _units(units: dict[str, str], names: list[str], key: str) -> list[str]:
    """Each name's declared unit ("" for none), keyed by flattened name or by tensor name
    (then for all its elements); a unit for a name that is not there is refused."""
    tensors = {_tensor_name(n) for n in names}
    unknown = [u for u in units if u not in names and u not in tensors]
    if unknown:
        hint = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
        raise InputError(f"{key}.{unknown[0]}", f"'{unknown[0]}' is not a name of the model's "
                         f"{'inputs' if key.startswith('inputs') else 'outputs'} ({hint})")
    return [str(units.get(n, units.get(_tensor_name(n), ""))) for n in names]


def _distributions(spec: Spec, names: list[str]) -> list[Distribution | None]:
    """Each differentiated input's distribution. One in inputs.distributions for a name the
    model's inputs do not have is refused (a sample's were checked against inputs.names,
    which may name held inputs too)."""
    tensors = {_tensor_name(n) for n in names}
    unknown = [k for k in spec.distributions if k != "default" and k not in names and k not in tensors]
    if unknown and spec.points.kind != "sample":
        hint = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
        raise InputError(f"inputs.distributions.{unknown[0]}", f"'{unknown[0]}' is not a name of the model's "
                                                               f"differentiated inputs ({hint})")
    return resolve(spec.distributions, names)


def _gradient_findings(target: engine.Target) -> tuple[str | None, list[str]]:
    """Why automatic derivatives cannot run (or None), and warnings about ops that zero them."""
    blockers = engine.gradient_blockers(target)
    warnings = []
    blocked = None
    if blockers["none"]:
        blocked = (
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
    return blocked, warnings


def _axes(spec: Spec, signature: Signature) -> dict[str, Axes]:
    """``inputs.axes`` checked against the model's inputs."""
    names = [t.name for t in signature.inputs]
    out = {}
    for name, given in spec.axes.items():
        if name not in names:
            raise InputError(f"inputs.axes.{name}", f"'{name}' is not an input of the model; it takes: "
                                                    f"{', '.join(names)}")
        out[name] = make_axes(f"inputs.axes.{name}", given, signature.input(name))
    return out


def _fit_points(points: Points, input_shape: tuple[int, ...]) -> np.ndarray:
    """Points as ``[P, *input_shape]``; flat rows of the right length are reshaped."""
    v = points.numeric()
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


def _named_inputs(spec: Spec, points: Points, names: list[str], named: bool) -> list[str]:
    """The differentiated columns' names for a model bound by its tensors: the model's
    (``age``, ``numeric[3]``, ``series[t=3, debt_ratio]``), or ``inputs.names``; a single
    tensor's CSV header as today (``named`` False)."""
    if spec.input_names:
        if len(spec.input_names) != len(names):
            raise InputError("inputs.names", f"{len(spec.input_names)} names given but the model has {len(names)} "
                                             f"differentiated inputs ({', '.join(names[:8])}"
                                             f"{', ...' if len(names) > 8 else ''})")
        return list(spec.input_names)
    if not named and points.names and len(points.names) == len(names):
        return list(points.names)
    return names


def _output_names(spec: Spec, target, default: list[str] | None = None) -> list[str]:
    if spec.model.output_names:
        if len(spec.model.output_names) != target.m:
            raise InputError(
                "model.output_names", f"{len(spec.model.output_names)} names given but the model has {target.m} outputs"
            )
        return list(spec.model.output_names)
    if default is not None and len(default) == target.m:
        return list(default)
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
