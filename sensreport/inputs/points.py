"""Input points: inline values, CSV, .npy, .npz or a seeded sample.

For a model with one input tensor the points are one float64 array; for a model with
several (named) inputs they stay as read, by column or by input name, until
:func:`~sensreport.inputs.tensors.bind_points` matches them to the model."""

from __future__ import annotations

import csv
import itertools
import warnings as warnings_module
from dataclasses import dataclass, field

import numpy as np

from ..distributions import resolve
from ..errors import InputError
from ..sizes import format_bytes
from ..spec import PointsSpec
from ..spec.objects import is_array, is_frame


@dataclass
class Points:
    """Points ``[P, *point_shape]`` (float64, or float32 from a float32 .npy file) and the
    input names a file gave, if any.

    A CSV also keeps its ``columns`` by header name (numbers as float64, text as str);
    ``values`` is then None when a column holds text. An npz file or a list of mappings
    gives ``arrays`` by model input name instead (``values`` None).
    """

    values: np.ndarray | None
    names: list[str] | None
    source: str  # spec key the points came from
    seed: int | None = None
    lines: list[int] | None = None  # a file's line of each point (CSV)
    columns: dict[str, np.ndarray] | None = None
    arrays: dict[str, np.ndarray] | None = None
    #: why ``values`` is None for a CSV: the first cell that is not a number
    not_a_number: str | None = None
    design: str | None = None  # a sample's method: random | sobol | halton | lhs
    #: what may make the numbers differ from the truth (a Sobol' sample of n not a power of two)
    warnings: list[str] = field(default_factory=list)

    @property
    def point_shape(self) -> tuple[int, ...] | None:
        return tuple(self.values.shape[1:]) if self.values is not None else None

    @property
    def count(self) -> int:
        if self.values is not None:
            return len(self.values)
        if self.arrays:
            return len(next(iter(self.arrays.values())))
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def numeric(self) -> np.ndarray:
        """``values``, or the CSV's first text cell as a spec error (a model with one input
        tensor takes numbers only)."""
        if self.values is None:
            raise InputError(self.source, self.not_a_number or "the points are given by input name, but the model "
                                                               "has one input tensor: give them as numbers")
        return self.values


def index_names(prefix: str, shape: tuple[int, ...]) -> list[str]:
    """Readable names for the flattened entries of a tensor: ``x``, ``x[2]``, ``y[0,2]``."""
    if not shape:
        return [prefix]
    return [f"{prefix}[{','.join(map(str, idx))}]" for idx in itertools.product(*(range(s) for s in shape))]


def load_points(spec: PointsSpec, names: tuple[str, ...] | None = None, *, budget: int | None = None) -> Points:
    """Load the points a spec names and check that every value is finite.

    ``names`` are the spec's ``inputs.names`` (a sample needs them; messages use them).
    With a ``budget`` (bytes), points that alone would not fit in it are refused before
    they are drawn or read.
    """
    if spec.kind == "values" and (is_frame(spec.values) or is_array(spec.values)):  # given in a spec mapping
        result = _from_object(spec.values)
    elif spec.kind == "values" and all(isinstance(v, dict) for v in spec.values):
        result = _from_mappings(spec.values)
    elif spec.kind == "values":
        result = Points(_from_values(spec.values), None, "inputs.points.values")
    elif spec.kind == "npz":
        result = _from_npz(spec.path, budget)
    elif spec.kind == "csv":
        result = _from_csv(spec.path, budget)
    elif spec.kind == "npy":
        result = _from_npy(spec.path, budget)
    elif spec.kind == "sample":
        names = names or ()
        _check_size("inputs.points.sample.n", spec.n, len(names), budget)
        result = _sample(spec, names)
    else:  # pragma: no cover - the spec schema allows no other kind
        raise ValueError(spec.kind)
    if result.values is not None:
        _check_finite(result, names)
    return result


def _from_mappings(values: list) -> Points:
    """A list of points, each a mapping of model input name to its value."""
    key = "inputs.points.values"
    names = list(values[0])
    for i, point in enumerate(values):
        if list(point) != names and set(point) != set(names):
            missing = [n for n in names if n not in point] or [n for n in point if n not in names]
            raise InputError(f"{key}[{i}]", f"point {i} names {', '.join(point)}, point 0 names {', '.join(names)} "
                                            f"(differs in {missing[0]}); every point needs the same inputs")
    arrays = {}
    for name in names:
        column = [point[name] for point in values]
        texts = [isinstance(v, str) for v in column]
        if any(texts) and not all(texts):
            raise InputError(key, f"input '{name}' mixes text and numbers; string values are for string inputs only")
        try:
            arrays[name] = np.array(column, dtype=object if all(texts) else None)
        except ValueError:
            raise InputError(key, f"input '{name}': every point's value needs the same shape") from None
        if not all(texts) and arrays[name].dtype.kind not in "iufb":
            raise InputError(key, f"input '{name}': expected numbers (or lists of numbers), got "
                                  f"{type(column[0]).__name__} values")
    return Points(None, None, key, arrays=arrays)


