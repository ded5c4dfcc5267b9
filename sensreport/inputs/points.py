"""Input points: inline values, CSV, .npy or a seeded sample, as one float64 array."""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..spec import PointsSpec
from ..spec.objects import is_array, is_frame


@dataclass
class Points:
    """Points ``[P, *point_shape]`` (float64, or float32 from a float32 .npy file) and the
    input names a file gave, if any."""

    values: np.ndarray
    names: list[str] | None
    source: str  # spec key the points came from
    seed: int | None = None

    @property
    def point_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])


def index_names(prefix: str, shape: tuple[int, ...]) -> list[str]:
    """Readable names for the flattened entries of a tensor: ``x``, ``x[2]``, ``y[0,2]``."""
    if not shape:
        return [prefix]
    return [f"{prefix}[{','.join(map(str, idx))}]" for idx in itertools.product(*(range(s) for s in shape))]


def load_points(spec: PointsSpec, names: tuple[str, ...] | None = None) -> Points:
    """Load the points a spec names and check that every value is finite."""
    if spec.kind == "values" and (is_frame(spec.values) or is_array(spec.values)):  # given in a spec mapping
        result = _from_object(spec.values)
    elif spec.kind == "values":
        pts = _from_values(spec.values)
        result = Points(pts, None, "inputs.points.values")
    elif spec.kind == "csv":
        result = _from_csv(spec.path)
    elif spec.kind == "npy":
        try:
            pts = np.load(spec.path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
            raise InputError("inputs.points.npy", f"cannot read {spec.path.name} as a .npy array: {exc}") from None
        if pts.ndim < 1 or pts.shape[0] == 0 or not np.issubdtype(pts.dtype, np.number):
            raise InputError("inputs.points.npy", f"expected a numeric array [points, ...], got shape {pts.shape} of {pts.dtype}")
        # float32 files stay float32 (half the memory for image-sized points); the engine
        # converts each chunk to the dtype it computes in
        dtype = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
        result = Points(pts.astype(dtype, copy=False), None, "inputs.points.npy")
    elif spec.kind == "sample":
        result = _sample(spec, names or ())
    else:  # pragma: no cover - the spec schema allows no other kind
        raise ValueError(spec.kind)
    _check_finite(result)
    return result


def _from_object(obj) -> Points:
    """A numpy array or a pandas DataFrame (whose columns name the inputs) given in a spec
    mapping, copied: the caller may change its array after the run."""
    if is_frame(obj):
        return Points(_from_values(obj.to_numpy(copy=True)), [str(c) for c in obj.columns], "inputs.points.values")
    return Points(_from_values(np.array(obj, copy=True)), None, "inputs.points.values")


def _from_values(values) -> np.ndarray:
    try:
        pts = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            "inputs.points.values",
            "expected a list of points, each a number or a (nested) list of numbers of the same shape",
        ) from None
    return pts


def _from_csv(path) -> Points:
    key = "inputs.points.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(key, f"cannot read {path.name}: {exc}") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise InputError(key, f"{path.name} needs a header row of input names and at least one row of values")
    header = [h.strip() for h in rows[0]]
    values = np.empty((len(rows) - 1, len(header)))
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(key, f"{path.name} line {i} has {len(row)} fields, the header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i - 2, j] = float(cell)
            except ValueError:
                raise InputError(key, f"{path.name} line {i}, column '{header[j]}': '{cell}' is not a number") from None
    return Points(values, header, key)


def _sample(spec: PointsSpec, names: tuple[str, ...]) -> Points:
    rng = np.random.default_rng(spec.seed)
    cols = []
    for name in names:
        kind, a, b = spec.distributions.get(name, spec.distributions.get("default"))
        cols.append(rng.uniform(a, b, spec.n) if kind == "uniform" else rng.normal(a, b, spec.n))
    return Points(np.stack(cols, axis=1), list(names), "inputs.points.sample", seed=spec.seed)


def _check_finite(points: Points) -> None:
    bad = ~np.isfinite(points.values)
    if not bad.any():
        return
    flat = bad.reshape(len(bad), -1)
    where = np.argwhere(flat)
    names = points.names or index_names("x", points.point_shape)
    shown = ", ".join(
        f"point {p} ({'row ' + str(p + 2) + ' of the file, ' if points.source.endswith('csv') else ''}input '{names[j]}')"
        for p, j in where[:5]
    )
    more = f" and {len(where) - 5} more" if len(where) > 5 else ""
    raise InputError(
        points.source,
        f"{len(where)} value(s) are NaN or infinite: {shown}{more}. Derivatives at such points are "
        "meaningless; remove or fix those points.",
    )
