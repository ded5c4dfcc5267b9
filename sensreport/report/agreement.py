"""Finite differences against automatic derivatives: the scatter, the map of the largest
z (error in units of the estimated finite-difference error), kinks, the steps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..analysis.agreement import MAX_Z, ScatterSample
from ..analysis.stats import ranking
from .context import Context
from .figures import BLUE, GREY, SEQUENTIAL, VERMILLION, figure, heat_axes, heat_height, top_cells
from .format import plotly_text, round_list
from .heatmaps import HEATMAP_CELLS



def _max_z(ctx: Context) -> float:
    """The threshold the fd_vs_ad check used (as the checks stage recorded it)."""
    check = next((c for c in ctx.result.checks if c.id == "fd_vs_ad"), None)
    if check is not None and isinstance(check.threshold, dict) and check.threshold.get("max_z"):
        return float(check.threshold["max_z"])
    return MAX_Z


def agreement_section(ctx: Context) -> dict:
    r = ctx.result
    fd = r.methods.get("finite_difference")
    out: dict[str, Any] = {"summary": None, "figures": [], "notes": [], "step": None, "worst": [], "kinks": [],
                           "max_z": _max_z(ctx)}
    if fd is not None and fd.status == "ok" and fd.step is not None:
        step = np.asarray(fd.step, dtype=np.float64)
        med = np.median(step, axis=0)
        out["step"] = {
            "scheme": fd.run.strategy or "", "min": float(step.min()), "max": float(step.max()),
            "per_input": [{"input": ctx.names_in[j], "median": float(med[j])} for j in range(min(ctx.n, 200))],
            "more": max(0, ctx.n - 200),
        }
    if not r.agreement:
        return out
    ag = r.agreement
    a = ag.to_dict()
    out["summary"] = a
    name = lambda w: {**w, "output_name": ctx.names_out[w["output"]], "input_name": ctx.names_in[w["input"]]}  # noqa: E731
    out["worst"] = [name(w) for w in a["worst"]]
    out["kinks"] = [name(w) for w in a["kinks"]["worst"]]
    if ag.scheme != "central":
        out["notes"].append("Kinks are not detected with forward differences (scheme: forward): they need the "
                            "slopes on both sides of each point.")
    if ag.cell_z is not None:
        out["figures"].append(fd_z_map(ctx, ag.cell_z, ag.cell_kinks, ag.outputs, out["max_z"]))
    if ag.sample is None or not len(ag.sample.z):
        out["notes"].append("This run kept no sample of entries for the scatter; the map, the summary and the "
                            "worst entries come from the run itself.")
        return out
    out["figures"].insert(0, fd_scatter(ctx, ag.sample, ag.outputs, out["max_z"]))
    return out


def fd_scatter(ctx: Context, sample: ScatterSample, outputs, max_z) -> dict:
    """The sample the analysis stage kept while streaming (the worst entries by z, the rest evenly spaced)."""
    if sample.worst:
        note = (f"{len(sample.z):,} of {sample.total:,} entries are drawn: the {sample.worst} with the largest z and "
                "the rest evenly spaced.")
    else:
        note = f"All {sample.total:,} entries are drawn."
    x, y, e = sample.ad, sample.fd, sample.z
    labels = [f"point #{int(p)} · {plotly_text(ctx.names_out[outputs[o]])} / {plotly_text(ctx.names_in[j])}"
              for p, o, j in zip(sample.point, sample.output, sample.input)]
    ok = e <= max_z
    data = []
    for mask, label, colour, symbol in ((ok, f"within {max_z:g} estimated errors", BLUE, "circle"),
                                        (~ok, "beyond (or on a kink)", VERMILLION, "x")):
        idx = np.flatnonzero(mask)
        data.append({"type": "scatter", "mode": "markers", "name": f"{label}: {len(idx):,} drawn",
                     "x": round_list(x[idx], 8), "y": round_list(y[idx], 8), "text": [labels[i] for i in idx],
                     "customdata": round_list(np.where(np.isfinite(e[idx]), e[idx], np.nan), 3),
                     "marker": {"color": colour, "symbol": symbol, "size": 6, "opacity": 0.75},
                     "hovertemplate": "%{text}<br>automatic %{x:.6g}<br>finite difference %{y:.6g}"
                                      "<br>z %{customdata:.3g}<extra></extra>"})
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    data.append({"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "name": "identity (fd = ad)",
                 "line": {"color": GREY, "dash": "dash", "width": 1}, "hoverinfo": "skip"})
    layout = {"title": {"text": "Finite difference against automatic derivative, per entry", "x": 0, "xanchor": "left"},
              "height": 480, "xaxis": {"title": {"text": "automatic derivative"}, "zeroline": True, "automargin": True},
              "yaxis": {"title": {"text": "finite difference"}, "zeroline": True, "automargin": True},
              "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}}
    n_ok = int(ok.sum())
    summary = (f"Scatter of {len(e):,} entries, automatic derivative against finite difference: {n_ok:,} lie within "
               f"{max_z:g} estimated errors of the identity line, {len(e) - n_ok:,} beyond (or on a kink).")
    return {"fig": figure("fd-scatter", data, layout, table="points", summary=summary), "notes": [note]}


def fd_z_map(ctx: Context, cell_z: np.ndarray, cell_kinks: np.ndarray, outputs, max_z) -> dict:
    """The largest z over the points per output and input (log scale), kinks in the hover."""
    worst = np.asarray(cell_z, dtype=np.float64)
    cols = list(range(ctx.n))
    limit = max(10, HEATMAP_CELLS // max(1, len(outputs)))
    notes = []
    if ctx.n > limit:
        cols = sorted(ranking(np.nanmax(np.where(np.isnan(worst), -np.inf, worst), axis=0))[:limit])
        notes.append(f"Cell budget: the {limit:,} inputs with the largest z are drawn.")
    w = worst[:, cols]
    z = np.log10(np.maximum(w, 1e-6))  # exact agreement (0) is drawn at 1e-6
    custom = [[[round_list(w[i, c], 4), int(cell_kinks[i, j])] for c, j in enumerate(cols)] for i in range(len(outputs))]
    lo = math.floor(np.nanmin(z)) if np.isfinite(z).any() else -6
    hi = math.ceil(np.nanmax(z)) if np.isfinite(z).any() else 0
    hi = max(hi, math.ceil(math.log10(max_z)) + 1, lo + 1)
    step = max(1, math.ceil((hi - lo) / 7))
    ticks = list(range(lo, hi + 1, step))
    trace = {"type": "heatmap", "x": [plotly_text(ctx.names_in[j]) for j in cols],
             "y": [plotly_text(ctx.names_out[o]) for o in outputs], "z": round_list(z, 4), "customdata": custom,
             "meta": {"values": "customdata"}, "colorscale": SEQUENTIAL, "zmin": lo, "zmax": hi,
             "colorbar": {"title": {"text": "largest z"}, "tickvals": ticks, "ticktext": [f"1e{t}" for t in ticks]},
             "hovertemplate": "input %{x}<br>output %{y}<br>largest z %{customdata[0]:.3g}"
                              "<br>kinks %{customdata[1]}<extra></extra>"}
    x_names = [ctx.names_in[j] for j in cols]
    y_names = [ctx.names_out[o] for o in outputs]
    layout = {**heat_axes("input", "output", x_names, y_names), "height": heat_height(len(outputs), 22, x_names),
              "title": {"text": "Largest z over the points (log scale): |ad − fd| in estimated FD errors",
                        "x": 0, "xanchor": "left"}}
    notes.append(f"Colour is log10 of the largest z over the smooth entries; the threshold {max_z:g} is at "
                 f"{math.log10(max_z):.2f}. Bright cells are where the two methods disagree most; hover shows how "
                 "many points lie on a kink there.")
    summary = (f"Heatmap of the largest z over the points for {len(outputs)} outputs by {len(cols)} inputs (threshold "
               f"{max_z:g}); the largest (output / input) are {top_cells(w, y_names, x_names)}.")
    return {"fig": figure("fd-error", [trace], layout, table="matrix", summary=summary), "notes": notes}
