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

import numpy as np

from ..engine import Target, first_line, tensorflow
from ..errors import InputError
from ..spec import ModelSpec
from ..spec.objects import is_keras_model


@dataclass
class LoadedModel:
    """A model ready for the engine, with what the report says about it."""

    target: Target
    kind: str
    source: str
    sha256: str | None
    summary: str


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


def load_model(spec: ModelSpec, point_shape: tuple[int, ...] | None = None, *,
               jit_compile: bool | str = False) -> LoadedModel:
    """Load ``spec``'s model. ``point_shape`` (from the points) is needed for callables;
    ``jit_compile`` is the target's XLA setting (``execution.xla``)."""
    loader = {"keras": _load_keras, "saved_model": _load_saved_model, "callable": _load_callable}[spec.kind]
    return loader(spec, point_shape, jit_compile)


def _load_keras(spec: ModelSpec, point_shape, jit_compile) -> LoadedModel:
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
    if len(model.inputs) != 1:
        raise InputError(
            "model.keras",
            f"the model has {len(model.inputs)} inputs; sensreport differentiates models with one "
            "input tensor (concatenate the inputs in a wrapper model).",
        )
    if len(model.outputs) != 1:
        raise InputError(
            "model.keras",
            f"the model has {len(model.outputs)} outputs; sensreport needs one output tensor "
            "(concatenate them in a wrapper model).",
        )
    shape = tuple(model.inputs[0].shape[1:])
    if any(s is None for s in shape):
        raise InputError("model.keras", f"the model's input shape {shape} has unknown dimensions besides the batch")
    act = 0
    for layer in model.layers:
        try:
            act += int(np.prod([d for d in layer.output.shape[1:]]))
        except Exception:  # noqa: BLE001 - layers without a static output shape
            pass
    dtype = str(getattr(model, "compute_dtype", None) or "float32")
    dtype = dtype if dtype in ("float32", "float64") else "float32"
    target = Target(model, shape, batched=True, dtype=dtype, activation_size=act or None, name=model.name,
                    jit_compile=jit_compile)
    params = model.count_params()
    summary = f"Keras model '{model.name}': {len(model.layers)} layers, {params:,} parameters, input {list(shape)}"
    if spec.obj is not None:
        return LoadedModel(target, "keras", spec.target, weights_sha256(model), summary + " (in memory)")
    return LoadedModel(target, "keras", str(path), file_sha256(path), summary)


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


def _load_saved_model(spec: ModelSpec, point_shape, jit_compile) -> LoadedModel:
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
    out_keys = sorted(fn.structured_outputs)
    in_key = _choose(spec.input_key, sorted(in_specs), "model.input_key", "input")
    out_key = _choose(spec.output_key, out_keys, "model.output_key", "output")
    if len(in_specs) != 1:
        raise InputError("model.input_key", f"signature '{name}' takes {len(in_specs)} inputs; sensreport needs one")
    tspec = in_specs[in_key]
    shape = tuple(tspec.shape[1:])
    if any(s is None for s in shape):
        raise InputError("model.saved_model", f"input '{in_key}' has unknown dimensions {shape} besides the batch")
    dtype = tspec.dtype.name if tspec.dtype.name in ("float32", "float64") else "float32"

    def call(x):
        return fn(**{in_key: tf.cast(x, tspec.dtype)})[out_key]

    target = Target(call, shape, batched=True, dtype=dtype, name=path.name, jit_compile=jit_compile)
    summary = f"SavedModel {path.name}, signature '{name}', input '{in_key}' {list(shape)}, output '{out_key}'"
    return LoadedModel(target, "saved_model", str(path), file_sha256(path), summary)


def _choose(given: str | None, keys: list[str], key: str, what: str) -> str:
    if given is not None:
        if given not in keys:
            raise InputError(key, f"no {what} '{given}'; the signature has: {', '.join(keys)}")
        return given
    if len(keys) != 1:
        raise InputError(key, f"the signature has several {what}s ({', '.join(keys)}); name one with {key}")
    return keys[0]


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
