"""Load the model a spec names and wrap it as an engine :class:`~sensreport.engine.Target`."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..engine import Target, first_line, tensorflow
from ..errors import InputError
from ..spec import ModelSpec
from ..spec.objects import is_keras_model
from .tensors import Binding, Signature, TensorInfo


@dataclass
class LoadedModel:
    """A model ready for the engine, with what the report says about it."""

    target: Target
    kind: str
    source: str
    sha256: str | None
    summary: str
    #: the model's named tensors (Keras and SavedModel models); None for a callable
    signature: Signature | None = None


@dataclass
class OpenedModel:
    """A model read from its file, before it is bound to points: its tensors and how
    to call it (``call`` maps a dict of input tensors by name to a dict of outputs)."""

    kind: str
    source: str
    sha256: str | None
    summary: str
    signature: Signature
    call: Callable[[dict], dict]
    name: str
    dtype: str
    activation_size: int | None = None
    #: the model as a function of its one input tensor, when it has one input and one output
    single: Callable | None = None

    @property
    def simple(self) -> bool:
        """One float input and one output: differentiated as a function of that tensor."""
        sig = self.signature
        return self.single is not None and len(sig.inputs) == 1 and len(sig.outputs) == 1 and sig.inputs[0].is_float


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, sorted)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(item.relative_to(path)).encode())
            digest.update(item.read_bytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def open_model(spec: ModelSpec) -> OpenedModel | None:
    """Read a Keras or SavedModel model and its tensors; None for a callable (whose input
    shape only the points tell)."""
    if spec.kind == "callable":
        return None
    return _open_keras(spec) if spec.kind == "keras" else _open_saved_model(spec)


def load_model(spec: ModelSpec, point_shape: tuple[int, ...] | None = None, *,
               jit_compile: bool | str = False, binding: Binding | None = None,
               opened: OpenedModel | None = None) -> LoadedModel:
    """Load ``spec``'s model. ``point_shape`` (from the points) is needed for callables;
    ``jit_compile`` is the target's XLA setting (``execution.xla``); ``binding`` says how
    points map onto a model with several tensors (or held inputs); ``opened`` is the
    model already read by :func:`open_model`."""
    if spec.kind == "callable":
        return _load_callable(spec, point_shape, jit_compile)
    opened = opened or open_model(spec)
    if binding is None:
        if not opened.simple:
            raise ValueError("a model with several tensors or held inputs needs its binding")  # prepare gives it
        info = opened.signature.inputs[0]
        target = Target(opened.single, info.shape, batched=True, dtype=opened.dtype,
                        activation_size=opened.activation_size, name=opened.name, jit_compile=jit_compile)
    else:
        dtype = opened.dtype if len({t.dtype for t in binding.varied}) == 1 else "float32"
        target = Target(binding.function(opened.call), binding.input_shape, batched=True, dtype=dtype,
                        activation_size=opened.activation_size, name=opened.name, jit_compile=jit_compile,
                        fixed=len(binding.held))
    return LoadedModel(target, opened.kind, opened.source, opened.sha256, opened.summary, opened.signature)


def _open_keras(spec: ModelSpec) -> OpenedModel:
    tensorflow()
    import keras

    model = _keras_object(spec.obj) if spec.obj is not None else None  # a keras.Model given in a spec mapping
    path = Path(spec.target)
    problem = _not_a_model_file(path) if model is None else None
    if problem:
        raise InputError("model.keras", f"cannot load {path.name} as a Keras model: {problem}")
    try:
        model = model if model is not None else keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any loader failure is the file's problem
        raise InputError("model.keras", f"cannot load {path.name} as a Keras model: {first_line(exc)}") from None
    signature, call = keras_signature(model)
    for t in signature.inputs:
        if any(s is None for s in t.shape):
            raise InputError("model.keras", f"the model's input '{t.name}' has shape {list(t.shape)}, with unknown "
                                            "dimensions besides the batch")
    act = 0
    for layer in model.layers:
        try:
            act += int(np.prod([d for d in layer.output.shape[1:]]))
        except Exception:  # noqa: BLE001 - layers without a static output shape
            pass
    dtype = str(getattr(model, "compute_dtype", None) or "float32")
    dtype = dtype if dtype in ("float32", "float64") else "float32"
    if {t.dtype for t in signature.outputs} == {"float64"}:  # layers built in float64 (a functional model's
        dtype = "float64"                                     # own policy may still say float32)
    params = model.count_params()
    shown = ", ".join(f"{t.name} {list(t.shape)}" for t in signature.inputs)
    summary = (f"Keras model '{model.name}': {len(model.layers)} layers, {params:,} parameters, "
               + (f"input {list(signature.inputs[0].shape)}" if len(signature.inputs) == 1 else f"inputs {shown}"))
    if len(signature.outputs) > 1:
        summary += ", outputs " + ", ".join(f"{t.name} {list(t.shape)}" for t in signature.outputs)
    single = model if len(model.inputs) == 1 and len(model.outputs) == 1 else None
    if spec.obj is not None:
        return OpenedModel("keras", spec.target, weights_sha256(model), summary + " (in memory)", signature, call,
                           model.name, dtype, act or None, single)
    return OpenedModel("keras", str(path), file_sha256(path), summary, signature, call, model.name, dtype, act or None,
                       single)


def keras_signature(model) -> tuple[Signature, Callable[[dict], dict]]:
    """A functional Keras model's named inputs and outputs, and a call by name.

    Inputs are named by their ``keras.Input`` names (or the keys of a dict of inputs);
    outputs by the keys of a dict of outputs, else by their layers' names.
    """
    struct, out_struct = _structure(model, "input"), _structure(model, "output")
    if isinstance(struct, dict):
        in_pairs = list(struct.items())
    else:
        in_pairs = [(t.name, t) for t in model.inputs]
    if isinstance(out_struct, dict):
        out_pairs = list(out_struct.items())
    else:
        names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
        out_pairs = list(zip(names, model.outputs))
    inputs = tuple(TensorInfo(str(n), tuple(t.shape[1:]), _dtype_name(t.dtype)) for n, t in in_pairs)
    outputs = tuple(TensorInfo(str(n), tuple(int(d) if d is not None else -1 for d in t.shape[1:]),
                               _dtype_name(t.dtype)) for n, t in out_pairs)
    out_names = [t.name for t in outputs]
    dict_out = isinstance(out_struct, dict)

    def call(feeds: dict) -> dict:
        y = model(feeds if len(inputs) > 1 else feeds[inputs[0].name])
        if dict_out:
            return y
        if len(out_names) == 1 and not isinstance(y, (list, tuple)):
            return {out_names[0]: y}
        return dict(zip(out_names, y))

    return Signature(inputs, outputs), call


def _structure(model, which: str):
    """``model.input`` / ``model.output`` (a dict for dict inputs/outputs); None where Keras
    cannot tell it (a Sequential model built without an Input), whose ``inputs`` still work."""
    try:
        return getattr(model, which)
    except (AttributeError, ValueError):
        return None


def _dtype_name(dtype) -> str:
    name = getattr(dtype, "name", None) or str(dtype)
    return name.replace("tf.", "")


def _keras_object(model):
    """An in-memory keras.Model, refused when it has no defined inputs to differentiate."""
    if not getattr(model, "built", False) or not getattr(model, "inputs", None):
        raise InputError(
            "model.keras",
            f"the Keras model {getattr(model, 'name', '')!r} has no defined inputs (a subclassed model, or one "
            "never built): build it from keras.Input, or give it under model.callable with batched: true",
        )
    return model


def weights_sha256(model) -> str:
    """sha256 of an in-memory Keras model's architecture and weights (what a file's sha256 stands for)."""
    digest = hashlib.sha256()
    try:
        digest.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    except Exception:  # noqa: BLE001 - subclassed models may have no config
        digest.update(type(model).__qualname__.encode())
    for w in model.get_weights():
        w = np.ascontiguousarray(w)
        digest.update(str((w.dtype.str, w.shape)).encode())
        digest.update(w.view(np.uint8).reshape(-1) if w.size else b"")
    return digest.hexdigest()


def _not_a_model_file(path: Path) -> str | None:
    """Why ``path`` cannot be a Keras file, judged by its first bytes (Keras itself says
    "File not found" for a file that is there but is not a zip archive)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return exc.strerror or str(exc)
    if path.suffix == ".h5":
        return None if head == b"\x89HDF\r\n\x1a\n" else "the file is not an HDF5 file (a legacy .h5 model)"
    if not zipfile.is_zipfile(path):
        return "the file is not a .keras archive (a .keras model is a zip file; this one is not)"
    return None


