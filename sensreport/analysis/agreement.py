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

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .measures import blocks, parallel_map
from .stats import finite_max, relative_to
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
        self.add(self.measure(ad, fd, error, kinks, backward, forward, offset))

    def measure(self, ad: np.ndarray, fd: np.ndarray, error: np.ndarray, kinks: np.ndarray,
                backward: np.ndarray | None = None, forward: np.ndarray | None = None,
                offset: int = 0) -> "MeasuredChunk":
        """Measure one chunk (as :meth:`update`) without adding it: :meth:`add` adds it,
        and its ``suspects`` count the smooth entries beyond ``max_z`` first, which a
        caller may difference again and measure anew.

        The chunk's blocks of outputs are measured on the reduction threads, each from
        what it owns and the state before the chunk, and added in order: the numbers are
        the same on any number of threads and in any chunking.
        """
        before = _Floors(self.worst[-1]["z"] if len(self.worst) >= self.keep else -np.inf,
                         self.worst_picked[3].min() if self.worst_picked.shape[1] >= SCATTER_WORST else -np.inf)

        def measure(rows: slice) -> _Block:
            return self._measure(ad[:, rows], fd[:, rows], error[:, rows], kinks[:, rows],
                                 None if backward is None else backward[:, rows],
                                 None if forward is None else forward[:, rows], offset, rows, before)

        return MeasuredChunk(parallel_map(measure, blocks(np.shape(ad))))

    def add(self, chunk: "MeasuredChunk") -> None:
        """Add a chunk :meth:`measure` measured (chunks in any order: the sums do not care)."""
        for block in chunk.blocks:
            self._add(block)

    def _measure(self, ad, fd, error, kinks, backward, forward, offset, rows: slice, before: "_Floors") -> "_Block":
        """One block's counts, maxima, histogram and candidates (reads nothing it does not own)."""
        kinks = np.asarray(kinks, dtype=bool)
        error = np.asarray(error, dtype=np.float64)
        out = _Block(rows)
        scratch = _SCRATCH
        ad, abs_err, z, rel = _entry_errors(ad, fd, error, self.ad_dtype, scratch)
        fd = np.asarray(fd, dtype=np.float64)
        max_z, max_rel = z.max(), rel.max()  # NaN propagates: finite maxima mean every entry is finite
        # the common block: every entry finite and smooth; its sums and maxima need no masks
        every = bool(np.isfinite(max_z) and np.isfinite(max_rel)) and not kinks.any()
        if every:
            finite = smooth = kink = None
            ok = z <= self.max_z
        else:
            finite = np.isfinite(z) & np.isfinite(rel)
            kink = finite & kinks
            smooth = finite & ~kinks
            ok = smooth & (z <= self.max_z)
        out.entries = z.size
        out.nonfinite = 0 if every else z.size - int(np.count_nonzero(finite))
        out.kinks = 0 if every else int(np.count_nonzero(kink))
        out.smooth = z.size if every else int(np.count_nonzero(smooth))
        out.suspects = out.smooth - int(np.count_nonzero(ok))  # smooth entries beyond max_z
        if self.max_rel_error is not None:
            ok &= rel <= self.max_rel_error
            out.within = int(np.count_nonzero(ok))
        else:
            out.within = out.smooth - out.suspects
        if every:
            out.max_abs, out.max_rel, out.max_z = float(abs_err.max()), float(max_rel), float(max_z)
            out.hist = _histogram(z.ravel(), scratch)
            out.cell_z = z.max(axis=0)
        else:
            if finite.any():
                out.max_abs = float(abs_err.max(where=finite, initial=-np.inf))
                out.max_rel = float(rel.max(where=finite, initial=-np.inf))
            if smooth.any():
                out.max_z = float(z.max(where=smooth, initial=-np.inf))
                out.hist = _histogram(z[smooth], scratch)
                cell = z.max(axis=0, where=smooth, initial=-np.inf)
                out.cell_z = np.where(np.isfinite(cell), cell, np.nan)
            out.cell_kinks = kink.sum(axis=0)
        if self.candidates is not None:
            self._sample(out, ad, fd, z, every, offset, rows, before.sample)
        # the worst smooth entries by z, and the kinks with the largest jump
        key = z if every else np.where(smooth, z, -np.inf)
        for flat in _largest(key.ravel(), min(self.keep, out.smooth), before.worst) if out.smooth else ():
            p, i, j = (int(v) for v in np.unravel_index(flat, key.shape))
            out.worst.append({"point": p + offset, "output": i + rows.start, "input": j, "ad": float(ad[p, i, j]),
                              "fd": float(fd[p, i, j]), "error_estimate": float(error[p, i, j]), "z": float(z[p, i, j]),
                              "abs_error": float(abs_err[p, i, j]), "rel_error": float(rel[p, i, j])})
        if out.kinks and backward is not None and forward is not None:
            b, f = np.asarray(backward, np.float64), np.asarray(forward, np.float64)
            lo, hi = np.minimum(b, f), np.maximum(b, f)
            benign = kink & (ad >= lo - self.max_z * error) & (ad <= hi + self.max_z * error)
            out.kinks_benign = int(np.count_nonzero(benign))
            jump = np.where(kink, np.abs(f - b), -np.inf)
            take = min(self.keep, out.kinks)
            for flat in np.argpartition(-jump.ravel(), take - 1)[:take]:
                p, i, j = (int(v) for v in np.unravel_index(flat, jump.shape))
                out.worst_kinks.append({"point": p + offset, "output": i + rows.start, "input": j,
                                        "ad": float(ad[p, i, j]), "backward": float(b[p, i, j]),
                                        "forward": float(f[p, i, j]), "jump": float(f[p, i, j] - b[p, i, j]),
                                        "benign": bool(benign[p, i, j])})
        return out

    def _sample(self, out: "_Block", ad, fd, z, every: bool, offset: int, rows: slice, floor: float) -> None:
        b, r, n = z.shape
        key = z if every else np.where(np.isfinite(z), z, np.inf)
        lo, hi = offset * self.k * n, (offset + b) * self.k * n
        c = self.candidates[(self.candidates >= lo) & (self.candidates < hi)]
        p, rest = np.divmod(c - lo, self.k * n)
        i, j = np.divmod(rest, n)
        inside = (i >= rows.start) & (i < rows.stop)
        p, i, j, c = p[inside], i[inside] - rows.start, j[inside], c[inside]
        out.picked = np.array([c, ad[p, i, j], fd[p, i, j], key[p, i, j]], dtype=np.float64)
        if self.total > SCATTER_ENTRIES:
            # the flat index in [points, k, n] of this block's first entry of each (point, row)
            base = ((offset + np.arange(b))[:, None] * self.k + (rows.start + np.arange(r))[None, :]) * n
            flat = _largest(key.ravel(), min(SCATTER_WORST, key.size), floor)
            p, i, j = np.unravel_index(flat, key.shape)
            out.worst_picked = np.stack([base[p, i] + j, ad[p, i, j], fd[p, i, j], key[p, i, j]]).astype(np.float64)

    def _add(self, block: "_Block") -> None:
        """Fold one measured block into the totals (in block order)."""
        rows = block.rows
        self.entries += block.entries
        self.nonfinite_entries += block.nonfinite
        self.kinks += block.kinks
        self.kinks_benign += block.kinks_benign
        self.smooth += block.smooth
        self.within += block.within
        self.max_abs = max(self.max_abs, block.max_abs)
        self.max_rel = max(self.max_rel, block.max_rel)
        self.max_z_seen = max(self.max_z_seen, block.max_z)
        if block.hist is not None:
            self.hist += block.hist
        if block.cell_z is not None:
            self.cell_z[rows] = np.fmax(self.cell_z[rows], block.cell_z)
        if block.cell_kinks is not None:
            self.cell_kinks[rows] += block.cell_kinks
        if block.picked is not None:
            self.picked = np.concatenate([self.picked, block.picked], axis=1)
        if block.worst_picked is not None:
            self.worst_picked = _top(np.concatenate([self.worst_picked, block.worst_picked], axis=1))
        if block.worst:
            self.worst = sorted(self.worst + block.worst,
                                key=lambda w: (-w["z"], w["point"], w["output"], w["input"]))[: self.keep]
        if block.worst_kinks:
            self.worst_kinks = sorted(self.worst_kinks + block.worst_kinks,
                                      key=lambda w: (-abs(w["jump"]), w["point"], w["output"], w["input"]))[: self.keep]

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
    abs_err = np.abs(np.asarray(fd, np.float64) - ad)
    return _z(abs_err, error, finite_max(np.abs(ad), axis=2), ad_dtype, out=None)


