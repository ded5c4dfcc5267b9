"""Finite differences against automatic derivatives: the scatter, the error map, the steps."""

from __future__ import annotations

from typing import Any
import math

import numpy as np

from ..analysis import summaries as S
from ..analysis.stats import ranking
from ..analysis.stats import relative_error
from .context import Context
from .figures import BLUE, GREY, SEQUENTIAL, VERMILLION, figure, heat_axes, heat_height
from .format import plotly_text, round_list, tolerance_text
from .heatmaps import HEATMAP_CELLS


SCATTER_ENTRIES = 2_000  # FD-vs-AD entries drawn in the scatter


SCATTER_WORST = 200  # of which the worst by relative error


AGREEMENT_ENTRIES = 8_000_000  # entries the error heatmap and scatter are computed from at most


def agreement_section(ctx: Context) -> dict:
    r = ctx.result
    fd = r.methods.get("finite_difference")
    out: dict[str, Any] = {"summary": None, "figures": [], "notes": [], "step": None, "worst": []}
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
    a = r.agreement.summary
    out["summary"] = a
    out["worst"] = [{**w, "output_name": ctx.names_out[w["output"]], "input_name": ctx.names_in[w["input"]]}
                    for w in a["worst"]]
    name = r.agreement.compared
    ad_m = r.methods.get(name)
    ad_outputs = list(r.agreement.outputs)
    if ad_m is None or ad_m.values is None or fd.values is None:
        out["notes"].append("The per-entry comparison needs both derivative arrays, which this run did not keep; "
                            "the summary and the worst entries above come from the run itself.")
        return out
    ad_all, fd_all = ad_m.values, fd.values
    P = len(ad_all)
    per_point = max(1, len(ad_outputs) * ctx.n)
    pts = S.subsample_indices(P, max(1, AGREEMENT_ENTRIES // per_point))
    ad = np.asarray(ad_all[pts], dtype=np.float64)
    fdv = np.asarray(fd_all[pts], dtype=np.float64)[:, ad_outputs, :]
    rel = relative_error(fdv, ad, axis=2)
    if len(pts) < P:
        out["notes"].append(f"The plots use {len(pts):,} of {P:,} points, evenly spaced (entry budget).")
    out["figures"].append(fd_scatter(ctx, ad, fdv, rel, pts, ad_outputs, a["rtol"]))
    out["figures"].append(fd_error_map(ctx, rel, pts, ad_outputs, a["rtol"]))
    return out


def fd_scatter(ctx: Context, ad, fd, rel, pts, outputs, rtol) -> dict:
    flat_rel = np.where(np.isfinite(rel), rel, np.inf).ravel()
    total = flat_rel.size
    if total > SCATTER_ENTRIES:
        worst = np.argpartition(-flat_rel, SCATTER_WORST - 1)[:SCATTER_WORST]
        keep = np.ones(total, dtype=bool)
        keep[worst] = False
        rest = np.flatnonzero(keep)
        pick = np.concatenate([worst, rest[S.subsample_indices(len(rest), SCATTER_ENTRIES - SCATTER_WORST)]])
        note = (f"{SCATTER_ENTRIES:,} of {total:,} entries are drawn: the {SCATTER_WORST} with the largest relative "
                "error and the rest evenly spaced.")
    else:
        pick = np.arange(total)
        note = f"All {total:,} entries are drawn."
    p_i, o_i, j_i = np.unravel_index(pick, rel.shape)
    x, y, e = ad.ravel()[pick], fd.ravel()[pick], flat_rel[pick]
    labels = [f"point #{int(pts[p])} · {plotly_text(ctx.names_out[outputs[o]])} / {plotly_text(ctx.names_in[j])}"
              for p, o, j in zip(p_i, o_i, j_i)]
    ok = e <= rtol
    data = []
    for mask, name, colour, symbol in ((ok, f"within tolerance ({tolerance_text(rtol)})", BLUE, "circle"),
                                       (~ok, "outside tolerance", VERMILLION, "x")):
        idx = np.flatnonzero(mask)
        data.append({"type": "scatter", "mode": "markers", "name": f"{name}: {len(idx):,} drawn",
                     "x": round_list(x[idx], 8), "y": round_list(y[idx], 8), "text": [labels[i] for i in idx],
                     "customdata": round_list(e[idx], 3),
                     "marker": {"color": colour, "symbol": symbol, "size": 6, "opacity": 0.75},
                     "hovertemplate": "%{text}<br>automatic %{x:.6g}<br>finite difference %{y:.6g}"
                                      "<br>relative error %{customdata:.3g}<extra></extra>"})
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    data.append({"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "name": "identity (fd = ad)",
                 "line": {"color": GREY, "dash": "dash", "width": 1}, "hoverinfo": "skip"})
    layout = {"title": {"text": "Finite difference against automatic derivative, per entry", "x": 0, "xanchor": "left"},
              "height": 480, "xaxis": {"title": {"text": "automatic derivative"}, "zeroline": True, "automargin": True},
              "yaxis": {"title": {"text": "finite difference"}, "zeroline": True, "automargin": True},
              "legend": {"orientation": "h", "y": -0.18}}
    return {"fig": figure("fd-scatter", data, layout, table="points"), "notes": [note]}


def fd_error_map(ctx: Context, rel, pts, outputs, rtol) -> dict:
    with np.errstate(invalid="ignore"):
        r = np.where(np.isfinite(rel), rel, np.nan)
        worst = np.nanmax(np.where(np.isnan(r), -np.inf, r), axis=0)  # [k, n]
        at = np.argmax(np.where(np.isnan(r), -np.inf, r), axis=0)
    worst = np.where(np.isinf(worst), np.nan, worst)
    n_cols = ctx.n
    cols = list(range(n_cols))
    limit = max(10, HEATMAP_CELLS // max(1, len(outputs)))
    notes = []
    if n_cols > limit:
        cols = sorted(ranking(np.nanmax(np.where(np.isnan(worst), -np.inf, worst), axis=0))[:limit])
        notes.append(f"Cell budget: the {limit:,} inputs with the largest errors are drawn.")
    w = worst[:, cols]
    z = np.log10(np.maximum(w, 1e-16))  # exact agreement (0) is drawn at 1e-16
    custom = [[[round_list(w[i, c], 4), int(pts[at[i, j]])] for c, j in enumerate(cols)] for i in range(len(outputs))]
    lo = math.floor(np.nanmin(z)) if np.isfinite(z).any() else -16
    hi = math.ceil(np.nanmax(z)) if np.isfinite(z).any() else 0
    hi = max(hi, math.ceil(math.log10(rtol)) + 1, lo + 1)
    step = max(1, math.ceil((hi - lo) / 7))
    ticks = list(range(lo, hi + 1, step))
    trace = {"type": "heatmap", "x": [plotly_text(ctx.names_in[j]) for j in cols],
             "y": [plotly_text(ctx.names_out[o]) for o in outputs], "z": round_list(z, 4), "customdata": custom,
             "meta": {"values": "customdata"}, "colorscale": SEQUENTIAL, "zmin": lo, "zmax": hi,
             "colorbar": {"title": {"text": "largest relative error"}, "tickvals": ticks,
                          "ticktext": [f"1e{t}" for t in ticks]},
             "hovertemplate": "input %{x}<br>output %{y}<br>largest relative error %{customdata[0]:.3g}"
                              "<br>at point #%{customdata[1]}<extra></extra>"}
    x_names = [ctx.names_in[j] for j in cols]
    y_names = [ctx.names_out[o] for o in outputs]
    layout = {**heat_axes("input", "output", x_names, y_names), "height": heat_height(len(outputs), 22, x_names),
              "title": {"text": "Largest relative error over the points (log scale)", "x": 0, "xanchor": "left"}}
    notes.append(f"Colour is log10 of the largest relative error; the tolerance {tolerance_text(rtol)} is at "
                 f"{math.log10(rtol):.1f}. Bright cells are where the two methods disagree most.")
    return {"fig": figure("fd-error", [trace], layout, table="matrix"), "notes": notes}
