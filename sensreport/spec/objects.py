"""In-memory objects in a spec given as a mapping (the notebook path of :func:`sensreport.run`).

A spec mapping may hold, besides plain YAML data, a loaded ``keras.Model`` under
``model.keras``, any callable under ``model.callable``, and a numpy array or a pandas
DataFrame under ``inputs.points.values``. :func:`split_objects` copies the mapping with
each such object replaced by an :class:`InMemory` placeholder: a string that describes
the object (what the spec's text, its sha256 and the report show) and carries it
(``.obj``). The schema then validates the plain copy; :func:`check_objects` says what is
wrong with the objects themselves, before any model is loaded.

Tuples become lists, numpy scalars Python numbers, ``os.PathLike`` paths strings, and
1-D arrays or pandas Index/Series elsewhere (``inputs.names: df.columns``) lists.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import yaml

#: Where a spec mapping may hold an in-memory object.
OBJECT_KEYS = (("model", "keras"), ("model", "callable"), ("inputs", "points", "values"))


class InMemory(str):
    """A placeholder for an in-memory object: the text describes it, ``.obj`` is it."""

    obj: Any

    def __new__(cls, obj: Any, text: str | None = None):
        self = super().__new__(cls, text if text is not None else describe(obj))
        self.obj = obj
        return self


def is_frame(obj: Any) -> bool:
    """A pandas DataFrame (without importing pandas)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _np():
    """numpy, if imported (no numpy object exists before; ``sensreport --help`` stays instant)."""
    return sys.modules.get("numpy")


def is_array(obj: Any) -> bool:
    np = _np()
    return np is not None and isinstance(obj, np.ndarray)


def _is_np_scalar(obj: Any) -> bool:
    np = _np()
    return np is not None and isinstance(obj, np.generic)


def is_keras_model(obj: Any) -> bool:
    """A ``keras.Model`` (without importing keras: a model exists only once keras is imported)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float, dict, list))


def _array_sha(values) -> str:
    np = _np()
    data = np.ascontiguousarray(values)
    digest = hashlib.sha256(str((data.dtype.str, data.shape)).encode())
    digest.update(data.view(np.uint8).reshape(-1) if data.size else b"")
    return digest.hexdigest()[:16]


def describe(obj: Any) -> str:
    """A one-line description of an in-memory object, for the spec's text."""
    if is_frame(obj):
        cols = [str(c) for c in obj.columns]
        try:
            sha = f", sha256 {_array_sha(obj.to_numpy())}"
        except (TypeError, ValueError):
            sha = ""
        shown = ", ".join(cols[:8]) + (", ..." if len(cols) > 8 else "")
        return f"<in-memory pandas.DataFrame: {len(obj)} rows, columns [{shown}]{sha}>"
    if is_array(obj):
        sha = f", sha256 {_array_sha(obj)}" if obj.dtype.kind in "iuf" else ""
        return f"<in-memory numpy.ndarray {obj.dtype} {list(obj.shape)}{sha}>"
    if is_keras_model(obj):
        return f"<in-memory keras.Model {getattr(obj, 'name', '')!r} ({type(obj).__name__})>"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"<in-memory {type(obj).__name__} {module}.{name}>" if callable(obj) else f"<in-memory {type(obj).__name__}>"


def _plain(value: Any, path: tuple) -> Any:
    """``value`` as plain data, in-memory objects at :data:`OBJECT_KEYS` as placeholders."""
    if path in OBJECT_KEYS and not _is_plain(value):
        if isinstance(value, os.PathLike) and path != ("inputs", "points", "values"):
            return os.fspath(value)
        return InMemory(value)
    if isinstance(value, dict):
        return {k: _plain(v, path + (k,)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, path + (i,)) for i, v in enumerate(value)]
    if _is_np_scalar(value):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not _is_plain(value) and getattr(value, "ndim", None) == 1 and hasattr(value, "tolist"):
        return [_plain(v, path + (i,)) for i, v in enumerate(value.tolist())]  # df.columns, a 1-D array
    return value  # left as it is: the schema says what is wrong with it


