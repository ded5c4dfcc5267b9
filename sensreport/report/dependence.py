"""Dependence: each input's derivative against the input's value over the points, for every
output, coloured by the input it interacts with most (what SHAP's dependence plots show)."""

from __future__ import annotations

import numpy as np

from ..analysis import summaries as S
from ..analysis.stats import ranking
from .context import Context, preview
from .figures import SEQUENTIAL, figure
from .format import format_number, plotly_text, round_list

DEPENDENCE_INPUTS = 10  # the most influential inputs (overall) offered
DEPENDENCE_OUTPUTS = 20  # the first outputs offered
DEPENDENCE_VALUES = 80_000  # numbers embedded over every output and input offered (about 0.5 MB)


def dependence_section(ctx: Context) -> dict | None:
    r = ctx.result
    if ctx.image or ctx.primary is None:
        return None
    deriv, preview_note = preview(r)
    if deriv is None or len(deriv) < 2:
        return None
    P = len(deriv)
    inputs = ranking(np.asarray(r.overall[ctx.primary], float))[:DEPENDENCE_INPUTS]
    rows = list(range(min(ctx.k, DEPENDENCE_OUTPUTS)))
    per_variant = 4  # x, dy/dx, colour, point number
    shown = S.subsample_indices(P, max(2, DEPENDENCE_VALUES // (per_variant * len(rows) * len(inputs))))
    x = np.asarray(r.points, dtype=np.float64)[shown]
    d = np.asarray(deriv[shown], dtype=np.float64)
    variants = {}
    for row in rows:
        o = ctx.outputs[row]
        # one rank-correlation matrix per output: the partners and the trends of the offered inputs
        corr = S.slope_correlations(d[:, row][:, inputs], x)
        partners = S.partners_from(corr, inputs) if len(shown) >= 3 and ctx.n >= 2 else inputs
        for a, j in enumerate(inputs):
            c = int(partners[a])
            slope, xs, colour = d[:, row, j], x[:, j], x[:, c]
            rho = float(corr[a, j]) if np.isfinite(slope).all() else float("nan")
            unit = ctx.rate_unit(o, j)
            trend = ("" if not np.isfinite(rho) else
                     f"; the derivative {'grows' if rho > 0 else 'shrinks'} as {ctx.names_in[j]} grows "
                     f"(Spearman {rho:.2f})" if abs(rho) >= 0.3 else "; no clear trend with the input's value")
            finite = slope[np.isfinite(slope)]
            spread = (f"from {format_number(finite.min())} to {format_number(finite.max())}"
                      + (f" {unit}" if unit else "")) if finite.size else "not finite"
            variants[f"{row}|{j}"] = {
                "data": [{"x": round_list(xs), "y": round_list(slope), "customdata": [int(p) for p in shown],
                          "marker": {"color": round_list(colour, 4), "colorscale": SEQUENTIAL, "size": 7, "opacity": 0.85,
                                     "colorbar": {"title": {"text": plotly_text(ctx.names_in[c])}}},
                          "hovertemplate": (f"point #%{{customdata}}<br>{plotly_text(ctx.names_in[j])} %{{x:.4g}}"
                                            f"<br>d {plotly_text(ctx.names_out[o])} / d {plotly_text(ctx.names_in[j])}"
                                            f" %{{y:.4g}} {plotly_text(unit)}"
                                            f"<br>{plotly_text(ctx.names_in[c])} %{{marker.color:.4g}}<extra></extra>")}],
                "layout": {"title": {"text": f"d {plotly_text(ctx.names_out[o])} / d {plotly_text(ctx.names_in[j])} "
                                             f"against {plotly_text(ctx.names_in[j])}, coloured by "
                                             f"{plotly_text(ctx.names_in[c])}", "x": 0, "xanchor": "left"},
                           "xaxis": {"title": {"text": plotly_text(_axis(ctx.names_in[j], ctx.units_in[j]))},
                                     "automargin": True, "zeroline": False},
                           "yaxis": {"title": {"text": plotly_text(f"d {ctx.names_out[o]} / d {ctx.names_in[j]}"
                                                                   + (f" ({unit})" if unit else ""))},
                                     "automargin": True, "zeroline": True}},
                "summary": (f"Scatter of d {ctx.names_out[o]} / d {ctx.names_in[j]} against {ctx.names_in[j]} at "
                            f"{len(shown):,} points, coloured by {ctx.names_in[c]}: the derivative ranges {spread}"
                            f"{trend}."),
            }
    first = variants[f"0|{inputs[0]}"]
    trace = {"type": "scatter", "mode": "markers", **first["data"][0]}
    fig = figure("dependence", [trace], {"height": 420, **first["layout"]}, variants=variants,
                 controls=["dep-output", "dep-input"], summary=first["summary"], table="xy")
    notes = ["Each dot is one point: the input's value (across) and the derivative of the output with respect to it "
             "there (up). A flat band means the input acts the same everywhere; a slope or a fan means its effect "
             "depends on its own value or, through the colour, on the input it interacts with most (largest rank "
             "correlation of the derivative with that input's value)."]
    if len(shown) < P:
        notes.append(f"Cell budget: {len(shown):,} of {P:,} points are drawn, evenly spaced; every point is in "
                     "arrays.npz.")
    if ctx.n > len(inputs):
        notes.append(f"The {len(inputs)} most influential of {ctx.n:,} inputs (overall, by "
                     f"{ctx.label(ctx.primary).lower()}) are offered.")
    if ctx.k > len(rows):
        notes.append(f"The first {len(rows)} of {ctx.k} outputs are offered.")
    if preview_note:
        notes.append(preview_note)
    return {"fig": fig, "notes": notes,
            "outputs": [{"value": str(row), "label": ctx.names_out[ctx.outputs[row]]} for row in rows],
            "inputs": [{"value": str(j), "label": ctx.names_in[j]} for j in inputs]}


def _axis(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name
