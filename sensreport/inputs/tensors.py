"""A model's named input and output tensors, and how points bind to them.

The engine differentiates a function of one flat vector per point. A model with several
input tensors (one ``keras.Input`` per feature, a SavedModel signature with several
arguments) or several outputs (two heads) is differentiated as it is: the flattened
float inputs form the Jacobian's columns, in the model's input order; the flattened
outputs its rows. Integer, boolean and string inputs (categories feeding an
``Embedding`` or a ``StringLookup``), and inputs listed in ``inputs.fixed``, are
*held*: each point keeps its own value and nothing is differentiated through them.
The engine carries a held input as one number per point, the row of that input's
table of distinct values, which the model function looks up inside TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .points import Points, index_names

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class TensorInfo:
    """One named tensor of a model: its shape without the batch, and its dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def element_names(self, axes: "Axes | None" = None) -> list[str]:
        """``age`` for a tensor of shape () or (1,), else ``numeric[3]``, ``series[11,2]``;
        with named ``axes`` (a sequence) ``series[t=11, debt_ratio]``."""
        if axes is not None:
            return axes.element_names(self.name)
        if self.shape in ((), (1,)):
            return [self.name]
        return index_names(self.name, self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Axes:
    """The named axes of a sequence input ``[T, F]`` (``inputs.axes``): a label per time
    step and a name per feature."""

    time: tuple[str, ...]
    feature: tuple[str, ...]

    def element_names(self, name: str) -> list[str]:
        return [f"{name}[t={t}, {f}]" for t in self.time for f in self.feature]

    def time_group(self, name: str, t: str) -> str:
        return f"{name}[t={t}, *]"

    def feature_group(self, name: str, f: str) -> str:
        return f"{name}[*, {f}]"


def make_axes(key: str, given: dict, info: "TensorInfo") -> Axes:
    """``inputs.axes.<input>`` checked against the input's shape: ``time`` a count or one
    label per step, ``feature`` one name per feature."""
    if len(info.shape) != 2:
        raise InputError(key, f"input '{info.name}' has shape {list(info.shape)}; named axes (time, feature) need "
                              "a sequence input of shape [time steps, features]")
    steps, features = info.shape
    time = given.get("time", steps)
    labels = tuple(str(t) for t in range(time)) if isinstance(time, int) else tuple(str(t) for t in time)
    if len(labels) != steps:
        raise InputError(f"{key}.time", f"{len(labels)} time steps given, input '{info.name}' has {steps}")
    names = tuple(str(f) for f in given.get("feature", range(features)))
    if len(names) != features:
        raise InputError(f"{key}.feature", f"{len(names)} feature names given, input '{info.name}' has {features}")
    for what, seq in (("time", labels), ("feature", names)):
        if len(set(seq)) != len(seq):
            raise InputError(f"{key}.{what}", "the labels must be distinct")
    return Axes(labels, names)


@dataclass(frozen=True)
class Signature:
    """The tensors a model takes and gives, in the model's order."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def named(self) -> bool:
        """Several input tensors: points bind to them by name."""
        return len(self.inputs) > 1

    def input(self, name: str) -> TensorInfo:
        return next(t for t in self.inputs if t.name == name)


@dataclass(frozen=True)
class HeldInput:
    """An input held at each point's value: its distinct values (``table``, ``[U, *shape]``
    in the model's dtype) and which row each point has (``codes``, ``[P]``)."""

    info: TensorInfo
    table: np.ndarray
    codes: np.ndarray = field(repr=False)

    def values_seen(self, limit: int = 1000) -> list:
        """The distinct values (a scalar per value for one-element inputs), at most ``limit``."""
        rows = self.table[:limit].reshape(min(len(self.table), limit), -1)
        return [_plain(r[0]) if rows.shape[1] == 1 else [_plain(v) for v in r] for r in rows]

    def value_at(self, point: int):
        """Point ``point``'s value (a scalar for one-element inputs)."""
        row = self.table[int(self.codes[point])].reshape(-1)
        return _plain(row[0]) if len(row) == 1 else [_plain(v) for v in row]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.info.name, "dtype": self.info.dtype, "shape": list(self.info.shape),
                "distinct": int(len(self.table)), "values": self.values_seen()}


