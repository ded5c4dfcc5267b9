"""Statistics the report needs beyond the measures: spread, per-point ranks, stability.

Pure numpy, like :mod:`sensreport.measures`: every function takes arrays and returns
arrays or plain numbers. Derivative arrays are ``D[p, i, j] = d y_i / d x_j`` at points
``p``; "local" values are one number per point, output and input whose average over the
points is a measure (for example ``|D|`` for mean |dy/dx|).

Conventions shared with :func:`sensreport.measures.ranking`: larger means more
sensitive, NaN ranks last, and ties keep the input order.
"""

from __future__ import annotations


import numpy as np

from .measures import elasticity_guard, input_spread
from .stats import average_ranks, nanmean, quantiles, rank_agreement, rank_correlations, shares

#: Measures with a per-point value whose spread across points is meaningful.
LOCAL_MEASURES = ("mean_abs", "rms", "std_scaled", "elasticity")


def local_values(measure: str, deriv: np.ndarray, points: np.ndarray, outputs: np.ndarray, *,
                 spread: np.ndarray | None = None, guard: np.ndarray | None = None) -> np.ndarray:
    """Each point's contribution to a measure, ``[P, k, n]``.

    Parameters
    ----------
    measure : {"mean_abs", "rms", "std_scaled", "elasticity"}
        ``mean_abs`` and ``rms`` give ``|D|`` (RMS is the root of the mean of its
        square); ``std_scaled`` gives ``|D| * std(x_j)``; ``elasticity`` gives
        ``|x_j / y_i * D|``, NaN where ``|y_i|`` is at or below ``1e-6`` times its
        largest value over the points (the guard of the elasticity measure).
    deriv : ndarray [P, k, n]
        Derivatives; non-finite entries become NaN.
    points : ndarray [P, n]
    outputs : ndarray [P, k]
        The outputs of the ``k`` rows of ``deriv``.
    spread, guard : ndarray [n] and [k], optional
        Each input's standard deviation and each output's elasticity guard; by default
        computed from ``points`` and ``outputs``. Pass the values of the whole run when
        ``deriv`` holds only some of its points.

    Returns
    -------
    ndarray [P, k, n], float64
    """
    return local_from(measure, magnitudes(deriv), points, outputs, spread=spread, guard=guard)


def magnitudes(deriv: np.ndarray) -> np.ndarray:
    """``|D|`` in float64, NaN where ``D`` is not finite: the per-point values of mean
    |dy/dx| and RMS, and what :func:`local_from` scales into the others."""
    a = np.abs(np.asarray(deriv, dtype=np.float64))
    if not np.isfinite(a.max(initial=0.0)):  # one reduction tells the common case: all finite
        a[~np.isfinite(a)] = np.nan
    return a


