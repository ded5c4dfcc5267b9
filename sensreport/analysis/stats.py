"""Ranks, correlations, shares and percentiles: the statistics every stage shares (pure numpy).

Conventions: larger means more sensitive, NaN ranks last, ties keep the input order;
Spearman's coefficient uses average ranks for ties.
"""

from __future__ import annotations

import warnings

import numpy as np


def nanmean(a: np.ndarray, axis) -> np.ndarray:
    """Mean leaving NaN out; an all-NaN slice gives NaN without a warning (expected, reported)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def ranking(values: np.ndarray) -> list[int]:
    """Indices ordered from most to least sensitive; NaN last; ties keep input order."""
    v = np.asarray(values, dtype=np.float64)
    key = np.where(np.isnan(v), -np.inf, v)
    return [int(i) for i in np.argsort(-key, kind="stable")]



def shares(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """``values`` divided by their sum along ``axis`` (NaN where that sum is 0 or NaN).

    NaN entries count as 0 in the sum and stay NaN. This is how the overall measure
    makes outputs in different units comparable.
    """
    v = np.asarray(values, dtype=np.float64)
    total = np.nansum(v, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, v / np.where(total > 0, total, 1.0), np.nan)



def quantiles(values: np.ndarray, q=(25, 50, 75), axis: int = 0) -> np.ndarray:
    """Percentiles ``q`` along ``axis``, leaving NaN out; shape ``[len(q), ...]``.

    Linear interpolation between order statistics (numpy's default), so the median of
    ``[1, 2, 3, 4]`` is 2.5 and its 25th percentile 1.75. A slice that is all NaN
    gives NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.shape[axis] == 0:
        return np.full((len(q),) + tuple(np.delete(v.shape, axis)), np.nan)
    return _percentile(v, q, axis)


#: Rows of the first axis copied at once by :func:`axis_last` (8 float64: one cache line).
TRANSPOSE_ROWS = 8


def axis_last(v: np.ndarray, axis: int = 0) -> np.ndarray:
    """A C-contiguous copy of ``v`` with ``axis`` moved last.

    ``np.ascontiguousarray(np.moveaxis(v, 0, -1))`` of a large array writes one element
    per cache line and is many times slower (a second for 64 MB here) than copying a
    few rows at a time, each landing in whole cache lines.
    """
    v = np.asarray(v)
    if axis % max(1, v.ndim) != 0 or v.ndim < 2 or not v.flags.c_contiguous:
        return np.array(np.moveaxis(v, axis, -1), order="C")
    p = v.shape[0]
    flat = v.reshape(p, -1)
    out = np.empty((flat.shape[1], p), dtype=v.dtype)
    for start in range(0, p, TRANSPOSE_ROWS):
        out[:, start:start + TRANSPOSE_ROWS] = flat[start:start + TRANSPOSE_ROWS].T
    return out.reshape(v.shape[1:] + (p,))


def _percentile(v: np.ndarray, q, axis: int) -> np.ndarray:
    """``np.nanpercentile(v, q, axis=axis)`` (linear method), the same numbers.

    numpy partitions along the axis where it lies; along the first axis of a large
    array (points first, as the derivatives are) that walks memory with a stride and is
    several times slower than sorting a contiguous copy with the axis last
    (:func:`axis_last`), which this does; with a NaN numpy takes the slices one by one
    in Python (half a second for 8,192 slices of 976 points), where this counts them.
    """
    moved = axis_last(v, axis)
    moved.sort(axis=-1)
    return sorted_quantiles(moved, q)


def sorted_quantiles(s: np.ndarray, q, scale: np.ndarray | None = None) -> np.ndarray:
    """Percentiles ``q`` of every row of ``s`` (sorted along the last axis, NaN last),
    leaving NaN out, shape ``[len(q), ...]``: numpy's linear method and formula, so the
    numbers are ``np.nanpercentile``'s. With ``scale`` (one non-negative factor per row,
    broadcast against ``s[..., 0]``) they are the percentiles of ``s * scale`` in float64:
    a non-negative factor keeps the order, so the order statistics are those of ``s``
    times it, the same numbers as sorting the product."""
    n = s.shape[-1]
    frac = np.asarray(q, dtype=np.float64) / 100
    count = n - np.isnan(s).sum(axis=-1) if np.isnan(s[..., -1]).any() else None  # NaN sorts last
    size = n if count is None else np.maximum(count, 1)  # the values in each row

    def picked(index):
        if np.ndim(index) == 0:
            value = s[..., int(index)]
        else:
            value = np.take_along_axis(s, index[..., None], -1)[..., 0]
        value = np.asarray(value, dtype=np.float64)
        return value if scale is None else value * scale

    out = []
    for f in frac:
        virtual = (size - 1) * f  # numpy's virtual index of the linear method
        below = np.floor(virtual)
        gamma = virtual - below
        below = np.clip(below, 0, size - 1).astype(np.intp)
        above = np.where(virtual >= size - 1, size - 1, np.minimum(below + 1, size - 1))
        below = np.where(virtual >= size - 1, size - 1, below)
        a, b = picked(below), picked(above)
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, as numpy gives
            diff = b - a
            value = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
        if count is not None:
            value = np.where(count > 0, value, np.nan)  # an all-NaN slice
        out.append(value)
    return np.stack(out)


def rank_positions(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """1-based rank of each entry along ``axis``: 1 for the largest, NaN last, ties in order.

    ``rank_positions([0.1, nan, 0.5, 0.1]) == [2, 4, 1, 3]``, the inverse of
    :func:`sensreport.measures.ranking` (which lists indices ``[2, 0, 3, 1]``).
    """
    v = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    key = np.where(np.isnan(v), -np.inf, v)
    order = np.argsort(-key, axis=-1, kind="stable")
    ranks = np.empty(v.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(1, v.shape[-1] + 1), v.shape), axis=-1)
    return np.moveaxis(ranks, -1, axis)


def average_ranks(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ascending 1-based ranks along ``axis`` with ties given their average rank.

    NaN counts as the smallest value. ``average_ranks([3, 1, 3, 2]) == [3.5, 1, 3.5, 2]``
    (the ranks Spearman's coefficient is computed on).
    """
    v, order, s = _sorted(values, axis)
    return np.moveaxis(_average_ranks(v, order, s), -1, axis)


def _sorted(values: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``values`` with ``axis`` last and NaN as -inf, an ascending order, and the sorted values.

    The order need not be stable: tied entries get the same average rank whatever order
    they are in, and the sorted values are the same. (A stable argsort of float64 costs
    more than twice the default one, and the sorted values come cheaper from a sort.)
    """
    v = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    v = np.where(np.isnan(v), -np.inf, v)
    return v, np.argsort(v, axis=-1), np.sort(v, axis=-1)


def _average_ranks(v: np.ndarray, order: np.ndarray, s: np.ndarray) -> np.ndarray:
    n = v.shape[-1]
    out = np.empty(v.shape, dtype=np.float64)
    # rows without ties: the ranks are the positions in the order
    np.put_along_axis(out, order, np.broadcast_to(np.arange(1.0, n + 1.0), v.shape), axis=-1)
    if n < 2 or out.size == 0:
        return out
    s2, order2, out2 = s.reshape(-1, n), order.reshape(-1, n), out.reshape(-1, n)
    rows = np.nonzero((s2[:, 1:] == s2[:, :-1]).any(axis=-1))[0]
    if rows.size:  # the rows with ties (zero derivatives of a dead unit, say): average over each run
        sv, so = s2[rows], order2[rows]
        pos = np.broadcast_to(np.arange(n), sv.shape)
        start = np.ones(sv.shape, dtype=bool)
        start[:, 1:] = sv[:, 1:] != sv[:, :-1]
        end = np.ones(sv.shape, dtype=bool)
        end[:, :-1] = start[:, 1:]
        first = np.maximum.accumulate(np.where(start, pos, 0), axis=-1)
        last = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, n - 1), -1), axis=-1), -1)
        sub = np.empty(sv.shape, dtype=np.float64)
        np.put_along_axis(sub, so, (first + last) / 2.0 + 1.0, axis=-1)
        out2[rows] = sub
    return out2.reshape(v.shape)


