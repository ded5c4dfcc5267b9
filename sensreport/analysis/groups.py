"""Group measures: one value per feature group from its members' measures (pure numpy).

A group's mean |dy/dx|, std-scaled sensitivity and elasticity are the sums of its
members' (how much the output moves when all of them move by their unit, their typical
spread, one percent); its RMS derivative is the root of the members' summed squares,
since the derivative-based global sensitivity measure ``nu = E[(dy/dx)^2]`` adds up
over inputs (Sobol' & Kucherenko 2009); its overall share is the sum of its members'
shares. The share of positive derivatives is a direction and has no group value (NaN,
null in results.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .measures import UNITLESS


@dataclass(frozen=True)
class GroupMeasures:
    """``measures[name]`` ``[k, g]`` and ``overall[name]`` ``[g]`` for the groups ``names``
    (in the spec's order, then the automatic ones), whose members are column indices."""

    names: list[str]
    members: list[tuple[int, ...]]
    measures: dict[str, np.ndarray]
    overall: dict[str, np.ndarray]


def _sum(values: np.ndarray, members: tuple[int, ...]) -> np.ndarray:
    """Sum over the members along the last axis; NaN members left out, NaN when all are."""
    part = values[..., list(members)]
    finite = np.isfinite(part)
    return np.where(finite.any(-1), np.where(finite, part, 0.0).sum(-1), np.nan)


def group_measures(measures: dict[str, np.ndarray], overall: dict[str, np.ndarray],
                   groups: dict[str, tuple[int, ...]]) -> GroupMeasures | None:
    """Every measure of every group from the per-input ``measures`` ``[k, n]`` and
    ``overall`` shares ``[n]``; None without groups or measures."""
    if not groups or not measures:
        return None
    names, members = list(groups), [tuple(groups[g]) for g in groups]
    per, tot = {}, {}
    for m, values in measures.items():
        v = np.asarray(values, dtype=np.float64)
        o = np.asarray(overall[m], dtype=np.float64)
        if m in UNITLESS:
            per[m] = np.full((v.shape[0], len(names)), np.nan)
            tot[m] = np.full(len(names), np.nan)
            continue
        if m == "rms":
            per[m] = np.stack([np.sqrt(_sum(v**2, g)) for g in members], axis=-1)
        else:
            per[m] = np.stack([_sum(v, g) for g in members], axis=-1)
        tot[m] = np.array([_sum(o, g) for g in members], dtype=np.float64)
    return GroupMeasures(names, members, per, tot)
