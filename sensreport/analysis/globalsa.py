"""Global sensitivity from exact derivatives (pure numpy): confidence intervals of the
measures, their shares and ranks; upper bounds on Sobol' total indices; active subspaces.

- **Sobol' bounds.** For independent inputs whose distribution satisfies a Poincaré
  inequality ``Var g <= C E[(g')^2]``, the total Sobol' index of input ``i`` is at most
  ``C_i nu_i / V``, with ``nu_i = E[(df/dx_i)^2]`` (the DGSM, RMS squared) and ``V`` the
  output's variance (Sobol' & Kucherenko, Math. Comput. Simul. 79 (2009) 3009-3017;
  Lamboni, Iooss, Popelin & Gamboa, Math. Comput. Simul. 87 (2013) 45-54). The constants
  come from :meth:`sensreport.distributions.Distribution.poincare_constant`; a group's
  total index is at most the sum of its members' bounds.
- **Active subspaces** (Constantine, Active Subspaces, SIAM 2015): per output the
  eigen-decomposition of ``C = E[g g^T]`` with ``g`` the gradient with respect to the
  inputs scaled by their spread (``x_j / std_j``), so that inputs in different units
  compare. A large gap after the first ``r`` eigenvalues means the output varies
  mostly along ``r`` directions of the inputs (the leading eigenvectors).
- **Confidence intervals** by a bootstrap over batches of consecutive points (Efron &
  Tibshirani, An Introduction to the Bootstrap, 1993, ch. 6; batch means: Law & Kelton,
  Simulation Modeling and Analysis, 2000, sec. 9.5.3): the sums behind every measure are
  streamed per batch (:class:`~sensreport.analysis.measures.Batches`), replicates re-weight
  the batches by multinomial counts, and percentile intervals follow for the measures,
  their shares, the overall shares and the ranks, with or without the per-point arrays,
  on one machine or many. The eigenvalues' intervals re-weight batch matrices the same
  way with the eigenvectors held at their estimate (first order), where those fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import measures as M
from .stats import quantiles, rank_positions, shares
from .summaries import subsample_indices

#: Active subspaces need an ``n x n`` matrix per output: computed up to this many inputs.
SUBSPACE_MAX_INPUTS = 2000
#: Batches of consecutive points whose sums give the confidence intervals, and the fewest
#: that give any.
INTERVAL_BATCHES = 32
MIN_BATCHES = 8
#: Bootstrap replicates over the batches; fewer (not below MIN_REPLICATES) when one
#: replicate's values (outputs x inputs) times the replicates pass REPLICATE_VALUES.
REPLICATES = 200
MIN_REPLICATES = 50
REPLICATE_VALUES = 1 << 20
#: Active subspaces are computed for the first outputs only: an n x n matrix each.
SUBSPACE_OUTPUTS = 20
#: Eigenvalue intervals keep one matrix per output per batch: at most this many bytes,
#: and this many multiply-adds to project them (batches x outputs x n^3).
EIGEN_BATCH_BYTES = 64 << 20
EIGEN_BATCH_WORK = 1 << 30
#: Points shown in the active-subspace summary plot (output against the first active variable).
SUMMARY_POINTS = 2000
#: Inputs at the top of a ranking checked for overlapping intervals.
OVERLAP_TOP = 5


class SubspaceAccumulator:
    """Streaming ``sum over points of g g^T`` for the first ``k`` outputs,
    ``g = dy/dx * scale`` (``sum [k, n, n]``, ``count [k]``).

    Points where an entry of an output's gradient is not finite are left out of that
    output's matrix. With ``batches``, each batch's matrices are kept too (for the
    eigenvalues' intervals). Accumulators from several chunks or workers add
    (:meth:`merge`). Products run in the derivatives' own precision (float32 Jacobians
    carry 7 digits) and add up in float64.
    """

    def __init__(self, k: int, n: int, scale: np.ndarray, batches: M.Batches | None = None):
        s = np.asarray(scale, dtype=np.float64)
        self.scale = np.where(np.isfinite(s) & (s > 0), s, 1.0)
        self.k = k
        self.sum = np.zeros((k, n, n))
        self.count = np.zeros(k)
        self.batches = batches
        self.by_batch: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, jac: np.ndarray, offset: int = 0) -> None:
        """Add the first ``k`` outputs of ``jac [b, m, n]`` (points from ``offset``)."""
        jac = jac[:, : self.k]
        pieces = [(None, slice(0, len(jac)))] if self.batches is None else self.batches.pieces(offset, len(jac))
        for batch, sl in pieces:
            total, count = self._products(jac[sl])
            self.sum += total
            self.count += count
            if batch is not None:
                mine = self.by_batch.setdefault(batch, (np.zeros_like(self.sum), np.zeros_like(self.count)))
                mine[0][...] += total
                mine[1][...] += count

    def _products(self, jac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        total, count = np.zeros_like(self.sum), np.zeros_like(self.count)
        dtype = np.float32 if jac.dtype == np.float32 else np.float64
        scale = self.scale.astype(dtype)

        def block(rows):  # each block writes its own rows
            g = np.asarray(jac[:, rows], dtype=dtype) * scale
            finite = np.isfinite(g).all(axis=2)  # [b, k]
            if not finite.all():
                g = np.where(finite[:, :, None], g, 0)
            # [k, n, b] @ [k, b, n] as strided views: BLAS reads them in place (a contiguous
            # transposed copy cost more than the product)
            total[rows] = np.matmul(g.transpose(1, 2, 0), g.transpose(1, 0, 2))
            count[rows] = finite.sum(0)

        M.map_blocks(block, jac.shape)
        return total, count

    def merge(self, other: "SubspaceAccumulator") -> "SubspaceAccumulator":
        self.sum += other.sum
        self.count += other.count
        for batch, (total, count) in other.by_batch.items():
            mine = self.by_batch.setdefault(batch, (np.zeros_like(self.sum), np.zeros_like(self.count)))
            mine[0][...] += total
            mine[1][...] += count
        return self

    def matrix(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sum / np.where(self.count > 0, self.count, np.nan)[:, None, None]


def subspace_outputs(k: int, n: int, budget: int) -> int:
    """How many outputs get an active subspace: the first ``SUBSPACE_OUTPUTS``, with at most
    ``SUBSPACE_MAX_INPUTS`` inputs and their matrices (float64) within an eighth of the
    memory budget; 0: none."""
    k = min(k, SUBSPACE_OUTPUTS)
    return k if 1 < n <= SUBSPACE_MAX_INPUTS and k * n * n * 8 <= budget // 8 else 0


def eigen_batches(k: int, n: int, batches: int) -> bool:
    """Whether each batch's matrices are kept for the eigenvalues' intervals."""
    return (batches >= MIN_BATCHES and batches * k * n * n * 8 <= EIGEN_BATCH_BYTES
            and batches * k * n**3 <= EIGEN_BATCH_WORK)


@dataclass
class ActiveSubspace:
    """Per output (rows ``outputs``): eigenvalues ``[k, n]`` in descending order and
    eigenvectors ``[k, n, n]`` (``eigenvectors[o, r]`` is the ``r``-th direction, ``n``
    weights on the inputs scaled by ``scale``; the largest weight positive). ``low`` /
    ``high`` bootstrap intervals of the eigenvalues (None when the batch matrices did not
    fit, :func:`eigen_batches`). ``sample`` points and their ``first_variable`` ``[k, s]`` (the first
    active variable ``w_1 . (x - center) / scale``) for the summary plot."""

    outputs: list[int]
    scale: np.ndarray
    center: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    first_variable: np.ndarray | None = None

    def gap(self, o: int) -> float:
        """The ratio of the first to the second eigenvalue of row ``o`` (inf when the second is 0)."""
        ev = self.eigenvalues[o]
        if len(ev) < 2 or not np.isfinite(ev[:2]).all():
            return float("nan")
        return float(ev[0] / ev[1]) if ev[1] > 0 else float("inf")


def active_subspace(acc: SubspaceAccumulator, outputs: list[int], points: np.ndarray) -> ActiveSubspace:
    """The eigen-decomposition of every accumulated output's matrix (``outputs`` the output
    index of each), and the summary plot's first active variable at up to
    ``SUMMARY_POINTS`` evenly spaced points."""
    c = acc.matrix()
    k, n, _ = c.shape
    values = np.full((k, n), np.nan)
    vectors = np.full((k, n, n), np.nan)

    def decompose(o: int) -> None:  # each output writes its own rows
        if not np.isfinite(c[o]).all():
            return
        w, v = np.linalg.eigh((c[o] + c[o].T) / 2)
        order = np.argsort(w)[::-1]
        w, v = np.maximum(w[order], 0.0), v[:, order].T  # rows: directions
        sign = np.sign(v[np.arange(n), np.argmax(np.abs(v), axis=1)])
        values[o], vectors[o] = w, v * np.where(sign == 0, 1.0, sign)[:, None]

    with M.serial_blas():  # one output per thread: 10 ms instead of 17 for 20 outputs of 128 inputs
        M.parallel_map(decompose, range(k))
    x = np.asarray(points, dtype=np.float64)
    center = x.mean(0) if len(x) else np.zeros(n)
    sample = subsample_indices(len(x), SUMMARY_POINTS)
    scaled = (x[sample] - center) / acc.scale
    first = np.einsum("sn,kn->ks", scaled, np.nan_to_num(vectors[:, 0, :]))
    return ActiveSubspace(list(outputs), acc.scale, center, values, vectors, sample=sample, first_variable=first)


@dataclass
class SobolBounds:
    """Upper bounds on the total Sobol' indices ``[k, n]`` (NaN where the input's
    distribution, or its Poincaré constant, is unknown), their intervals from the DGSM's
    (the output variance taken as known), each input's ``constants`` ``[n]`` and each
    output's ``variance`` ``[k]``; ``groups`` group name -> ``[k]`` bounds."""

    outputs: list[int]
    constants: np.ndarray
    variance: np.ndarray
    bound: np.ndarray
    low: np.ndarray
    high: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)


