"""Sensitivity measures, rankings, FD-vs-AD agreement and non-finite scans (pure numpy).

All functions take derivative arrays ``J[p, i, j] = d y_i / d x_j`` at points ``p``
and return plain arrays or dicts; nothing here knows about TensorFlow or files.
Non-finite derivatives are left out of the averages (and reported separately by
:func:`nonfinite`).
"""

from __future__ import annotations

import warnings

import numpy as np

#: Plain-language definitions with references, shown in the report's methods section.
DEFINITIONS = {
    "mean_abs": (
        "Mean |dy/dx|",
        "The average absolute derivative over the points: how much the output moves per unit of the input.",
        "Saltelli et al., Global Sensitivity Analysis: The Primer, Wiley 2008, ch. 1.",
    ),
    "rms": (
        "RMS dy/dx (DGSM)",
        "The root mean square of the derivative over the points, sqrt(nu) for the derivative-based "
        "global sensitivity measure nu = E[(dy/dx)^2]; large where the output is steep anywhere.",
        "Sobol' & Kucherenko, Derivative based global sensitivity measures, Math. Comput. Simul. 79 (2009) 3009-3017.",
    ),
    "std_scaled": (
        "Std-scaled",
        "Mean |dy/dx| times the input's standard deviation over the points: the output change caused by a "
        "typical variation of the input, comparable across inputs with different units.",
        "Saltelli et al., Global Sensitivity Analysis: The Primer, Wiley 2008, sec. 1.2.3 (sigma-normalised derivatives).",
    ),
    "elasticity": (
        "Elasticity",
        "Mean |x / y * dy/dx|: the percent change of the output per percent change of the input. Points "
        "where the output is within 1e-6 of zero (relative to its largest value) are left out.",
        "Sydsaeter & Hammond, Essential Mathematics for Economic Analysis, 2016, sec. 7.7.",
    ),
    "positive_share": (
        "Share positive",
        "The share of points where the derivative is positive: 1 means the output always rises with the "
        "input, 0 always falls, values in between mean the direction depends on the point.",
        "",
    ),
}

ELASTICITY_GUARD = 1e-6


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are expected and reported
        return np.nanmean(a, axis=axis)


