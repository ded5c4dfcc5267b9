"""Agreement of finite differences with automatic derivatives, judged entry by entry
against the finite difference's own error estimate, streamed over chunks (pure numpy).

Per entry (point ``p``, output ``i``, input ``j``), with ``fd`` the central difference,
``e`` its estimated error (:mod:`sensreport.engine.fdiff`) and ``ad`` the automatic
derivative::

    z = |ad - fd| / (e + floor),   floor = FLOOR_ULPS * u_ad * max_j |ad[p, i, j]| + tiny

``floor`` covers the automatic derivative's own round-off (``u_ad`` the unit round-off
of its dtype) and entries whose estimate is 0. An entry agrees when ``z <= max_z``
(default 3: the estimate is an estimate, not a bound) and, when the spec gives
``max_rel_error``, also within that relative error. Entries whose one-sided slopes
disagree (a kink: ReLU, ``max``, ``abs`` between ``x - h`` and ``x + h``) are counted
and shown, and left out of the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .measures import blocks
from .stats import relative_error
from .summaries import subsample_indices

#: z at or below which an entry agrees (the spec's checks.fd_vs_ad.max_z).
MAX_Z = 3.0
#: The automatic derivative's own round-off, in units of its dtype's unit round-off
#: times the largest derivative of the same output at the same point.
FLOOR_ULPS = 64.0
#: FD-vs-AD entries the report's scatter draws, and how many of them are the worst by z.
SCATTER_ENTRIES = 2_000
SCATTER_WORST = 200
#: Histogram of log10(z) for the median: bins per decade, range in decades.
BINS_PER_DECADE = 100
LOW, HIGH = -12, 12


def unit_roundoff(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2


class AgreementAccumulator:
    """Streaming FD-vs-AD agreement over chunks of points; :meth:`merge` combines workers.

    Parameters
    ----------
    k, n : int
        Rows (outputs compared) and inputs.
    ad_dtype : str
        The automatic derivatives' dtype (their round-off floor).
    max_z : float
        Entries agree at ``z <= max_z``.
    max_rel_error : float, optional
        An extra bound: an agreeing entry must also be within this relative error.
    worst : int
        How many of the worst entries (and of the kinks) to keep.
    points : int, optional
        All the points the chunks will cover: with it, the accumulator also keeps the
        sample of entries the report's scatter draws (:meth:`sample`).
    """

    def __init__(self, k: int, n: int, ad_dtype: str = "float32", max_z: float = MAX_Z,
                 max_rel_error: float | None = None, worst: int = 10, points: int | None = None):
        self.k, self.n = k, n
        self.ad_dtype = ad_dtype
        self.max_z = max_z
        self.max_rel_error = max_rel_error
        self.keep = worst
        self.entries = self.smooth = self.within = self.kinks = self.nonfinite_entries = 0
        self.kinks_benign = 0
        self.retested = 0  # entries differenced again at a smaller step (see compute.sweep.retest)
        self.max_abs = self.max_rel = self.max_z_seen = -np.inf
        self.hist = np.zeros((HIGH - LOW) * BINS_PER_DECADE + 2, dtype=np.int64)
        self.cell_z = np.full((k, n), np.nan)  # largest z per output and input, smooth entries
        self.cell_kinks = np.zeros((k, n), dtype=np.int64)
        self.worst: list[dict] = []
        self.worst_kinks: list[dict] = []
        self.points = points
        # the scatter's sample: entries at evenly spaced flat indices, and the worst by z
        # (non-finite z counts as the worst), each as (flat index, ad, fd, z) columns
        self.total = None if points is None else points * k * n
        self.candidates = (None if points is None else
                           subsample_indices(self.total, SCATTER_ENTRIES if self.total > SCATTER_ENTRIES else self.total))
        self.picked = np.zeros((4, 0))
        self.worst_picked = np.zeros((4, 0))

    def update(self, ad: np.ndarray, fd: np.ndarray, error: np.ndarray, kinks: np.ndarray,
               backward: np.ndarray | None = None, forward: np.ndarray | None = None, offset: int = 0) -> None:
        """Add one chunk: each ``[b, k, n]``; ``kinks`` boolean; the one-sided slopes for the
        kinks' report (NaN or None with forward differences)."""
        for rows in blocks(ad.shape):
            self._update(ad[:, rows], fd[:, rows], error[:, rows], kinks[:, rows],
                         None if backward is None else backward[:, rows], None if forward is None else forward[:, rows],
                         offset, rows)

    def _update(self, ad, fd, error, kinks, backward, forward, offset, rows: slice) -> None:
        ad = np.asarray(ad, dtype=np.float64)
        fd = np.asarray(fd, dtype=np.float64)
        error = np.asarray(error, dtype=np.float64)
        kinks = np.asarray(kinks, dtype=bool)
        abs_err = np.abs(fd - ad)
        z = z_scores(ad, fd, error, self.ad_dtype)
        rel = relative_error(fd, ad, axis=2)
        finite = np.isfinite(z) & np.isfinite(rel)
        # the common chunk: every entry finite and smooth; its sums and maxima skip the masks
        every = bool(finite.all()) and not kinks.any()
        kink = finite & kinks
        smooth = finite & ~kinks
        ok = (z <= self.max_z) if every else smooth & (z <= self.max_z)
        if self.max_rel_error is not None:
            ok &= rel <= self.max_rel_error
        self.entries += z.size
        self.nonfinite_entries += 0 if every else int((~finite).sum())
        self.kinks += 0 if every else int(kink.sum())
        self.smooth += z.size if every else int(smooth.sum())
        self.within += int(ok.sum())
        if every or finite.any():
            self.max_abs = max(self.max_abs, float((abs_err if every else abs_err[finite]).max()))
            self.max_rel = max(self.max_rel, float((rel if every else rel[finite]).max()))
        if every or smooth.any():
            zs = z.ravel() if every else z[smooth]
            self.max_z_seen = max(self.max_z_seen, float(zs.max()))
            idx = np.floor((np.log10(np.maximum(zs, 10.0 ** LOW)) - LOW) * BINS_PER_DECADE).astype(np.int64) + 1
            self.hist += np.bincount(np.clip(idx, 1, len(self.hist) - 1), minlength=len(self.hist))
            cell = z.max(axis=0) if every else np.where(smooth, z, -np.inf).max(axis=0)
            cell = np.where(np.isfinite(cell), cell, np.nan)
            self.cell_z[rows] = np.fmax(self.cell_z[rows], cell)
        if not every:
            self.cell_kinks[rows] += kink.sum(axis=0)
        if self.candidates is not None:
            self._sample(ad, fd, z, offset, rows)
        # the worst smooth entries by z, and the kinks with the largest jump
        self._keep(self.worst, z if every else np.where(smooth, z, -np.inf), smooth, ad, fd, error, z, rel, abs_err,
                   offset, rows)
        if kink.any() and backward is not None and forward is not None:
            b, f = np.asarray(backward, np.float64), np.asarray(forward, np.float64)
            lo, hi = np.minimum(b, f), np.maximum(b, f)
            benign = kink & (ad >= lo - self.max_z * error) & (ad <= hi + self.max_z * error)
            self.kinks_benign += int(benign.sum())
            jump = np.where(kink, np.abs(f - b), -np.inf)
            take = min(self.keep, int(kink.sum()))
            for flat in np.argpartition(-jump.ravel(), take - 1)[:take]:
                p, i, j = (int(v) for v in np.unravel_index(flat, jump.shape))
                self.worst_kinks.append({"point": p + offset, "output": i + rows.start, "input": j,
                                         "ad": float(ad[p, i, j]), "backward": float(b[p, i, j]),
                                         "forward": float(f[p, i, j]), "jump": float(f[p, i, j] - b[p, i, j]),
                                         "benign": bool(benign[p, i, j])})
            self.worst_kinks = sorted(self.worst_kinks, key=lambda w: (-abs(w["jump"]), w["point"], w["output"],
                                                                       w["input"]))[: self.keep]

    def _keep(self, into, key, mask, ad, fd, error, z, rel, abs_err, offset, rows) -> None:
        take = min(self.keep, int(mask.sum()))
        if not take:
            return
        # once `keep` entries are kept, only this chunk's entries at or above the least of
        # them can enter: select among those (few after the first chunks) instead of all
        floor = into[-1]["z"] if len(into) >= self.keep else -np.inf
        for flat in _largest(key.ravel(), take, floor):
            p, i, j = (int(v) for v in np.unravel_index(flat, key.shape))
            into.append({"point": p + offset, "output": i + rows.start, "input": j, "ad": float(ad[p, i, j]),
                         "fd": float(fd[p, i, j]), "error_estimate": float(error[p, i, j]), "z": float(z[p, i, j]),
                         "abs_error": float(abs_err[p, i, j]), "rel_error": float(rel[p, i, j])})
        into.sort(key=lambda w: (-w["z"], w["point"], w["output"], w["input"]))
        del into[self.keep:]

    def _sample(self, ad, fd, z, offset: int, rows: slice) -> None:
        b, r, n = z.shape
        # the flat index in [points, k, n] of this block's first entry of each (point, row)
        base = ((offset + np.arange(b))[:, None] * self.k + (rows.start + np.arange(r))[None, :]) * n
        key = np.where(np.isfinite(z), z, np.inf)
        lo, hi = offset * self.k * n, (offset + b) * self.k * n
        c = self.candidates[(self.candidates >= lo) & (self.candidates < hi)]
        p, rest = np.divmod(c - lo, self.k * n)
        i, j = np.divmod(rest, n)
        inside = (i >= rows.start) & (i < rows.stop)
        p, i, j, c = p[inside], i[inside] - rows.start, j[inside], c[inside]
        self.picked = np.concatenate([self.picked, [c, ad[p, i, j], fd[p, i, j], key[p, i, j]]], axis=1)
        if self.total > SCATTER_ENTRIES:
            take = min(SCATTER_WORST, key.size)
            full = self.worst_picked.shape[1] >= SCATTER_WORST
            flat = _largest(key.ravel(), take, self.worst_picked[3].min() if full else -np.inf)
            p, i, j = np.unravel_index(flat, key.shape)
            mine = np.stack([base[p, i] + j, ad[p, i, j], fd[p, i, j], key[p, i, j]]).astype(np.float64)
            self.worst_picked = _top(np.concatenate([self.worst_picked, mine], axis=1))

    def sample(self) -> "ScatterSample | None":
        """The entries the report's scatter draws: all of them up to :data:`SCATTER_ENTRIES`;
        past it the :data:`SCATTER_WORST` with the largest ``z`` and the rest evenly spaced."""
        if self.candidates is None:
            return None
        picked = self.picked[:, np.argsort(self.picked[0], kind="stable")]
        if self.total > SCATTER_ENTRIES:
            worst = self.worst_picked
            rest = picked[:, ~np.isin(picked[0], worst[0])]
            rest = rest[:, subsample_indices(rest.shape[1], SCATTER_ENTRIES - SCATTER_WORST)]
            picked = np.concatenate([worst, rest], axis=1)
        flat = picked[0].astype(np.int64)
        p, rest_ = np.divmod(flat, self.k * self.n)
        o, j = np.divmod(rest_, self.n)
        return ScatterSample(p, o, j, picked[1], picked[2], picked[3], int(self.total),
                             SCATTER_WORST if self.total > SCATTER_ENTRIES else 0)

    def merge(self, other: "AgreementAccumulator") -> "AgreementAccumulator":
        """Add another accumulator's counts (e.g. from another worker)."""
        if self.candidates is not None and other.candidates is not None:
            self.picked = np.concatenate([self.picked, other.picked], axis=1)
            self.worst_picked = _top(np.concatenate([self.worst_picked, other.worst_picked], axis=1))
        for name in ("entries", "smooth", "within", "kinks", "kinks_benign", "nonfinite_entries", "retested"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)
        self.max_z_seen = max(self.max_z_seen, other.max_z_seen)
        self.hist += other.hist
        self.cell_z = np.fmax(self.cell_z, other.cell_z)
        self.cell_kinks += other.cell_kinks
        self.worst = sorted(self.worst + other.worst, key=lambda w: (-w["z"], w["point"], w["output"],
                                                                     w["input"]))[: self.keep]
        self.worst_kinks = sorted(self.worst_kinks + other.worst_kinks,
                                  key=lambda w: (-abs(w["jump"]), w["point"], w["output"], w["input"]))[: self.keep]
        return self

    def median_z(self) -> float | None:
        if not self.smooth:
            return None
        k = int(np.searchsorted(np.cumsum(self.hist), (self.smooth + 1) / 2))
        return float(10 ** (LOW + (k - 0.5) / BINS_PER_DECADE))

    def summary(self) -> dict:
        """A JSON-ready summary: counts, z and relative errors, the worst entries, the kinks."""
        finite = self.entries - self.nonfinite_entries
        return {
            "entries": int(self.entries),
            "smooth_entries": int(self.smooth),
            "share_within_tolerance": self.within / self.smooth if self.smooth else None,
            "max_z": self.max_z_seen if self.smooth else None,
            "median_z": self.median_z(),
            "max_abs_error": self.max_abs if finite else None,
            "max_rel_error": self.max_rel if finite else None,
            "nonfinite_entries": int(self.nonfinite_entries),
            "retested": int(self.retested),
            "estimate": {"rule": "|ad - fd| <= max_z * (error + floor)", "max_z": self.max_z,
                         "max_rel_error": self.max_rel_error, "floor_ulps": FLOOR_ULPS,
                         "ad_dtype": self.ad_dtype},
            "kinks": {"count": int(self.kinks), "share": self.kinks / finite if finite else None,
                      "benign": int(self.kinks_benign), "worst": list(self.worst_kinks)},
            "worst": list(self.worst),
        }