def disagreeing(ad: np.ndarray, fd: np.ndarray, error: np.ndarray, kinks: np.ndarray, ad_dtype: str,
                max_z: float) -> np.ndarray:
    """The smooth entries whose ``z`` exceeds ``max_z`` (``[b, k, n]`` boolean), measured a
    block of outputs at a time on the reduction threads."""
    bad = np.empty(np.shape(ad), dtype=bool)

    def mark(rows: slice) -> None:
        _, _, z, _ = _entry_errors(ad[:, rows], fd[:, rows], error[:, rows], ad_dtype, _SCRATCH, relative=False)
        with np.errstate(invalid="ignore"):
            bad[:, rows] = np.isfinite(z) & (z > max_z) & ~np.asarray(kinks[:, rows], dtype=bool)

    parallel_map(mark, blocks(bad.shape))
    return bad


def _z(abs_err: np.ndarray, error: np.ndarray, scale: np.ndarray, ad_dtype: str, out: np.ndarray | None) -> np.ndarray:
    """``z = |ad - fd| / (error + floor)``, the floor from each row's largest finite |ad| (``scale``)."""
    floor = FLOOR_ULPS * unit_roundoff(ad_dtype) * scale + np.finfo(np.float64).tiny
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = np.add(error, floor, out=out, dtype=np.float64)
        return np.divide(abs_err, out, out=out)