def _open_saved_model(spec: ModelSpec) -> OpenedModel:
    tf = tensorflow()
    path = Path(spec.target)
    try:
        obj = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise InputError("model.saved_model", f"cannot load {path} as a SavedModel: {first_line(exc)}") from None
    sigs = dict(getattr(obj, "signatures", {}) or {})
    if not sigs:
        raise InputError("model.saved_model", "the SavedModel has no signatures to call")
    name = spec.signature or ("serving_default" if "serving_default" in sigs or len(sigs) != 1 else next(iter(sigs)))
    if name not in sigs:
        raise InputError("model.signature", f"no signature '{name}'; the SavedModel has: {', '.join(sorted(sigs))}")
    fn = sigs[name]
    in_specs = fn.structured_input_signature[1]
    out_specs = fn.structured_outputs
    _check_key(spec.input_key, sorted(in_specs), "model.input_key", "input")
    _check_key(spec.output_key, sorted(out_specs), "model.output_key", "output")
    out_keys = [spec.output_key] if spec.output_key else sorted(out_specs)
    inputs = tuple(TensorInfo(k, tuple(in_specs[k].shape[1:]), in_specs[k].dtype.name) for k in sorted(in_specs))
    outputs = tuple(TensorInfo(k, tuple(int(d) if d is not None else -1 for d in out_specs[k].shape[1:]),
                               out_specs[k].dtype.name) for k in out_keys)
    for t in inputs:
        if any(s is None for s in t.shape):
            raise InputError("model.saved_model", f"input '{t.name}' has unknown dimensions {list(t.shape)} besides "
                                                  "the batch")
    varied_dtypes = [t.dtype for t in inputs if t.dtype in ("float32", "float64")]
    dtype = varied_dtypes[0] if varied_dtypes else "float32"

    # the signature's function refers to variables the loaded object owns: the closures
    # keep it alive (else its variables are freed and tracing fails)
    def call(feeds: dict, _owner=obj) -> dict:
        out = fn(**{k: tf.cast(v, in_specs[k].dtype) for k, v in feeds.items()})
        return {k: out[k] for k in out_keys}

    single = None
    if len(inputs) == 1 and len(outputs) == 1:
        in_key, out_key, in_dtype = inputs[0].name, outputs[0].name, in_specs[inputs[0].name].dtype

        def single(x, _owner=obj):
            return fn(**{in_key: tf.cast(x, in_dtype)})[out_key]

    shown = ", ".join(f"'{t.name}' {list(t.shape)}" for t in inputs)
    summary = (f"SavedModel {path.name}, signature '{name}', input{'s' if len(inputs) > 1 else ''} {shown}, "
               f"output{'s' if len(outputs) > 1 else ''} {', '.join(repr(k) for k in out_keys)}")
    return OpenedModel("saved_model", str(path), file_sha256(path), summary, Signature(inputs, outputs), call,
                       path.name, dtype, None, single)


