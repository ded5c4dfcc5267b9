"""The measures split by the category of a held input (pure numpy).

For a held input with few distinct values (a region, a product type), the same
measures over the points of each category: does income matter as much in region 3 as
in region 1? Computed with the accumulator behind every measure, one category's points
at a time; the inputs' spread is the one over all points, so the std-scaled values of
the categories compare with each other and with the overall ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import measures as M

#: Held inputs with at most this many distinct values are split by category.
MAX_CATEGORIES = 20


@dataclass(frozen=True)
class CategorySplit:
    """``measures[name]`` ``[U, k, n]`` over the points of each of the ``U`` values of
    held input ``input``; ``counts[u]`` points have value ``values[u]``."""

    input: str
    values: list
    counts: np.ndarray
    measures: dict[str, np.ndarray]


def category_splits(deriv: np.ndarray, points: np.ndarray, outputs: np.ndarray, held, spread: np.ndarray,
                    limit: int = MAX_CATEGORIES) -> list[CategorySplit]:
    """One split per held input (``held``: the inputs stage's held inputs, each with its
    ``codes [P]`` and values) with 2 to ``limit`` distinct values; ``deriv`` ``[P, k, n]``,
    ``points`` ``[P, n]``, ``outputs`` ``[P, k]`` (the measure rows' outputs)."""
    out = []
    guard = M.elasticity_guard(outputs)
    for h in held:
        values = h.values_seen(limit + 1)
        if not 2 <= len(values) <= limit:
            continue
        counts = np.bincount(h.codes, minlength=len(values))
        per: dict[str, list[np.ndarray]] = {}
        for u in range(len(values)):
            rows = np.flatnonzero(h.codes == u)
            acc = M.MeasureAccumulator(deriv.shape[1], deriv.shape[2], guard)
            if len(rows):
                acc.update(deriv[rows], points[rows], outputs[rows])
            for name, v in acc.result(spread).items():
                per.setdefault(name, []).append(v)
        out.append(CategorySplit(h.info.name, values, counts, {k: np.stack(v) for k, v in per.items()}))
    return out