def _largest(key: np.ndarray, take: int, floor: float) -> np.ndarray:
    """Flat indices of the ``take`` largest entries of ``key`` (1-D), leaving out entries
    below ``floor``: those could not enter the kept set, which already holds that many at
    or above it. Ties at the floor stay candidates, so the kept set is the same as from
    all entries."""
    if floor > -np.inf:
        cand = np.flatnonzero(key >= floor)
        if cand.size <= take:
            return cand
        return cand[np.argpartition(-key[cand], take - 1)[:take]]
    return np.argpartition(-key, take - 1)[:take]


def _top(columns: np.ndarray) -> np.ndarray:
    """The :data:`SCATTER_WORST` columns (flat index, ad, fd, z) of largest z, ties by index."""
    order = np.lexsort((columns[0], -columns[3]))[:SCATTER_WORST]
    return columns[:, order]


@dataclass
class ScatterSample:
    """FD-vs-AD entries for the report's scatter, chosen while the chunks streamed past.

    ``point``, ``output`` (row of the compared outputs), ``input``, ``ad``, ``fd`` and
    ``z`` (non-finite as inf) per entry, the worst ``worst`` first; ``total`` entries in all.
    """

    point: np.ndarray
    output: np.ndarray
    input: np.ndarray
    ad: np.ndarray
    fd: np.ndarray
    z: np.ndarray
    total: int
    worst: int = 0