def _check_key(given: str | None, keys: list[str], key: str, what: str) -> None:
    if given is not None and given not in keys:
        raise InputError(key, f"no {what} '{given}'; the signature has: {', '.join(keys)}")


def load_callable(ref: str):
    """Import ``FILE.py:NAME`` or ``package.module:NAME`` and return (function, source file)."""
    where, _, name = ref.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            mod_name = "sensreport_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except SystemExit as exc:  # sys.exit() at import time must not end the run silently
        raise InputError("model.callable", f"importing {where} called sys.exit({exc.code!r}); a model file "
                                           "must define the function, not end the program") from None
    except Exception as exc:  # noqa: BLE001 - user code: report what it raised
        raise InputError("model.callable", f"importing {where} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        raise InputError("model.callable", f"{where} has no function named '{name}'")
    return _checked(fn, name), getattr(module, "__file__", None)


def _checked(fn, name: str):
    """``fn``, refusing what cannot be a model's output (``None``: a missing ``return``)
    and turning a ``sys.exit()`` in it into an error instead of the end of the run."""

    @functools.wraps(fn)
    def call(x):
        try:
            y = fn(x)
        except SystemExit as exc:
            raise InputError("model.callable", f"{name} called sys.exit({exc.code!r}) when called on a "
                                               "point") from None
        if y is None:
            raise InputError("model.callable", f"{name} returned None; it must return the outputs as a tensor "
                                               "(is a `return` missing?)")
        return y

    return call


def _load_callable(spec: ModelSpec, point_shape, jit_compile) -> LoadedModel:
    if spec.obj is not None:  # a callable given in a spec mapping
        fn, source = spec.obj, _source_file(spec.obj)
    else:
        fn, source = load_callable(spec.target)
    if point_shape is None:
        raise InputError("inputs.points", "cannot tell the callable's input shape without points")
    shape = tuple(point_shape)
    target = Target(fn, shape, batched=spec.batched, dtype=spec.dtype or "float64", name=getattr(fn, "__name__", "f"),
                    jit_compile=jit_compile)
    sha = file_sha256(Path(source)) if source else None
    if spec.obj is not None and is_keras_model(fn):
        sha = weights_sha256(fn)
    kind = "batched" if spec.batched else "per-point"
    shown = spec.target.rpartition(':')[2] if spec.obj is None else getattr(fn, "__qualname__", type(fn).__name__)
    summary = f"Python function {shown} ({kind}, {target.dtype}), input {list(shape)}"
    return LoadedModel(target, "callable", spec.target, sha, summary)


def _source_file(fn) -> str | None:
    """The file an in-memory callable was defined in, when there is one (not a notebook cell)."""
    try:
        source = inspect.getsourcefile(fn if inspect.isroutine(fn) else type(fn))
    except TypeError:  # built-ins and other C-level callables
        return None
    return source if source and Path(source).is_file() else None