@dataclass(frozen=True)
class Binding:
    """How the engine's points map onto a model with named tensors.

    ``varied``: the differentiated inputs, whose flattened values form the columns in
    this order; ``held``: the held inputs, one code column each after them.
    """

    signature: Signature
    varied: tuple[TensorInfo, ...]
    held: tuple[HeldInput, ...] = ()
    #: named axes of sequence inputs, by input name
    axes: dict[str, Axes] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return sum(t.size for t in self.varied)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one point's differentiated part as the engine sees it: the one
        varied input's own shape, or the flat vector of several."""
        return tuple(self.varied[0].shape) if len(self.varied) == 1 else (self.n,)

    def column_names(self) -> list[str]:
        return [name for t in self.varied for name in t.element_names(self.axes.get(t.name))]

    def output_names(self) -> list[str]:
        return [name for t in self.signature.outputs for name in t.element_names()]

    def function(self, call: Callable[[dict], dict]) -> Callable:
        """The engine's batched function of ``x`` (``[B, *input_shape]``) and, when inputs are
        held, their codes (``[B, len(held)]``): feeds every model input and returns the
        outputs flattened and concatenated, ``[B, m]``. ``call`` maps a dict of input
        tensors by name to a dict of output tensors by name."""
        varied, held, outputs = self.varied, self.held, self.signature.outputs

        def fn(x, codes=None):
            from ..engine import tensorflow

            tf = tensorflow()
            tables = [tf.constant(h.table) for h in held]  # a constant of each trace's own graph
            batch = tf.shape(x)[0]
            flat = tf.reshape(x, [batch, -1])
            feeds, offset = {}, 0
            for t in varied:
                part = flat[:, offset:offset + t.size]
                offset += t.size
                feeds[t.name] = tf.cast(tf.reshape(part, tf.concat([[batch], tf.constant(t.shape, tf.int32)], 0)),
                                        t.dtype)
            for j, h in enumerate(held):
                rows = tf.cast(tf.round(codes[:, j]), tf.int32)
                feeds[h.info.name] = tf.gather(tables[j], rows)
            found = call(feeds)
            out = [tf.convert_to_tensor(found[o.name]) for o in outputs]
            # in the dtype the model computes in (not x's): the engine tells float32 models
            # from float64 ones by it, and finite differences follow
            dtype = out[0].dtype
            return tf.concat([tf.reshape(tf.cast(y, dtype), [batch, -1]) for y in out], axis=1)

        return fn

    def engine_points(self, varied: np.ndarray) -> np.ndarray:
        """Points as the engine takes them: the differentiated columns, then the codes."""
        if not self.held:
            return varied
        codes = np.stack([h.codes for h in self.held], axis=1).astype(varied.dtype)
        return np.concatenate([varied.reshape(len(varied), -1), codes], axis=1)


def _plain(v):
    """A numpy scalar as a JSON-ready Python value."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v.item() if hasattr(v, "item") else v


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``values`` ``[P, *shape]`` (sorted where they compare, else in
    first-seen order) and each point's row."""
    seen: dict[tuple, int] = {}
    first: list[int] = []
    codes = np.empty(len(values), dtype=np.int64)
    for i, row in enumerate(values.reshape(len(values), -1).tolist()):
        code = seen.setdefault(tuple(row), len(seen))
        if code == len(first):
            first.append(i)
        codes[i] = code
    table = values[np.asarray(first, dtype=np.int64)]
    try:  # in sorted order where the values compare (numbers, text): region 0, 1, 2 ...
        order = sorted(range(len(table)), key=lambda r: tuple(table.reshape(len(table), -1)[r].tolist()))
    except TypeError:
        return table, codes
    rank = np.empty(len(order), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(order))
    return table[np.asarray(order, dtype=np.int64)], rank[codes]


@dataclass
class BoundPoints:
    """Points bound to a model's tensors: the differentiated columns ``varied`` ``[P, n]``
    (float64), the held inputs, and every input's array as read (for ``arrays.npz``)."""

    varied: np.ndarray
    binding: Binding
    arrays: dict[str, np.ndarray]
    column_names: list[str]


def choose_varied(signature: Signature, fixed: tuple[str, ...], input_key: str | None = None) -> tuple[list, list]:
    """The inputs to differentiate and the ones to hold: integer, boolean and string inputs,
    those named in ``inputs.fixed``, and (with ``model.input_key``) all but that one are held."""
    names = [t.name for t in signature.inputs]
    for i, name in enumerate(fixed):
        if name not in names:
            raise InputError(f"inputs.fixed[{i}]", f"'{name}' is not an input of the model; it takes: "
                                                   f"{', '.join(names)}")
    varied, held = [], []
    for t in signature.inputs:
        hold = not t.is_float or t.name in fixed or (input_key is not None and t.name != input_key)
        (held if hold else varied).append(t)
    if not varied:
        raise InputError("inputs.fixed" if fixed else "model", "no input is left to differentiate: the model's "
                         f"inputs ({', '.join(f'{t.name} ({t.dtype})' for t in signature.inputs)}) are all held "
                         "(integer, boolean or string inputs, or listed in inputs.fixed)")
    return varied, held


