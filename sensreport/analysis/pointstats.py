"""Statistics over the per-point derivatives, computed once after the sweep: the spread
of every measure across points, the stability of the leading ranking, the direction of
every derivative. The checks stage judges them; the report only draws them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import measures as M
from . import summaries as S
from . import stats

@dataclass
class PointStats:
    """Statistics over the per-point derivatives (the analysis stage computes them once).

    ``spread[m]`` holds the 25th/50th/75th percentiles of measure ``m``'s per-point
    values ``[3, k, n]`` and ``spread_overall[m]`` the same for the overall shares
    ``[3, n]``; ``stability`` each output's rank agreement with the aggregate ranking
    (``median_spearman`` and ``mean_overlap`` ``[k]``, with ``top_k``); ``positive`` /
    ``negative`` the shares of points with a positive / negative derivative ``[k, n]``;
    ``signed_mean`` the mean derivative ``[k, n]``. ``sampled`` says how many points the
    spread and stability used (all, or evenly spaced ones under a memory budget).
    """

    spread: dict[str, np.ndarray] = field(default_factory=dict)
    spread_overall: dict[str, np.ndarray] = field(default_factory=dict)
    stability: dict[str, np.ndarray] | None = None
    top_k: int | None = None
    positive: np.ndarray | None = None
    negative: np.ndarray | None = None
    signed_mean: np.ndarray | None = None
    sampled: int | None = None


#: Per-point values held at once for the spread and the stability (64 MB each); past
#: it, evenly spaced points are used (and the results say how many).
STATS_ENTRIES = 8_000_000

#: The percentiles the spread reports.
QUARTILES = (25, 50, 75)

#: Per-point values of one block of outputs (4 MB of float64) in :func:`point_stats`.
BLOCK_ENTRIES = 1 << 19


def rankable_measures(shown: list[str], measures: dict[str, np.ndarray], overall: dict[str, np.ndarray]) -> list[str]:
    """The magnitude measures that have values, the spec's shown ones first (in its order)."""
    ok = [m for m in M.RANKABLE if m in measures and np.isfinite(np.asarray(overall[m], float)).any()]
    return [m for m in shown if m in ok] + [m for m in ok if m not in shown]


def leading_measure(shown: list[str], measures: dict[str, np.ndarray], overall: dict[str, np.ndarray]) -> str | None:
    """The one measure every view ranks by: the spec's first shown magnitude measure with values."""
    rankable = rankable_measures(shown, measures, overall)
    return rankable[0] if rankable else None


def point_stats(deriv: np.ndarray | None, points: np.ndarray, outputs: np.ndarray, measures: dict[str, np.ndarray],
                rankable: list[str], leading: str | None,
                directions: dict[str, np.ndarray] | None = None) -> PointStats | None:
    """:class:`PointStats` from the derivatives ``[P, k, n]`` (None when they were not kept).

    ``outputs`` are the outputs of the ``k`` rows ``[P, k]``; ``points`` ``[P, n]``.
    ``directions`` (``mean``, ``positive``, ``negative``, each ``[k, n]``) are the
    streamed ones of :meth:`~.measures.MeasureAccumulator.directions`; without them they
    are computed from ``deriv``.
    """
    if deriv is None:
        if "positive_share" in measures:
            return PointStats(positive=np.asarray(measures["positive_share"], float))
        return None
    P, k, n = deriv.shape
    out = PointStats()
    if P > 1:
        # spread and stability need every per-point value at once: past a budget, evenly spaced points
        idx = S.subsample_indices(P, max(1, STATS_ENTRIES // max(1, k * n)))
        out.sampled = len(idx)
        y = np.asarray(outputs, dtype=np.float64)
        pts, ys = points[idx], y[idx]
        spread, guard = M.input_spread(points), M.elasticity_guard(y)
        same = {"rms": "mean_abs", "mean_abs": "rms"}  # both have |dy/dx| as their per-point values
        own = []  # the measures computed here; a twin of one of them borrows its numbers
        for m in rankable:
            if not (same.get(m) in own and m != leading):
                own.append(m)
        stable = leading if leading in own and n >= 3 else None
        if stable:
            out.top_k = min(5, max(1, n // 3))  # small enough that a random order rarely shares it
            rho, overlap = np.empty((len(idx), k)), np.empty((len(idx), k))
        quant = {m: np.empty((3, k, n)) for m in own}
        overall = {m: S.OverallLocal() for m in own}
        # std-scaled values are |dy/dx| times a non-negative factor per input: their order
        # statistics are those of |dy/dx| times it, so one sort serves both
        scaled = not np.isinf(spread).any()
        sorted_magnitudes = any(m in same or (m == "std_scaled" and scaled) for m in own)
        # a block of outputs at a time: every statistic is per output, and blocks this small
        # reuse their memory. Blocks run on the reduction threads, a few at a time (each
        # writes its own outputs' rows); the overall shares add up over outputs in order.
        step = max(1, BLOCK_ENTRIES // max(1, len(idx) * n))

        def block_stats(o: slice) -> dict:
            block = deriv[:, o] if len(idx) == P else deriv[idx, o]  # [S, r, n]: the sample's rows
            a = S.magnitudes(block)  # float64, NaN where not finite
            # the percentiles of |dy/dx| from a sort of float32 values when every one is
            # finite (float32 widens exactly: the same order statistics), else of ``a``
            if sorted_magnitudes:
                narrow = block.dtype == np.float32 and not np.isnan(a).any()
                ordered = stats.axis_last(np.abs(block) if narrow else a)
                ordered.sort(axis=-1)
            shared = {}
            for m in own:
                if m in same:
                    local, quant[m][:, o] = a, stats.sorted_quantiles(ordered, QUARTILES)
                elif m == "std_scaled" and scaled:
                    local = a * spread[None, None, :]
                    quant[m][:, o] = stats.sorted_quantiles(ordered, QUARTILES, spread)
                else:
                    local = S.local_from(m, a, pts, ys[:, o], spread=spread, guard=guard[o])
                    quant[m][:, o] = stats.quantiles(local, QUARTILES, axis=0)
                shared[m] = S.OverallLocal.shares(local)
                if m == stable:
                    rho[:, o], overlap[:, o] = stats.rank_agreement(local, np.asarray(measures[m], float)[None, o],
                                                                    out.top_k)
            return shared

        outputs_blocks = [slice(start, start + step) for start in range(0, k, step)]
        window = 2 * M.REDUCTION_THREADS  # blocks in flight: their shares are held until added
        for w in range(0, len(outputs_blocks), window):
            for shared in M.parallel_map(block_stats, outputs_blocks[w:w + window]):
                for m in own:
                    overall[m].add_shares(*shared[m])
        for m in rankable:
            src = m if m in own else same[m]
            out.spread[m] = quant[src]
            out.spread_overall[m] = stats.quantiles(overall[src].result(), axis=0)
        if stable:
            out.stability = S.stability_summary(rho, overlap)
    d = directions if directions is not None else S.direction_stats(deriv)  # all points, a chunk at a time
    out.positive, out.negative, out.signed_mean = d["positive"], d["negative"], d["mean"]
    return out