def agreement(ad: np.ndarray, fd: np.ndarray, error: np.ndarray, kinks: np.ndarray | None = None,
              ad_dtype: str = "float64", **kw) -> dict:
    """FD-vs-AD agreement of whole arrays ``[P, k, n]``: the summary, the per-entry ``z``
    and the scatter's sample."""
    kinks = np.zeros(np.shape(ad), dtype=bool) if kinks is None else kinks
    acc = AgreementAccumulator(ad.shape[1], ad.shape[2], ad_dtype, points=len(ad), **kw)
    acc.update(ad, fd, error, kinks)
    return {"summary": acc.summary(), "z": z_scores(ad, fd, error, ad_dtype), "cell_z": acc.cell_z,
            "cell_kinks": acc.cell_kinks, "sample": acc.sample()}


def z_scores(ad: np.ndarray, fd: np.ndarray, error: np.ndarray, ad_dtype: str) -> np.ndarray:
    """Per-entry ``z`` (see the module's docstring)."""
    ad = np.asarray(ad, dtype=np.float64)
    scale = np.nanmax(np.abs(np.where(np.isfinite(ad), ad, np.nan)), axis=2, initial=0.0, keepdims=True)
    floor = FLOOR_ULPS * unit_roundoff(ad_dtype) * scale + np.finfo(np.float64).tiny
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.abs(np.asarray(fd, np.float64) - ad) / (np.asarray(error, np.float64) + floor)


@dataclass
class Agreement:
    """FD-vs-AD agreement as the analysis stage measured it (the checks stage judges it)."""

    summary: dict[str, Any]  # see AgreementAccumulator.summary; worst entries name outputs by model index
    outputs: list[int]  # output index of each row compared
    compared: str  # the automatic method compared with finite differences
    dtype: str  # the automatic derivatives' dtype
    cell_z: np.ndarray | None = None  # [k, n] largest z over the points (smooth entries)
    cell_kinks: np.ndarray | None = None  # [k, n] kinks over the points
    scheme: str = "central"
    sample: ScatterSample | None = None  # the entries the report's scatter draws

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "compared": self.compared, "dtype": self.dtype, "scheme": self.scheme}