#: The most values a thread's scratch buffer keeps between blocks (8 MiB of float64).
RETAIN_VALUES = 1 << 20


class _Scratch(threading.local):
    """Float64 buffers each thread reuses from block to block: a block's temporaries land
    in memory already touched, instead of pages the allocator fetched afresh after
    TensorFlow's last call (which cost more than the arithmetic)."""

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        size = int(np.prod(shape))
        if size > RETAIN_VALUES:  # a block of one output row over many points: not kept after use
            return np.empty(shape, dtype)
        buf = self.buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self.buffers[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)


_SCRATCH = _Scratch()


def _entry_errors(ad, fd, error, ad_dtype: str, scratch: _Scratch, relative: bool = True):
    """A block's automatic derivatives in float64, ``|fd - ad|``, ``z`` and the relative
    error (:func:`~.stats.relative_error`, or None), in ``scratch``'s buffers."""
    shape = np.shape(ad)
    a = scratch.take("ad", shape)
    np.copyto(a, ad)
    magnitude = np.abs(a, out=scratch.take("abs_ad", shape))
    scale = finite_max(magnitude, axis=2)
    abs_err = np.subtract(fd, a, out=scratch.take("abs_err", shape), dtype=np.float64)
    np.abs(abs_err, out=abs_err)
    z = _z(abs_err, error, scale, ad_dtype, out=scratch.take("z", shape))
    rel = relative_to(abs_err, magnitude, scale, out=scratch.take("rel", shape)) if relative else None
    return a, abs_err, z, rel


def _histogram(zs: np.ndarray, scratch: _Scratch) -> np.ndarray:
    """Counts of ``log10(z)`` in bins of 1/:data:`BINS_PER_DECADE` decade (1-D finite ``zs``;
    below :data:`LOW` in the first, past :data:`HIGH` in the last)."""
    t = np.maximum(zs, 10.0 ** LOW, out=scratch.take("hist", zs.shape))
    np.log10(t, out=t)
    t -= LOW
    t *= BINS_PER_DECADE
    np.floor(t, out=t)
    t += 1
    np.clip(t, 1, (HIGH - LOW) * BINS_PER_DECADE + 1, out=t)
    idx = scratch.take("bins", zs.shape, np.intp)
    np.copyto(idx, t, casting="unsafe")
    return np.bincount(idx, minlength=(HIGH - LOW) * BINS_PER_DECADE + 2)


@dataclass
class MeasuredChunk:
    """One chunk's agreement, measured by :meth:`AgreementAccumulator.measure` and not yet added."""

    blocks: list["_Block"]

    @property
    def suspects(self) -> int:
        """Smooth entries whose ``z`` exceeds ``max_z``."""
        return sum(b.suspects for b in self.blocks)


@dataclass
class _Floors:
    """The least entry already kept, before a chunk: worst entries, scatter's worst."""

    worst: float
    sample: float


@dataclass
class _Block:
    """What one block of outputs adds to an :class:`AgreementAccumulator`."""

    rows: slice
    entries: int = 0
    nonfinite: int = 0
    kinks: int = 0
    kinks_benign: int = 0
    smooth: int = 0
    within: int = 0
    suspects: int = 0
    max_abs: float = -np.inf
    max_rel: float = -np.inf
    max_z: float = -np.inf
    hist: np.ndarray | None = None
    cell_z: np.ndarray | None = None
    cell_kinks: np.ndarray | None = None
    picked: np.ndarray | None = None
    worst_picked: np.ndarray | None = None
    worst: list = field(default_factory=list)
    worst_kinks: list = field(default_factory=list)


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