def local_from(measure: str, a: np.ndarray, points: np.ndarray, outputs: np.ndarray, *,
               spread: np.ndarray | None = None, guard: np.ndarray | None = None) -> np.ndarray:
    """:func:`local_values` from the derivatives' :func:`magnitudes` ``a`` (``a`` itself
    for ``mean_abs`` and ``rms``)."""
    if measure in ("mean_abs", "rms"):
        return a
    x = np.asarray(points, dtype=np.float64)
    if measure == "std_scaled":
        spread = input_spread(x) if spread is None else np.asarray(spread, dtype=np.float64)
        return a * spread[None, None, :]
    if measure == "elasticity":
        y = np.asarray(outputs, dtype=np.float64)
        finite_y = np.where(np.isfinite(y), np.abs(y), np.nan)
        guard = elasticity_guard(y) if guard is None else np.asarray(guard, dtype=np.float64)
        safe = np.where(finite_y > np.maximum(guard, np.finfo(np.float64).tiny), y, np.nan)
        e = a * x[:, None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(e, safe[:, :, None], out=e)
        return np.abs(e, out=e)
    raise ValueError(f"no per-point values for measure {measure!r}")



def overall_local(local: np.ndarray) -> np.ndarray:
    """Per-point overall values ``[P, n]`` from local values ``[P, k, n]``.

    At every point each output's row is turned into shares over the inputs, and the
    shares are averaged over outputs: the per-point analogue of
    :func:`sensreport.measures.overall`.
    """
    acc = OverallLocal()
    acc.add(local)
    return acc.result()


class OverallLocal:
    """:func:`overall_local` from the local values of a block of outputs at a time
    (``add`` them in output order), the same numbers: the shares of every output are
    summed one output after the other, as numpy's mean over the outputs axis sums them."""

    def __init__(self):
        self.total: np.ndarray | None = None
        self.count: np.ndarray | int = 0

    def add(self, local: np.ndarray) -> None:
        self.add_shares(*self.shares(local))

    @staticmethod
    def shares(local: np.ndarray) -> tuple[np.ndarray, np.ndarray | int]:
        """The shares of a block's local values ``[P, k, n]`` (0 where there is none) and
        how many outputs had one at each point and input: what :meth:`add_shares` sums.
        Pure, so blocks can be turned into shares on several threads and added in order."""
        v = np.asarray(local, dtype=np.float64)
        total = v.sum(axis=-1, keepdims=True)
        if np.isfinite(total).all() and (total > 0).all():  # the same numbers as shares(), without nansum's copies
            return v / total, v.shape[1]
        part = shares(v, axis=-1)
        seen = ~np.isnan(part)
        return np.where(seen, part, 0.0), seen.sum(axis=1)

    def add_shares(self, part: np.ndarray, count: np.ndarray | int) -> None:
        """Add a block's :meth:`shares` (blocks in output order)."""
        if self.total is None:
            self.total = np.zeros((part.shape[0], part.shape[2]))
        for i in range(part.shape[1]):
            self.total += part[:, i]
        self.count = self.count + count

    def result(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):  # no finite share: NaN, as nanmean gives
            return self.total / self.count


def rank_stability(local: np.ndarray, aggregate: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """How much each point's ranking of the inputs agrees with the aggregate ranking.

    Parameters
    ----------
    local : ndarray [P, m, n]
        Per-point values (see :func:`local_values`).
    aggregate : ndarray [m, n]
        The measure the report ranks by.
    k : int
        Size of the top set compared by :func:`top_k_overlap`.

    Returns
    -------
    dict
        ``spearman [P, m]`` and ``overlap [P, m]`` per point; ``median_spearman [m]``
        (NaN where no point has an order to compare) and ``mean_overlap [m]``.
    """
    agg = np.asarray(aggregate, dtype=np.float64)[None]
    rho, overlap = rank_agreement(local, agg, k, axis=-1)  # = spearman(local, agg), top_k_overlap(local, agg, k)
    return stability_summary(rho, overlap)


def stability_summary(rho: np.ndarray, overlap: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`rank_stability`'s dict from each point's Spearman coefficients and top-k
    overlaps ``[P, m]``."""
    return {
        "spearman": rho,
        "overlap": overlap,
        "median_spearman": quantiles(rho, (50,), axis=0)[0],
        "mean_overlap": overlap.mean(axis=0),
    }


def sign_shares(deriv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shares of points with a positive and with a negative derivative, ``([k, n], [k, n])``.

    Non-finite derivatives are left out of the count; zeros are neither.
    """
    d = np.asarray(deriv, dtype=np.float64)
    finite = np.isfinite(d)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(count > 0, (finite & (d > 0)).sum(axis=0) / np.maximum(count, 1), np.nan)
        neg = np.where(count > 0, (finite & (d < 0)).sum(axis=0) / np.maximum(count, 1), np.nan)
    return pos, neg


def direction_stats(deriv: np.ndarray, chunk_points: int = 4096) -> dict[str, np.ndarray]:
    """:func:`signed_mean` and :func:`sign_shares` of ``[P, k, n]``, a chunk of points at a time.

    For arrays too large to copy at once (e.g. memory-mapped ones); returns
    ``{"mean", "positive", "negative"}``, each ``[k, n]``, equal to the whole-array
    functions.
    """
    total = count = pos = neg = 0
    for start in range(0, len(deriv), chunk_points):
        d = np.asarray(deriv[start:start + chunk_points], dtype=np.float64)
        finite = np.isfinite(d)
        dz = np.where(finite, d, 0.0)
        total = total + dz.sum(axis=0)
        count = count + finite.sum(axis=0)
        pos = pos + (dz > 0).sum(axis=0)
        neg = neg + (dz < 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.asarray(count, dtype=np.float64)
        return {name: np.where(c > 0, v / np.maximum(c, 1), np.nan)
                for name, v in (("mean", total), ("positive", pos), ("negative", neg))}


def signed_mean(deriv: np.ndarray) -> np.ndarray:
    """Mean derivative over the points, ``[k, n]``, non-finite entries left out."""
    d = np.asarray(deriv, dtype=np.float64)
    return nanmean(np.where(np.isfinite(d), d, np.nan), axis=0)


def clip_range(values: np.ndarray, percentile: float = 98.0, symmetric: bool = False, min_count: int = 50) -> dict:
    """A colour range that ignores outliers: ``{low, high, clipped, total}``.

    ``symmetric=False``: ``low`` is the smallest finite value and ``high`` the
    ``percentile``-th percentile. ``symmetric=True`` (diverging scales centred on 0):
    ``high`` is the ``percentile``-th percentile of ``|values|`` and ``low = -high``.
    With fewer than ``min_count`` finite values the 100th percentile is used (the
    98th percentile of a handful of cells would clip ordinary values, not outliers).
    ``clipped`` counts the finite values outside ``[low, high]``; ``total`` the finite
    values. Where the percentile is 0 (or nothing is finite) the largest magnitude is
    used instead, and 1 when that is 0 too, so the range is never empty.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"low": -1.0 if symmetric else 0.0, "high": 1.0, "clipped": 0, "total": 0}
    if v.size < min_count:
        percentile = 100.0
    if symmetric:
        a = np.abs(v)
        high = float(np.percentile(a, percentile))
        if high <= 0:
            high = float(a.max()) or 1.0
        low = -high
    else:
        low = float(v.min())
        high = float(np.percentile(v, percentile))
        if high <= low:
            high = float(v.max()) if v.max() > low else low + 1.0
    clipped = int(((v < low) | (v > high)).sum())
    return {"low": low, "high": high, "clipped": clipped, "total": int(v.size)}


def subsample_indices(total: int, budget: int) -> np.ndarray:
    """At most ``budget`` indices out of ``range(total)``, evenly spaced, first and last included.

    All indices when ``total <= budget``; ``subsample_indices(10, 4) == [0, 3, 6, 9]``.
    """
    budget = max(1, int(budget))
    if total <= budget:
        return np.arange(total)
    if budget == 1:
        return np.array([0])
    return np.unique(np.round(np.linspace(0, total - 1, budget)).astype(np.int64))


def image_axes(shape) -> dict | None:
    """How to show a flattened input of ``shape`` as an image, or None for vectors.

    Rank 2 ``[H, W]`` is an image as it is. Rank 3 has a channel axis: the last when
    its size is at most 4 (``[28, 28, 1]``, ``[32, 32, 3]``), else the first when that
    one is (``[3, 32, 32]``), else the last. Higher ranks keep the first two axes and
    reduce all others. Returns ``{height, width, reduced}`` with ``reduced`` the axes
    averaged away.
    """
    shape = [int(s) for s in shape]
    if len(shape) < 2:
        return None
    if len(shape) == 2:
        return {"height": shape[0], "width": shape[1], "reduced": []}
    if len(shape) == 3:
        channel = 2 if shape[2] <= 4 or shape[0] > 4 else 0
        keep = [a for a in range(3) if a != channel]
        return {"height": shape[keep[0]], "width": shape[keep[1]], "reduced": [channel]}
    return {"height": shape[0], "width": shape[1], "reduced": list(range(2, len(shape)))}


def to_image(values: np.ndarray, shape, absolute: bool = True) -> np.ndarray:
    """Flattened per-input values ``[..., n]`` as images ``[..., H, W]`` (see :func:`image_axes`).

    Reduced axes (channels) are averaged: of ``|value|`` when ``absolute`` (how
    strongly the pixel matters in any channel), else of the signed values.
    """
    axes = image_axes(shape)
    if axes is None:
        raise ValueError(f"shape {list(shape)} is not image-shaped")
    v = np.asarray(values, dtype=np.float64)
    lead = v.shape[:-1]
    img = v.reshape(lead + tuple(int(s) for s in shape))
    if absolute:
        img = np.abs(img)
    if axes["reduced"]:
        off = len(lead)
        img = nanmean(img, axis=tuple(off + a for a in axes["reduced"]))
    return img




def slope_correlations(slopes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Spearman correlation of each slope column with each input's values over the points.

    Parameters
    ----------
    slopes : ndarray [P, c]
        Derivatives of one output at the points (some of its inputs' columns).
    points : ndarray [P, n]

    Returns
    -------
    ndarray [c, n]: ``spearman(slopes[:, a], points[:, i])``, the numbers of
    :func:`~.stats.spearman` (average ranks, NaN ranked lowest; NaN where a side is
    constant), as one product of the centred ranks.
    """
    return rank_correlations(average_ranks(np.asarray(slopes, dtype=np.float64).T),
                             average_ranks(np.asarray(points, dtype=np.float64).T))


def interaction_partners(slopes: np.ndarray, points: np.ndarray, columns=None) -> np.ndarray:
    """For each input ``j``, the other input whose values go most with ``d y / d x_j`` over the
    points (largest |Spearman correlation|): what a dependence plot colours by, since a
    derivative that changes with another input is an interaction.

    Parameters
    ----------
    slopes : ndarray [P, n]
        One output's derivatives at the points.
    points : ndarray [P, n]
    columns : sequence of int, optional
        The inputs to find partners for (default all).

    Returns
    -------
    ndarray [len(columns)] of int: the partner of each input (itself when there is no
    other input or no correlation can be computed).
    """
    d = np.asarray(slopes, dtype=np.float64)
    n = d.shape[1]
    cols = np.arange(n) if columns is None else np.asarray(columns, dtype=np.intp)
    if n < 2 or len(d) < 3:
        return cols.copy()
    return partners_from(slope_correlations(d[:, cols], points), cols)


def partners_from(corr: np.ndarray, columns) -> np.ndarray:
    """The partner of each input ``columns[a]`` from :func:`slope_correlations` ``corr [c, n]``:
    the other input of largest |correlation|, the first of equals; itself where none is finite."""
    cols = np.asarray(columns, dtype=np.intp)
    c = np.abs(np.asarray(corr, dtype=np.float64))
    c = np.where(np.isfinite(c), c, -1.0)
    c[np.arange(len(cols)), cols] = -1.0
    best = c.argmax(axis=1)
    return np.where(c[np.arange(len(cols)), best] >= 0, best, cols)