def poincare_constants(distributions, n: int) -> np.ndarray | None:
    """Each input's Poincaré constant ``[n]`` from its distribution (an object with
    ``poincare_constant()``, or None), NaN where unknown; None when no input has one."""
    c = np.full(n, np.nan)
    for j, d in enumerate(list(distributions or [])[:n]):
        value = d.poincare_constant() if d is not None else None
        if value is not None:
            c[j] = value
    return c if np.isfinite(c).any() else None


def sobol_bounds(rms: np.ndarray, rms_interval: tuple[np.ndarray, np.ndarray], constants: np.ndarray,
                 outputs_at_points: np.ndarray, outputs: list[int],
                 groups: dict[str, tuple[int, ...]] | None = None) -> SobolBounds | None:
    """``C_i nu_i / V`` from RMS (``[k, n]``, ``nu = rms^2``) and each input's Poincaré
    constant (``[n]``, NaN where unknown); ``V`` each output's variance over the points
    (``outputs_at_points [P, m]``, columns ``outputs``). None when no constant is known."""
    c = np.asarray(constants, dtype=np.float64)
    if not np.isfinite(c).any():
        return None
    y = np.asarray(outputs_at_points, dtype=np.float64)[:, outputs]
    var = np.var(y, axis=0, ddof=1) if len(y) > 1 else np.full(len(outputs), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = c[None, :] / np.where(var > 0, var, np.nan)[:, None]
        bound, low, high = (np.asarray(r, dtype=np.float64) ** 2 * scale for r in (rms, *rms_interval))
    sums = {g: np.sum(bound[:, list(cols)], axis=1) for g, cols in (groups or {}).items()}
    return SobolBounds(list(outputs), c, var, bound, low, high, sums)


@dataclass
class Intervals:
    """Percentile intervals ``(low, high)`` at ``level`` from ``replicates`` bootstrap
    replicates over ``batches`` batches of points: ``measures[m]`` ``[k, n]``; each
    output's shares of a rankable measure ``shares[m]`` ``[k, n]``; the overall shares
    ``overall[m]`` ``[n]``; the overall ranks (1: most sensitive) ``overall_ranks[m]`` ``[n]``."""

    level: float
    replicates: int
    batches: int
    measures: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    shares: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    overall: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    overall_ranks: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def interval_batches(points: int, k: int, n: int, budget: int) -> int:
    """Batches of points whose sums are kept for the intervals: ``INTERVAL_BATCHES``, fewer
    when their sums would take more than a sixteenth of the memory budget, 0 (no
    intervals) below ``MIN_BATCHES`` or with fewer points than that."""
    room = (budget // 16) // max(1, len(M.BATCH_SUMS) * k * n * 8)
    g = min(INTERVAL_BATCHES, points, room)
    return int(g) if g >= MIN_BATCHES else 0


def _weights(batches: int, replicates: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(batches, np.full(batches, 1.0 / batches), size=replicates).astype(np.float64)


def t_quantile(q: float, dof: int) -> float:
    """Student's t quantile by its Cornish-Fisher expansion in ``1 / dof`` (Abramowitz &
    Stegun 26.7.5): within 1e-4 of the exact value from 10 degrees of freedom on, and it
    spares every run the import of ``scipy.stats``."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(q)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4


def widening(batches: int, level: float) -> float:
    """How much the replicates' spread around the estimate is widened: the bootstrap over
    ``G`` batches sees a variance ``(G - 1) / G`` of the true one, and with ``G`` batches
    the interval needs Student's ``t`` with ``G - 1`` degrees of freedom, not the normal
    quantile: ``sqrt(G / (G - 1)) * t_{G-1} / z`` (1.058 at 32 batches and 95 %)."""
    from statistics import NormalDist

    q = 0.5 + level / 2
    return float(np.sqrt(batches / (batches - 1)) * t_quantile(q, batches - 1) / NormalDist().inv_cdf(q))


def _percentiles(values: np.ndarray, level: float, widen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of replicates ``values[1:]`` around the estimate ``values[0]``,
    their distances from it widened by ``widen``."""
    est, reps = values[0], values[1:]
    with np.errstate(invalid="ignore"):
        lo, hi = quantiles(reps, (50 * (1 - level), 50 * (1 + level)), axis=0)
        return est + widen * (lo - est), est + widen * (hi - est)


#: Replicate values (replicates x outputs x inputs) of one block of outputs in
#: :func:`batch_intervals` (1 MiB of float64): a block's temporaries stay in a core's
#: cache and are reused from block to block, where whole-array replicates (8 MiB each at
#: 64 x 128 and 128 replicates, a dozen of them) each cost fresh pages.
INTERVAL_BLOCK_VALUES = 1 << 17


def _replicate_values(rep: dict[str, np.ndarray], spread: np.ndarray) -> dict[str, np.ndarray]:
    """Every measure's replicates from the replicated sums (``[1 + B, k, n]`` each)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(rep["count"] > 0, rep["count"], np.nan)
        ce = np.where(rep["count_elastic"] > 0, rep["count_elastic"], np.nan)
        mean_abs = rep["sum_abs"] / c
        return {"mean_abs": mean_abs, "rms": np.sqrt(rep["sum_sq"] / c), "std_scaled": mean_abs * spread,
                "elasticity": rep["sum_elastic"] / ce, "positive_share": rep["positive"] / c}


def batch_intervals(sums: dict[str, np.ndarray], spread: np.ndarray, level: float, seed: int = 0) -> Intervals | None:
    """Intervals of every measure, share and rank from the per-batch sums
    (:meth:`~sensreport.analysis.measures.MeasureAccumulator.batch_sums`, ``[G, k, n]``
    each). None with fewer than ``MIN_BATCHES`` batches.

    A block of outputs at a time (:data:`INTERVAL_BLOCK_VALUES`), on the reduction
    threads: every measure's and share's interval is per output, and the overall shares
    add up each block's sum over its outputs, block after block. The blocks are fixed by
    the shape, so the numbers do not depend on the threads; other blocks change only
    the last bits of the sums."""
    g, k, n = sums["count"].shape
    if g < MIN_BATCHES:
        return None
    replicates = int(min(REPLICATES, max(MIN_REPLICATES, REPLICATE_VALUES // max(1, k * n))))
    w = np.vstack([np.ones(g), _weights(g, replicates, seed)])  # row 0: every batch once (the estimate)
    spread = np.asarray(spread, dtype=np.float64)
    f = widening(g, level)
    step = max(1, INTERVAL_BLOCK_VALUES // max(1, len(w) * n))

    def block(o: slice) -> dict[str, tuple]:
        # each block's replicated sums [1 + B, r, n]: a product over the batches, per column
        r = len(range(k)[o])
        rep = {name: np.dot(w, a[:, o].reshape(g, r * n)).reshape(len(w), r, n) for name, a in sums.items()}
        found = {}
        for name, v in _replicate_values(rep, spread).items():
            low, high = _percentiles(v, level, f)
            measure = (np.maximum(low, 0), np.minimum(high, 1) if name in M.UNITLESS else high)
            if name in M.UNITLESS:
                found[name] = (measure, False, None, None)
                continue
            sh = shares(v, axis=2)
            seen = ~np.isnan(sh)
            part = tuple(np.clip(b, 0, 1) for b in _percentiles(sh, level, f))
            # the overall shares' mean: the block's shares summed over its outputs in order
            # (NaN left out), and how many there are
            total = np.zeros((len(w), n))
            for i in range(sh.shape[1]):
                total += np.where(seen[:, i], sh[:, i], 0.0)
            found[name] = (measure, bool(np.isfinite(v).any()), part, (total, seen.sum(axis=1)))
        return found

    blocks = [slice(s, min(k, s + step)) for s in range(0, k, step)] or [slice(0, 0)]
    parts = M.parallel_map(block, blocks)
    out = Intervals(level, replicates, g)
    for name in parts[0]:
        out.measures[name] = tuple(np.concatenate([p[name][0][i] for p in parts]) for i in (0, 1))
        if name in M.UNITLESS or not any(p[name][1] for p in parts):
            continue
        out.shares[name] = tuple(np.concatenate([p[name][2][i] for p in parts]) for i in (0, 1))
        total, count = np.zeros((len(w), n)), np.zeros((len(w), n), dtype=np.intp)
        for p in parts:  # block after block, in order
            total += p[name][3][0]
            count += p[name][3][1]
        with np.errstate(invalid="ignore", divide="ignore"):
            over = total / count  # NaN where no output has a share, as nanmean gives
        out.overall[name] = tuple(np.clip(b, 0, 1) for b in _percentiles(over, level, f))
        # the replicates' own ranks, not widened
        out.overall_ranks[name] = _percentiles(rank_positions(over).astype(np.float64), level)
    return out


def group_intervals(sums: dict[str, np.ndarray], groups: dict[str, tuple[int, ...]], spread: np.ndarray,
                    level: float, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The feature groups' measure intervals ``[k, g]`` (groups in ``groups``' order) from
    the inputs' batch sums: a group's mean |dy/dx|, std-scaled and elasticity are sums of
    its members', its RMS the root of their summed mean squares, so each replicate sums
    the members' batch sums (std-scaled weighted by the members' spread)."""
    cols = list(groups.values())
    if not cols:
        return {}
    spread = np.asarray(spread, dtype=np.float64)
    count = np.stack([sums["count"][:, :, c[0]] for c in cols], axis=2)

    def summed(name, weight=None):
        a = sums[name] if weight is None else sums[name] * weight
        return np.stack([a[:, :, list(c)].sum(2) for c in cols], axis=2)

    plain = {"sum_abs": summed("sum_abs"), "sum_sq": summed("sum_sq"), "count": count,
             "positive": np.zeros_like(count), "sum_elastic": summed("sum_elastic"),
             "count_elastic": np.stack([sums["count_elastic"][:, :, c[0]] for c in cols], axis=2)}
    scaled = dict(plain, sum_abs=summed("sum_abs", np.where(np.isfinite(spread), spread, np.nan)))
    a = batch_intervals(plain, np.ones(len(cols)), level, seed)
    b = batch_intervals(scaled, np.ones(len(cols)), level, seed)
    if a is None or b is None:
        return {}
    return {"mean_abs": a.measures["mean_abs"], "rms": a.measures["rms"], "elasticity": a.measures["elasticity"],
            "std_scaled": b.measures["mean_abs"]}


def eigen_intervals(sub: ActiveSubspace, acc: SubspaceAccumulator, level: float, seed: int = 0) -> None:
    """The eigenvalues' intervals (into ``sub.low`` / ``sub.high``) from the batch matrices:
    replicate ``b``'s ``r``-th eigenvalue is ``v_r . C_b v_r`` with ``C_b`` the re-weighted
    mean of the batch matrices and ``v_r`` held at its estimate (first order)."""
    if not acc.by_batch or len(acc.by_batch) < MIN_BATCHES:
        return
    order = sorted(acc.by_batch)
    g = len(order)
    proj = np.stack([np.einsum("kri,kij,krj->kr", np.nan_to_num(sub.eigenvectors), acc.by_batch[b][0],
                               np.nan_to_num(sub.eigenvectors)) for b in order])  # [G, k, n]
    counts = np.stack([acc.by_batch[b][1] for b in order])  # [G, k]
    w = np.vstack([np.ones(g), _weights(g, REPLICATES, seed + 1)])
    with np.errstate(invalid="ignore", divide="ignore"):
        rep = np.tensordot(w, proj, axes=1) / np.tensordot(w, counts, axes=1)[:, :, None]
    low, high = _percentiles(rep, level, widening(g, level))
    low = np.maximum(low, 0)
    bad = ~np.isfinite(sub.eigenvalues)
    sub.low, sub.high = np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def overlaps(order: list[int], low: np.ndarray, high: np.ndarray, top: int = OVERLAP_TOP) -> list[tuple[int, int]]:
    """Neighbours in a ranking (among its first ``top``) whose intervals overlap: pairs of
    inputs that the points cannot tell apart."""
    out = []
    for a, b in zip(order[:top], order[1:top]):
        if np.isfinite([low[a], high[a], low[b], high[b]]).all() and low[a] <= high[b] and low[b] <= high[a]:
            out.append((a, b))
    return out