def bind_points(points: Points, signature: Signature, fixed: tuple[str, ...] = (),
                input_key: str | None = None, axes: dict[str, Axes] | None = None) -> BoundPoints:
    """Match the points to the model's named inputs (CSV columns by name, in any order;
    ``npz`` arrays and mappings by input name) and split them into differentiated
    columns and held inputs."""
    varied_t, held_t = choose_varied(signature, fixed, input_key)
    arrays = _arrays_by_input(points, signature)
    held = []
    for t in held_t:
        table, codes = _codes(arrays[t.name])
        table = table if t.dtype == "string" else table.astype(t.dtype)
        held.append(HeldInput(t, table, codes))
    cols = []
    for t in varied_t:
        a = arrays[t.name]
        if a.dtype.kind not in "iuf":
            raise InputError(points.source, f"input '{t.name}' ({t.dtype}) needs numbers, got {a.dtype} values")
        cols.append(a.reshape(len(a), -1).astype(np.float64))
    varied = np.concatenate(cols, axis=1)
    binding = Binding(signature, tuple(varied_t), tuple(held), dict(axes or {}))
    names = binding.column_names()
    bad = ~np.isfinite(varied)
    if bad.any():
        where = np.argwhere(bad)
        shown = ", ".join(f"point {p} ({'row ' + str(points.lines[p]) + ' of the file, ' if points.lines else ''}"
                          f"input '{names[j]}')" for p, j in where[:5])
        more = f" and {len(where) - 5} more" if len(where) > 5 else ""
        raise InputError(points.source, f"{len(where)} value(s) are NaN or infinite: {shown}{more}. Derivatives "
                                        "at such points are meaningless; remove or fix those points.")
    return BoundPoints(varied, binding, arrays, names)


def _arrays_by_input(points: Points, signature: Signature) -> dict[str, np.ndarray]:
    """Every model input's values ``[P, *shape]`` from the points, checked against the model."""
    expected = {t.name: t for t in signature.inputs}
    wanted = ", ".join(f"{t.name} {list(t.shape)} {t.dtype}" for t in signature.inputs)
    if points.arrays is not None:  # npz, or a list of mappings
        given = points.arrays
        missing = [n for n in expected if n not in given]
        extra = [n for n in given if n not in expected]
        if missing or extra:
            what = (f"no values for {', '.join(missing)}" if missing else "") + \
                   ("; " if missing and extra else "") + (f"'{extra[0]}' is not an input of the model" if extra else "")
            raise InputError(points.source, f"{what}. The model takes: {wanted}")
        out = {}
        for name, t in expected.items():
            a = np.asarray(given[name])
            if a.ndim == 1 and t.shape == (1,):
                a = a[:, None]
            if tuple(a.shape[1:]) != t.shape and a.reshape(len(a), -1).shape[1] == t.size:
                a = a.reshape((len(a),) + t.shape)
            if tuple(a.shape[1:]) != t.shape:
                raise InputError(points.source, f"input '{name}' takes points of shape {list(t.shape)}, got "
                                                f"{list(a.shape[1:])}")
            out[name] = _as_dtype(a, t, points.source)
        counts = {len(a) for a in out.values()}
        if len(counts) != 1:
            raise InputError(points.source, "the inputs have different numbers of points: " +
                             ", ".join(f"{n} {len(a)}" for n, a in out.items()))
        return out
    if points.columns is None:
        raise InputError(points.source, f"the model has {len(signature.inputs)} inputs ({wanted}); give the points "
                                        "as a CSV whose columns name them, an npz file with one array per input, or "
                                        "a list of mappings under inputs.points.values")
    columns = points.columns
    needed = [(t, t.element_names()) for t in signature.inputs]
    all_needed = [c for _, names in needed for c in names]
    missing = [c for c in all_needed if c not in columns]
    extra = [c for c in columns if c not in set(all_needed)]
    if missing:
        raise InputError(points.source, f"no column '{missing[0]}'" + (f" (and {len(missing) - 1} more)" if
                                                                        len(missing) > 1 else "") +
                         f" in the CSV; the model takes: {wanted} (a vector input takes columns name[0], name[1], ...)")
    if extra:
        raise InputError(points.source, f"column '{extra[0]}' is not an input of the model; it takes: {wanted}")
    out = {}
    for t, names in needed:
        a = np.stack([columns[c] for c in names], axis=1)
        out[t.name] = _as_dtype(a.reshape((len(a),) + t.shape), t, points.source, names, points)
    return out


def _as_dtype(a: np.ndarray, t: TensorInfo, source: str, names: list[str] | None = None, points=None) -> np.ndarray:
    """``a`` in the input's dtype; numbers refused for string inputs and text for the others."""
    if t.dtype == "string":
        if a.dtype.kind not in "USO":
            return a.astype(str).astype(object)
        return a.astype(object)
    if a.dtype.kind in "USO":
        flat = a.reshape(len(a), -1)
        for j in range(flat.shape[1]):
            for i, cell in enumerate(flat[:, j]):
                try:
                    float(cell)
                except (TypeError, ValueError):
                    line = f"line {points.lines[i]}, " if points is not None and points.lines else f"point {i}, "
                    col = names[j] if names else t.name
                    raise InputError(source, f"{line}column '{col}': '{cell}' is not a number (input '{t.name}' "
                                             f"is {t.dtype})") from None
        a = flat.astype(np.float64).reshape(a.shape)
    if t.dtype == "bool":
        return a.astype(bool)
    if t.is_float:
        return a.astype(np.float64)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a) & (a == np.round(a))):
        raise InputError(source, f"input '{t.name}' is {t.dtype}: its values must be whole numbers")
    return a.astype(t.dtype)