def split_objects(source: dict) -> dict:
    """A copy of a spec mapping with in-memory objects replaced by :class:`InMemory` placeholders."""
    return _plain(source, ())


class _Dumper(yaml.SafeDumper):
    """YAML of a spec mapping: placeholders as their text, any other object as its type's name."""


_Dumper.add_representer(InMemory, lambda d, v: d.represent_str(str(v)))
_Dumper.add_multi_representer(object, lambda d, v: d.represent_str(f"<{type(v).__module__}.{type(v).__name__}>"))


def dump_text(data: dict) -> str:
    """The spec's text for a mapping (what ``Spec.text`` holds and the report shows)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def unwrap(value: Any) -> Any:
    """The object a placeholder carries, or the value itself."""
    return value.obj if isinstance(value, InMemory) else value


def is_object_error(instance: Any) -> bool:
    """A schema error about an in-memory object: :func:`check_objects` reports it instead."""
    return isinstance(instance, InMemory) or not (_is_plain(instance) or _is_np_scalar(instance))


def _walk(value: Any, path: tuple = ()):
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, path + (i,))


def check_objects(data: dict, base, add) -> None:
    """The problems of a spec mapping's in-memory objects (``add(path, message)`` each)."""
    for path, value in _walk(data):
        if isinstance(value, InMemory):
            obj = value.obj
            if path == ("model", "keras") and not is_keras_model(obj):
                hint = " (a function or another callable goes under model.callable)" if callable(obj) else ""
                add(path, f"expected a path to a .keras file or a keras.Model, got {type(obj).__name__}{hint}")
            elif path == ("model", "callable") and not callable(obj):
                add(path, f'expected "FILE.py:NAME", "package.module:NAME" or a callable, got {type(obj).__name__}')
            elif path == ("inputs", "points", "values"):
                _check_points(obj, data, path, add)
        elif path and not isinstance(value, InMemory) and is_object_error(value):
            where = ", ".join(".".join(p) for p in OBJECT_KEYS)
            add(path, f"got an in-memory {type(value).__name__}; objects are accepted only under {where} "
                      "(elsewhere give plain values: strings, numbers, lists, mappings)")


def _check_points(obj: Any, data: dict, path: tuple, add) -> None:
    if is_frame(obj):
        cols = [str(c) for c in obj.columns]
        if len(obj) == 0 or not cols:
            add(path, f"the DataFrame is empty ({len(obj)} rows, {len(cols)} columns)")
            return
        text = [c for c, kind in zip(cols, obj.dtypes) if getattr(kind, "kind", "O") not in "iuf"]
        if text:
            add(path, f"DataFrame column(s) {', '.join(repr(c) for c in text[:5])} are not numeric "
                      "(select the input columns: df[[...]], or encode them as numbers)")
        repeated = sorted({c for c in cols if cols.count(c) > 1})
        if repeated:
            add(path, f"the DataFrame repeats column(s) {', '.join(repr(c) for c in repeated)}; every input "
                      "needs a name of its own")
        names = data.get("inputs", {}).get("names")
        if isinstance(names, list) and names != cols:
            add(("inputs", "names"), f"the names differ from the DataFrame's columns ({', '.join(cols[:8])}"
                                     f"{', ...' if len(cols) > 8 else ''}); give the same names in the same "
                                     "order, or leave inputs.names out to take them from the columns")
        return
    if is_array(obj):
        if obj.dtype.kind not in "iuf":
            add(path, f"expected a numeric array [points, ...], got dtype {obj.dtype}")
        elif obj.ndim == 0 or obj.shape[0] == 0:
            add(path, f"expected an array [points, ...] with at least one point, got shape {list(obj.shape)}")
        return
    if not hasattr(obj, "__array__"):
        add(path, f"expected a list of points, a numpy array or a pandas DataFrame, got {type(obj).__name__}")