def _top_k(v: np.ndarray, s: np.ndarray, k: int) -> np.ndarray:
    """``rank_positions(v) <= k`` along the last axis, from ``v``'s sorted values ``s``
    (NaN already -inf): the entries above the k-th largest value, and of those equal
    to it the first ones in input order."""
    n = v.shape[-1]
    if k >= n:
        return np.ones(v.shape, dtype=bool)
    kth = s[..., n - k, None]
    above = v > kth
    tied = v == kth
    need = k - above.sum(axis=-1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=-1) <= need))


def spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rank correlation of ``a`` and ``b`` along ``axis`` (broadcasting).

    The Pearson correlation of their :func:`average_ranks`; NaN where either side is
    constant (all tied), since no order exists to compare.
    """
    return _pearson(average_ranks(a, axis), average_ranks(b, axis), axis)


def _pearson(ra: np.ndarray, rb: np.ndarray, axis: int) -> np.ndarray:
    ra, rb = np.broadcast_arrays(ra, rb)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    num = (ra * rb).sum(axis=axis)
    den = np.sqrt((ra**2).sum(axis=axis) * (rb**2).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rank_correlations(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ranks ``ra [a, P]`` with every row of ``rb [b, P]``,
    ``[a, b]``: :func:`_pearson` of each pair (NaN where a row is constant), as one matrix
    product. Ranks are integers and halves, so the centred products sum exactly."""
    ca = ra - ra.mean(axis=-1, keepdims=True)
    cb = rb - rb.mean(axis=-1, keepdims=True)
    den = np.sqrt(np.einsum("ap,ap->a", ca, ca)[:, None] * np.einsum("bp,bp->b", cb, cb)[None, :])
    num = ca @ cb.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rank_agreement(a: np.ndarray, b: np.ndarray, k: int, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(spearman(a, b), top_k_overlap(a, b, k))`` along ``axis``, the same numbers, from
    one sort of ``a`` (the large side: per-point values against one aggregate ``b``)."""
    va = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    vb = np.moveaxis(np.asarray(b, dtype=np.float64), axis, -1)
    if va.size and vb.ndim >= 2 and va.ndim >= vb.ndim and all(x == 1 for x in vb.shape[:-2]) and vb.shape[-2:] == va.shape[-2:]:
        return _shared_rank_agreement(va, vb.reshape(vb.shape[-2:]), k)
    v, order, s = _sorted(va, -1)
    ra = _average_ranks(v, order, s)
    vb = _sorted(vb, -1)
    rho = _pearson(ra, _average_ranks(*vb), -1)
    top_a = _top_k(v, s, k)
    top_b = _top_k(vb[0], vb[2], k)
    return rho, (top_a & top_b).sum(axis=-1) / float(k)


#: Entries of ``a`` ranked at once by :func:`_shared_rank_agreement` (4 MB of float64):
#: blocks this size stay in cache and reuse their memory, where whole-array temporaries
#: of a large ``a`` each cost fresh pages.
RANK_BLOCK = 1 << 19


def _shared_rank_agreement(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_agreement` of ``a [..., m, n]`` against one ``b [m, n]``, from the order
    of ``a`` alone where a row has no ties, a block of leading indices at a time.

    A row without ties has the ranks ``1..n`` at the positions of its order, so the
    centred rank product is ``sum_r r * rb_c[order[r]]`` (``rb_c`` sums to 0) and the
    rank variance ``n (n^2 - 1) / 12``; its top ``k`` are the last ``k`` of its order
    unless the k-th largest value is tied. Ranks are integers and halves, so every sum
    is exact and the numbers are :func:`_pearson`'s and :func:`_top_k`'s; rows with
    ties (and boundary ties for the top ``k``) take those functions.
    """
    shape, (m, n) = a.shape, b.shape
    v = a.reshape(-1, m, n)
    vb, ob, sb = _sorted(b, -1)
    rb = _average_ranks(vb, ob, sb)
    rbc = rb - rb.mean(axis=-1, keepdims=True)
    top_b = _top_k(vb, sb, k)
    rho = np.empty(v.shape[:2])
    overlap = np.empty(v.shape[:2])
    if n < 2:
        rho[:] = np.nan
        overlap[:] = top_b.sum(axis=-1)[None, :] / float(k)
        return rho.reshape(shape[:-1]), overlap.reshape(shape[:-1])
    den = np.sqrt((n * (n * n - 1) / 12.0) * np.einsum("mn,mn->m", rbc, rbc))
    positions = np.arange(1.0, n + 1.0)
    offsets = (np.arange(m) * n)[:, None]  # row i's entries start at i * n in [m * n]
    step = max(1, RANK_BLOCK // (m * n))
    for start in range(0, len(v), step):
        blk = v[start:start + step]
        if np.isnan(blk).any():
            blk = np.where(np.isnan(blk), -np.inf, blk)
        order = np.argsort(blk, axis=-1)
        s = np.sort(blk, axis=-1)  # cheaper than taking the values in the order
        flat = order + offsets
        num = rbc.ravel().take(flat) @ positions
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        tied = np.nonzero((s[..., 1:] == s[..., :-1]).any(axis=-1))
        if tied[0].size:
            ra = _average_ranks(blk[tied], order[tied], s[tied])
            ca = ra - ra.mean(axis=-1, keepdims=True)
            cb = rbc[tied[1]]
            num_t = np.einsum("tn,tn->t", ca, cb)
            den_t = np.sqrt(np.einsum("tn,tn->t", ca, ca) * np.einsum("tn,tn->t", cb, cb))
            with np.errstate(invalid="ignore", divide="ignore"):
                r[tied] = np.where(den_t > 0, num_t / np.where(den_t > 0, den_t, 1.0), np.nan)
        rho[start:start + step] = r
        if k >= n:
            overlap[start:start + step] = top_b.sum(axis=-1)[None, :] / float(k)
            continue
        o = top_b.ravel().take(flat[..., n - k:]).sum(axis=-1) / float(k)
        edge = np.nonzero(s[..., n - k] == s[..., n - k - 1])  # the k-th largest is tied: input order decides
        if edge[0].size:
            o[edge] = (_top_k(blk[edge], s[edge], k) & top_b[edge[1]]).sum(axis=-1) / float(k)
        overlap[start:start + step] = o
    return rho.reshape(shape[:-1]), overlap.reshape(shape[:-1])


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int, axis: int = -1) -> np.ndarray:
    """Share of the ``k`` largest entries of ``a`` that are also among the ``k`` largest of ``b``.

    Both top-``k`` sets follow :func:`rank_positions` (NaN last, ties in input order).
    1 means the same top ``k``, 0 none in common.
    """
    ta = rank_positions(a, axis) <= k
    tb = rank_positions(b, axis) <= k
    return (ta & tb).sum(axis=axis) / float(k)



def relative_error(value: np.ndarray, reference: np.ndarray, axis: int = -1, floor: float = 1e-3) -> np.ndarray:
    """``|value - reference| / max(|reference|, floor * max |reference| along axis)``.

    An entry that is tiny next to the largest of its row (the same output at the same
    point, or the same output in a baseline) is judged against ``floor`` (0.1%) of that
    largest one, so that it does not produce a huge relative error; a row that is all
    zero is judged against 1. Used for FD-vs-AD agreement and for baseline drift.
    """
    ref = np.asarray(reference, dtype=np.float64)
    err = np.abs(np.asarray(value, dtype=np.float64) - ref)
    abs_ref = np.abs(ref)
    return relative_to(err, abs_ref, finite_max(abs_ref, axis), floor)


def finite_max(magnitude: np.ndarray, axis: int) -> np.ndarray:
    """The largest finite entry of ``magnitude`` (non-negative) along ``axis``, kept as a
    length-1 axis; 0 where there is none."""
    top = magnitude.max(axis=axis, keepdims=True) if magnitude.shape[axis] else None
    if top is not None and np.isfinite(top).all():  # the common case: one pass, no masks
        return top
    return np.nanmax(np.where(np.isfinite(magnitude), magnitude, np.nan), axis=axis, initial=0.0, keepdims=True)


def relative_to(err: np.ndarray, abs_ref: np.ndarray, scale: np.ndarray, floor: float = 1e-3,
                out: np.ndarray | None = None) -> np.ndarray:
    """``err / max(abs_ref, floor * scale)`` (``/ max(abs_ref, 1)`` where ``scale`` is 0):
    :func:`relative_error` from its parts, ``scale`` being :func:`finite_max` of ``abs_ref``;
    ``out`` (float64, the shape of ``err``) receives it."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.maximum(abs_ref, np.where(scale > 0, floor * scale, 1.0), out=out)
        return np.divide(err, out, out=out)
