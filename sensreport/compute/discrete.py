"""Discrete effects (``methods.discrete``): what changes when a held input takes another value.

Derivatives say nothing about an integer category. For each point and each listed held
input, the model is evaluated with that input set to each value seen in the points,
the other inputs unchanged: ``values[p, u, i]`` is output ``i`` at point ``p`` with the
input at its ``u``-th value. One batched evaluation per value, in chunks that fit the
memory budget. Means over points are taken by the analysis (:class:`DiscreteEffect`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: Distinct values a held input may have for methods.discrete (one model evaluation each).
MAX_VALUES = 100


@dataclass(frozen=True)
class DiscreteEffect:
    """The outputs ``values [P, U, m]`` of every point with held input ``input`` at each
    of its ``U`` values (``labels``); ``codes [P]`` is each point's own value.

    ``mean_effect[a, b, i]``: over the points whose value is ``a``, the mean change of
    output ``i`` when the input takes value ``b`` instead (0 on the diagonal; NaN
    where no point has value ``a``).
    """

    input: str
    labels: list
    codes: np.ndarray
    values: np.ndarray
    seconds: float

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.labels))

    @property
    def mean_effect(self) -> np.ndarray:
        P, U, m = self.values.shape
        own = self.values[np.arange(P), self.codes]  # [P, m]
        change = self.values - own[:, None, :]  # [P, U, m]
        total = np.zeros((U, U, m))
        np.add.at(total, self.codes, change)
        counts = self.counts.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts[:, None, None] > 0, total / np.maximum(counts, 1)[:, None, None], np.nan)


def check_discrete(inputs: tuple[str, ...], held) -> None:
    """``methods.discrete.inputs`` must name held inputs with at most MAX_VALUES values."""
    by_name = {h.info.name: h for h in held}
    for i, name in enumerate(inputs):
        key = f"methods.discrete.inputs[{i}]"
        if name not in by_name:
            shown = ", ".join(by_name) or "none"
            raise InputError(key, f"'{name}' is not a held input; discrete effects are for held (integer, boolean, "
                                  f"string or inputs.fixed) inputs; this model's held inputs: {shown}")
        if len(by_name[name].table) > MAX_VALUES:
            raise InputError(key, f"'{name}' takes {len(by_name[name].table):,} distinct values in the points; "
                                  f"discrete effects evaluate the model once per value, at most {MAX_VALUES}")


def discrete_effects(target, x: np.ndarray, held, inputs: tuple[str, ...], budget: int) -> list[DiscreteEffect]:
    """For each held input in ``inputs``: the model's outputs with it at each value seen.

    ``x`` are the engine's points ``[P, width]`` (differentiated columns, then one code
    column per held input, in ``held``'s order).
    """
    check_discrete(inputs, held)
    order = [h.info.name for h in held]
    out = []
    for name in inputs:
        t0 = time.perf_counter()
        j = order.index(name)
        h = held[j]
        col = target.n + j
        ys = []
        for u in range(len(h.table)):
            xu = np.array(x, copy=True)
            xu[:, col] = u
            ys.append(target.evaluate(xu, memory_budget=budget // 2).astype(np.float64))
        out.append(DiscreteEffect(name, h.values_seen(len(h.table)), np.asarray(h.codes), np.stack(ys, axis=1),
                                  time.perf_counter() - t0))
    return out