def sensitivity_measures(jac: np.ndarray, points: np.ndarray, outputs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-output, per-input measures ``[m, n]`` from Jacobians ``[P, m, n]``.

    Parameters
    ----------
    jac : ndarray [P, m, n]
    points : ndarray [P, n]
        The inputs, for the input spread and elasticities.
    outputs : ndarray [P, m]
        The outputs at the points, for elasticities.

    Returns
    -------
    dict with ``mean_abs``, ``rms``, ``std_scaled``, ``elasticity``, ``positive_share``;
    ``std_scaled`` is NaN with a single point (no spread to measure).
    """
    j = np.where(np.isfinite(jac), jac, np.nan).astype(np.float64)
    x = np.asarray(points, dtype=np.float64)
    y = np.asarray(outputs, dtype=np.float64)
    mean_abs = _nanmean(np.abs(j), 0)
    rms = np.sqrt(_nanmean(j**2, 0))
    spread = x.std(axis=0) if len(x) > 1 else np.full(x.shape[1], np.nan)
    guard = ELASTICITY_GUARD * np.nanmax(np.abs(np.where(np.isfinite(y), y, np.nan)), axis=0, initial=0.0)
    safe_y = np.where(np.abs(y) > np.maximum(guard, np.finfo(np.float64).tiny), y, np.nan)
    elasticity = _nanmean(np.abs(j * x[:, None, :] / safe_y[:, :, None]), 0)
    positive = _nanmean(np.where(np.isnan(j), np.nan, (j > 0).astype(np.float64)), 0)
    return {
        "mean_abs": mean_abs,
        "rms": rms,
        "std_scaled": mean_abs * spread[None, :],
        "elasticity": elasticity,
        "positive_share": positive,
    }


#: Measures that are already comparable across outputs: averaged, not normalised.
UNITLESS = frozenset({"positive_share"})


def overall(measure: np.ndarray, name: str = "") -> np.ndarray:
    """One value per input from a ``[m, n]`` measure, every output counting equally.

    Each output's row is divided by its sum over inputs (so outputs in different
    units are comparable), then the shares are averaged over outputs. Rows that
    sum to zero or are all NaN are left out. ``positive_share`` is a share already
    and is simply averaged over outputs.
    """
    m = np.asarray(measure, dtype=np.float64)
    if name in UNITLESS:
        return _nanmean(m, 0)
    total = np.nansum(m, axis=1, keepdims=True)
    shares = np.where(total > 0, m / np.where(total > 0, total, 1.0), np.nan)
    return _nanmean(shares, 0)


def ranking(values: np.ndarray) -> list[int]:
    """Indices ordered from most to least sensitive; NaN last; ties keep input order."""
    v = np.asarray(values, dtype=np.float64)
    key = np.where(np.isnan(v), -np.inf, v)
    return [int(i) for i in np.argsort(-key, kind="stable")]


def tolerance(dtype: str) -> float:
    """Relative tolerance for FD-vs-AD agreement by the coarser dtype involved.

    float32: 2e-3, float64: 1e-5 (the tolerances of JAX's ``check_grads``).
    """
    return 2e-3 if dtype == "float32" else 1e-5


def agreement(ad: np.ndarray, fd: np.ndarray, rtol: float, worst: int = 10) -> dict:
    """Per-entry error between finite differences and automatic derivatives.

    ``abs_error = |fd - ad|``; ``rel_error = abs_error / max(|ad|, floor_i)`` where
    ``floor_i`` is 1e-3 times the largest |ad| of output ``i`` over all points and
    inputs (1 where that is 0), so that entries that are tiny next to their output's
    scale do not produce huge relative errors. An entry agrees when
    ``rel_error <= rtol``.

    Returns a dict with the error arrays and a JSON-ready ``summary``.
    """
    ad = np.asarray(ad, dtype=np.float64)
    fd = np.asarray(fd, dtype=np.float64)
    abs_err = np.abs(fd - ad)
    scale = np.nanmax(np.abs(np.where(np.isfinite(ad), ad, np.nan)), axis=(0, 2), initial=0.0)
    floor = np.where(scale > 0, 1e-3 * scale, 1.0)[None, :, None]
    rel_err = abs_err / np.maximum(np.abs(ad), floor)
    finite = np.isfinite(rel_err)
    order = np.argsort(np.where(finite, rel_err, np.inf), axis=None)[::-1][:worst]
    worst_entries = []
    for flat in order:
        p, i, j = (int(v) for v in np.unravel_index(flat, rel_err.shape))
        worst_entries.append(
            {
                "point": p,
                "output": i,
                "input": j,
                "ad": float(ad[p, i, j]),
                "fd": float(fd[p, i, j]),
                "abs_error": float(abs_err[p, i, j]),
                "rel_error": float(rel_err[p, i, j]),
            }
        )
    total = rel_err.size
    summary = {
        "rtol": rtol,
        "entries": int(total),
        "max_abs_error": float(np.nanmax(abs_err)) if finite.any() else None,
        "max_rel_error": float(np.max(rel_err[finite])) if finite.any() else None,
        "median_rel_error": float(np.median(rel_err[finite])) if finite.any() else None,
        "share_within_tolerance": float(np.mean(finite & (rel_err <= rtol))) if total else None,
        "nonfinite_entries": int((~finite).sum()),
        "worst": worst_entries,
    }
    return {"abs_error": abs_err, "rel_error": rel_err, "summary": summary}


def nonfinite(array: np.ndarray, limit: int = 20) -> dict:
    """Count and locate NaN / infinite entries: ``{count, nan, inf, locations}``.

    ``locations`` holds up to ``limit`` index tuples into ``array``.
    """
    a = np.asarray(array)
    bad = ~np.isfinite(a)
    where = np.argwhere(bad)[:limit]
    return {
        "count": int(bad.sum()),
        "nan": int(np.isnan(a).sum()),
        "inf": int(np.isinf(a).sum()),
        "locations": [[int(v) for v in idx] for idx in where],
    }


def dead_inputs(jac: np.ndarray) -> list[int]:
    """Inputs whose derivative is exactly zero for every output at every point."""
    j = np.asarray(jac)
    finite = np.where(np.isfinite(j), j, 0.0)
    return [int(k) for k in np.flatnonzero(np.all(finite == 0, axis=(0, 1)))]
