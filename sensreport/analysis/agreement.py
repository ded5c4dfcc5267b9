"""Agreement of finite differences with automatic derivatives, streamed over chunks (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .measures import blocks
from .stats import relative_error


def tolerance(dtype: str) -> float:
    """Relative tolerance for FD-vs-AD agreement by the coarser dtype involved.

    float32: 2e-3, float64: 1e-5 (the tolerances of JAX's ``check_grads``).
    """
    return 2e-3 if dtype == "float32" else 1e-5


class AgreementAccumulator:
    """Streaming FD-vs-AD agreement, fed one chunk of points at a time.

    Per entry, ``abs_error = |fd - ad|`` and
    ``rel_error = abs_error / max(|ad|, 1e-3 * max_j |ad[p, i, j]|)``: an entry that is
    tiny next to the largest derivative of the same output at the same point is judged
    against 0.1% of that largest one, so that it does not produce a huge relative
    error. The floor depends only on the point itself, so chunking cannot change it.
    An entry agrees when ``rel_error <= rtol``. The median comes from a histogram of
    ``log10(rel_error)`` with 1,000 bins per decade (within 0.25%).
    """

    BINS_PER_DECADE = 1000
    LOW, HIGH = -20, 10  # decades

    def __init__(self, rtol: float, worst: int = 10):
        self.rtol = rtol
        self.keep = worst
        self.entries = 0
        self.within = 0
        self.nonfinite_entries = 0
        self.max_abs = -np.inf
        self.max_rel = -np.inf
        self.zero = 0  # entries with rel_error == 0 (below the histogram)
        self.hist = np.zeros((self.HIGH - self.LOW) * self.BINS_PER_DECADE + 2, dtype=np.int64)
        self.worst: list[dict] = []

    def update(self, ad: np.ndarray, fd: np.ndarray, offset: int = 0) -> None:
        """Add ``ad`` and ``fd`` ``[b, k, n]`` for points ``offset .. offset + b``."""
        for rows in blocks(ad.shape):
            self._update(ad[:, rows], fd[:, rows], offset, rows.start)

    def _update(self, ad: np.ndarray, fd: np.ndarray, offset: int, first_output: int) -> None:
        ad = np.asarray(ad, dtype=np.float64)
        fd = np.asarray(fd, dtype=np.float64)
        abs_err = np.abs(fd - ad)
        rel = relative_error(fd, ad, axis=2)
        finite = np.isfinite(rel)
        self.entries += rel.size
        self.nonfinite_entries += int((~finite).sum())
        self.within += int((finite & (rel <= self.rtol)).sum())
        if finite.any():
            self.max_abs = max(self.max_abs, float(abs_err[finite].max()))
            self.max_rel = max(self.max_rel, float(rel[finite].max()))
            r = rel[finite]
            self.zero += int((r == 0).sum())
            pos = r[r > 0]
            idx = np.floor((np.log10(pos) - self.LOW) * self.BINS_PER_DECADE).astype(np.int64) + 1
            np.add.at(self.hist, np.clip(idx, 1, len(self.hist) - 1), 1)
        # the chunk's worst finite entries (non-finite ones are counted above and located
        # by the non-finite scan), then merged with those kept so far
        flat = np.where(finite, rel, -np.inf).ravel()
        take = min(self.keep, int(finite.sum()))
        if take:
            cand = np.argpartition(-flat, take - 1)[:take]
            for f in cand:
                p, i, j = (int(v) for v in np.unravel_index(f, rel.shape))
                self.worst.append({"point": p + offset, "output": i + first_output, "input": j, "ad": float(ad[p, i, j]),
                                   "fd": float(fd[p, i, j]), "abs_error": float(abs_err[p, i, j]),
                                   "rel_error": float(rel[p, i, j])})
            self._trim()

    def _trim(self) -> None:
        def key(w):
            return (-w["rel_error"], w["point"], w["output"], w["input"])

        self.worst = sorted(self.worst, key=key)[: self.keep]

    def merge(self, other: "AgreementAccumulator") -> "AgreementAccumulator":
        """Add another accumulator's counts (e.g. from another worker)."""
        self.entries += other.entries
        self.within += other.within
        self.nonfinite_entries += other.nonfinite_entries
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)
        self.zero += other.zero
        self.hist += other.hist
        self.worst += other.worst
        self._trim()
        return self

    def median(self) -> float | None:
        finite = self.entries - self.nonfinite_entries
        if not finite:
            return None
        half = (finite + 1) / 2
        if self.zero >= half:
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.hist), half - self.zero))
        return float(10 ** (self.LOW + (k - 0.5) / self.BINS_PER_DECADE))

    def summary(self) -> dict:
        """A JSON-ready summary: tolerance, counts, max/median errors and the worst entries."""
        finite = self.entries - self.nonfinite_entries
        return {
            "rtol": self.rtol,
            "entries": int(self.entries),
            "max_abs_error": self.max_abs if finite else None,
            "max_rel_error": self.max_rel if finite else None,
            "median_rel_error": self.median(),
            "share_within_tolerance": self.within / self.entries if self.entries else None,
            "nonfinite_entries": int(self.nonfinite_entries),
            "worst": list(self.worst),
        }


def agreement(ad: np.ndarray, fd: np.ndarray, rtol: float, worst: int = 10) -> dict:
    """FD-vs-AD agreement of whole arrays ``[P, k, n]``: see :class:`AgreementAccumulator`.

    Returns ``{"summary": ...}`` plus the per-entry ``abs_error`` and ``rel_error`` arrays.
    """
    acc = AgreementAccumulator(rtol, worst)
    acc.update(ad, fd)
    abs_err = np.abs(np.asarray(fd, dtype=np.float64) - np.asarray(ad, dtype=np.float64))
    return {"abs_error": abs_err, "rel_error": relative_error(fd, ad, axis=2), "summary": acc.summary()}


@dataclass
class Agreement:
    """FD-vs-AD agreement as the analysis stage measured it (the checks stage judges it)."""

    summary: dict[str, Any]  # see AgreementAccumulator.summary; worst entries name outputs by model index
    outputs: list[int]  # output index of each row compared
    compared: str  # the automatic method compared with finite differences
    dtype: str  # the automatic derivatives' dtype

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "compared": self.compared, "dtype": self.dtype}