def _from_npz(path, budget: int | None) -> Points:
    key = "inputs.points.npz"
    try:
        _check_file_size(key, path, budget)
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.array(data[name]) for name in data.files}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
        raise InputError(key, f"cannot read {path.name} as an .npz file: {_first_line(exc)}") from None
    if not arrays:
        raise InputError(key, f"{path.name} holds no arrays; it needs one array per model input, named by the input")
    for name, a in arrays.items():
        if a.ndim < 1 or len(a) == 0:
            raise InputError(key, f"array '{name}' of {path.name} has no points (shape {list(a.shape)})")
        if a.dtype.kind not in "iufbU":
            raise InputError(key, f"array '{name}' of {path.name} holds {a.dtype}; expected numbers, booleans or text")
    return Points(None, None, key, arrays=arrays)


def _check_file_size(key: str, path, budget: int | None) -> None:
    """A points file larger than the whole memory budget is refused before it is read."""
    size = path.stat().st_size
    if budget is not None and size > budget:
        raise InputError(key, f"{path.name} is {format_bytes(size)}, more than the whole memory budget "
                              f"({format_bytes(budget)}); use fewer points or raise execution.memory_budget.")


def _check_size(key: str, points: int, per_point: int, budget: int | None, itemsize: int = 8) -> None:
    need = int(points) * max(1, int(per_point)) * itemsize
    if budget is not None and need > budget:
        raise InputError(
            key,
            f"{points:,} points of {per_point:,} values take {format_bytes(need)} as numbers, more than the whole "
            f"memory budget ({format_bytes(budget)}); use fewer points or raise execution.memory_budget.",
        )


def _from_object(obj) -> Points:
    """A numpy array or a pandas DataFrame (whose columns name the inputs) given in a spec
    mapping, copied: the caller may change its array after the run."""
    if is_frame(obj):
        names = [str(c) for c in obj.columns]
        columns = {}
        for name, c in zip(names, obj.columns):
            col = obj[c].to_numpy(copy=True)
            columns[name] = col.astype(object) if col.dtype.kind in "OUS" else col.astype(np.float64)
        text = [n for n, col in columns.items() if col.dtype == object]
        problem = f"column '{text[0]}' of the DataFrame holds text" if text else None
        values = None if text else _from_values(obj.to_numpy(copy=True))
        return Points(values, names, "inputs.points.values", columns=columns, not_a_number=problem)
    return Points(_from_values(np.array(obj, copy=True)), None, "inputs.points.values")


def _from_values(values) -> np.ndarray:
    problem = ("expected a list of points, each a number or a (nested) list of numbers of the same shape")
    try:
        pts = np.asarray(values)
    except (TypeError, ValueError, RecursionError):
        raise InputError("inputs.points.values", problem) from None
    if pts.dtype.kind not in "iuf" or pts.ndim == 0 or pts.size == 0:
        raise InputError("inputs.points.values", problem + (" (numbers, not text)" if pts.dtype.kind in "USO" else ""))
    return pts.astype(np.float64)


