"""Every model input as the later stages describe it: :class:`InputLayout`.

Which tensors the model takes, which of them are differentiated (and which columns of
the Jacobian each one's flattened elements are), which are held at each point's value,
the feature groups (the spec's ``inputs.groups`` and the automatic ones of image and
sequence inputs), and every input's values as read, for ``arrays.npz``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .tensors import Axes, HeldInput, TensorInfo


@dataclass(frozen=True)
class TensorLayout:
    """One model input: its tensor, its flattened names, and its columns of the Jacobian
    (``start``, ``stop``) when it is differentiated (None when it is held)."""

    info: TensorInfo
    names: tuple[str, ...]
    columns: tuple[int, int] | None
    axes: Axes | None = None

    @property
    def fixed(self) -> bool:
        return self.columns is None

    def to_dict(self) -> dict[str, Any]:
        d = {**self.info.to_dict(), "fixed": self.fixed, "names": list(self.names)}
        if self.axes is not None:
            d["axes"] = {"time": list(self.axes.time), "feature": list(self.axes.feature)}
        return d


@dataclass(frozen=True)
class InputLayout:
    """The model's inputs, held inputs, groups and the points by input."""

    tensors: tuple[TensorLayout, ...]
    held: tuple[HeldInput, ...] = ()
    #: group name -> column indices, the spec's groups first, then the automatic ones
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: every model input's values as read, ``[P, *shape]``, by input name
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def tensor(self, name: str) -> TensorLayout:
        return next(t for t in self.tensors if t.info.name == name)

    @property
    def axes(self) -> Axes | None:
        """The named axes of the one differentiated input, when it is a sequence with axes."""
        varied = [t for t in self.tensors if not t.fixed]
        return varied[0].axes if len(varied) == 1 else None

    def held_codes(self) -> np.ndarray | None:
        """Each point's row in each held input's table of values, ``[P, len(held)]``."""
        if not self.held:
            return None
        return np.stack([h.codes for h in self.held], axis=1)


def describe(tensors: list[tuple[TensorInfo, bool]], column_names: list[str], held: tuple[HeldInput, ...],
             axes: dict[str, Axes], arrays: dict[str, np.ndarray], groups: dict[str, tuple[str, ...]]) -> InputLayout:
    """The layout of ``tensors`` (each with whether it is differentiated, in the model's
    order); the differentiated ones take ``column_names`` in that order."""
    out, start = [], 0
    for info, varied in tensors:
        if varied:
            stop = start + info.size
            out.append(TensorLayout(info, tuple(column_names[start:stop]), (start, stop), axes.get(info.name)))
            start = stop
        else:
            out.append(TensorLayout(info, tuple(info.element_names()), None))
    resolved = resolve_groups(groups, column_names, out)
    for name, cols in automatic_groups(out).items():
        resolved.setdefault(name, cols)
    return InputLayout(tuple(out), held, resolved, arrays)


def _pattern(text: str) -> re.Pattern:
    """``numeric[*]`` as a regular expression: ``*`` any text, everything else literal."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", text)) + r"\Z")


def resolve_groups(groups: dict[str, tuple[str, ...]], names: list[str],
                   tensors: list[TensorLayout] | tuple[TensorLayout, ...]) -> dict[str, tuple[int, ...]]:
    """``inputs.groups`` as column indices. A member is a flattened input name, a tensor's
    name (all its elements) or a pattern with ``*``; one that matches nothing, or only a
    held input, is a spec error."""
    index = {n: j for j, n in enumerate(names)}
    by_tensor = {t.info.name: t for t in tensors}
    out: dict[str, tuple[int, ...]] = {}
    for group, members in groups.items():
        cols: list[int] = []
        for i, member in enumerate(members):
            key = f"inputs.groups.{group}[{i}]"
            tensor = by_tensor.get(member)
            if tensor is not None and tensor.fixed:
                raise InputError(key, f"'{member}' is a held (fixed) input; groups gather differentiated inputs")
            if tensor is not None:
                found = list(range(*tensor.columns))
            elif member in index:
                found = [index[member]]
            elif "*" in member:
                rx = _pattern(member)
                found = [j for j, n in enumerate(names) if rx.match(n)]
            else:
                found = []
            if not found:
                shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                raise InputError(key, f"'{member}' matches no differentiated input; they are: {shown} (a tensor's "
                                      "name takes all its elements, * matches any text: numeric[*])")
            cols += [j for j in found if j not in cols]
        out[group] = tuple(cols)
    return out


def automatic_groups(tensors: list[TensorLayout] | tuple[TensorLayout, ...]) -> dict[str, tuple[int, ...]]:
    """Groups of image and sequence inputs: one per time step (or row) along the first
    axis and one per feature (or channel) along the last, where that axis has more than
    one entry. Named ``series[t=3, *]`` / ``series[*, debt_ratio]`` with named axes,
    else ``image[3,*,*]`` / ``image[*,*,2]``."""
    out: dict[str, tuple[int, ...]] = {}
    for t in tensors:
        shape = t.info.shape
        if t.fixed or len(shape) < 2:
            continue
        start = t.columns[0]
        cols = np.arange(t.info.size).reshape(shape) + start
        stars = ",".join("*" for _ in shape[1:])
        if shape[0] > 1:
            for i in range(shape[0]):
                name = t.axes.time_group(t.info.name, t.axes.time[i]) if t.axes else f"{t.info.name}[{i},{stars}]"
                out[name] = tuple(int(c) for c in cols[i].ravel())
        if shape[-1] > 1:
            for f in range(shape[-1]):
                name = (t.axes.feature_group(t.info.name, t.axes.feature[f]) if t.axes
                        else f"{t.info.name}[{stars},{f}]")
                out[name] = tuple(int(c) for c in cols[..., f].ravel())
    return out