def _from_npy(path, budget: int | None) -> Points:
    key = "inputs.points.npy"
    try:
        pts = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
        raise InputError(key, f"cannot read {path.name} as a .npy array: {_first_line(exc)}") from None
    if not isinstance(pts, np.ndarray) or pts.ndim < 1 or pts.shape[0] == 0 or pts.size == 0:
        raise InputError(key, f"expected a numeric array [points, ...], got {getattr(pts, 'shape', 'no array')}")
    if np.issubdtype(pts.dtype, np.complexfloating):
        raise InputError(key, f"{path.name} holds complex numbers ({pts.dtype}); sensreport differentiates real "
                              "functions of real inputs: save the real and imaginary parts as separate inputs")
    if not (np.issubdtype(pts.dtype, np.integer) or np.issubdtype(pts.dtype, np.floating)):
        raise InputError(key, f"expected a numeric array [points, ...], got shape {pts.shape} of {pts.dtype}")
    # float32 files stay float32 (half the memory for image-sized points); the engine
    # converts each chunk to the dtype it computes in
    dtype = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
    _check_size(key, pts.shape[0], int(np.prod(pts.shape[1:], dtype=np.int64)), budget, np.dtype(dtype).itemsize)
    try:
        values = np.array(pts, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise InputError(key, f"cannot read {path.name} as a .npy array: {_first_line(exc)}") from None
    return Points(values, None, key)


def _from_csv(path, budget: int | None = None) -> Points:
    key = "inputs.points.csv"
    try:
        _check_file_size(key, path, budget)
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a byte-order mark is not a name
            reader = csv.reader(fh)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(key, f"cannot read {path.name}: {exc}") from None
    if len(rows) < 2:
        raise InputError(key, f"{path.name} needs a header row of input names and at least one row of values")
    header_line, header = rows[0][0], [h.strip() for h in rows[0][1]]
    if all(_is_number(h) for h in header):
        raise InputError(key, f"{path.name} line {header_line} holds numbers ({', '.join(header[:4])}), not input "
                              "names: the first row must be a header of input names (add one)")
    empty = [j + 1 for j, h in enumerate(header) if not h]
    if empty:
        raise InputError(key, f"{path.name} line {header_line}: column {empty[0]} of the header has no name")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InputError(key, f"{path.name} line {header_line}: the header repeats {', '.join(repr(h) for h in repeated)}; "
                              "every input needs a name of its own")
    values = np.empty((len(rows) - 1, len(header)))
    text: dict[int, list[str]] = {}  # columns holding text (a string input's), as read
    problem = None
    for i, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise InputError(key, f"{path.name} line {line} has {len(row)} fields, the header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                if "_" in cell:
                    raise ValueError(cell)  # float() reads 1_000; a CSV does not
                values[i, j] = float(cell)
            except ValueError:
                if j not in text:
                    text[j] = [r[j].strip() for _, r in rows[1:] if len(r) == len(header)]
                    if problem is None:
                        problem = f"{path.name} line {line}, column '{header[j]}': '{cell}' is not a number"
                values[i, j] = np.nan
    columns = {h: (np.array(text[j], dtype=object) if j in text else values[:, j]) for j, h in enumerate(header)}
    return Points(None if text else values, header, key, lines=[line for line, _ in rows[1:]], columns=columns,
                  not_a_number=problem)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sample(spec: PointsSpec, names: tuple[str, ...]) -> Points:
    """Draw the sample: ``random`` as independent draws (uniform and normal columns exactly
    as they have always been drawn), ``sobol``, ``halton`` or ``lhs`` as a scrambled design
    on the unit cube whose columns go through each input's inverse CDF."""
    dists = resolve(spec.distributions, list(names))
    warnings: list[str] = []
    if spec.method == "random":
        rng = np.random.default_rng(spec.seed)
        cols = []
        for d in dists:
            if d.kind == "uniform":
                cols.append(rng.uniform(*d.params, spec.n))
            elif d.kind == "normal":
                cols.append(rng.normal(*d.params, spec.n))
            else:
                cols.append(d.ppf(_inside(rng.random(spec.n))))
    else:
        u = _inside(design(spec.method, spec.n, len(names), spec.seed))
        cols = [d.ppf(u[:, j]) for j, d in enumerate(dists)]
        if spec.method == "sobol" and spec.n & (spec.n - 1):
            low = 1 << (spec.n.bit_length() - 1)
            warnings.append(f"inputs.points.sample: a Sobol' design of {spec.n:,} points, not a power of two, loses "
                            f"the sequence's balance properties (its integration error is larger); use n: {low:,} "
                            f"or n: {2 * low:,}.")
    values = np.stack(cols, axis=1)
    return Points(values, list(names), "inputs.points.sample", seed=spec.seed,
                  columns={n: values[:, j] for j, n in enumerate(names)}, design=spec.method, warnings=warnings)


def design(method: str, n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points of a scrambled ``sobol`` or ``halton`` sequence, or a Latin hypercube
    (``lhs``), on ``[0, 1)^d`` from scipy.stats.qmc; the same seed gives the same points."""
    import inspect

    from scipy.stats import qmc

    engine = {"sobol": qmc.Sobol, "halton": qmc.Halton, "lhs": qmc.LatinHypercube}[method]
    # scipy 1.15 renamed `seed` to `rng`; an int means different streams under the two
    # names, a Generator the same one: pass a Generator, under the name this scipy has
    keyword = "rng" if "rng" in inspect.signature(engine).parameters else "seed"
    kwargs = {keyword: np.random.default_rng(seed)}
    if method != "lhs":
        kwargs["scramble"] = True
    with warnings_module.catch_warnings():
        # Sobol' warns when n is not a power of two; the run's warnings say it instead
        warnings_module.filterwarnings("ignore", message=".*balance properties.*", category=UserWarning)
        return engine(d, **kwargs).random(n)


def _inside(u: np.ndarray) -> np.ndarray:
    """``u`` moved into the open interval (0, 1), where every inverse CDF is finite."""
    tiny = np.finfo(np.float64).tiny
    return np.clip(u, tiny, 1.0 - np.finfo(np.float64).epsneg)


def _check_finite(points: Points, names: tuple[str, ...] | None = None) -> None:
    bad = ~np.isfinite(points.values)
    if not bad.any():
        return
    flat = bad.reshape(len(bad), -1)
    where = np.argwhere(flat)
    width = flat.shape[1]
    names = points.names or (list(names) if names and len(names) == width else index_names("x", points.point_shape))
    shown = ", ".join(
        f"point {p} ({'row ' + str(points.lines[p]) + ' of the file, ' if points.lines else ''}input '{names[j]}')"
        for p, j in where[:5]
    )
    more = f" and {len(where) - 5} more" if len(where) > 5 else ""
    raise InputError(
        points.source,
        f"{len(where)} value(s) are NaN or infinite: {shown}{more}. Derivatives at such points are "
        "meaningless; remove or fix those points.",
    )
