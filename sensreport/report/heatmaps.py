"""Heatmaps of outputs x inputs: aggregated, one point at a time, and points x inputs per output."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analysis import stats
from ..analysis import summaries as S
from ..analysis.stats import ranking
from .context import NOUNS, Context, preview
from .figures import DIVERGING, SEQUENTIAL, clip_note, figure, heat_axes, heat_height, top_cells
from .format import format_number, plotly_text, round_list


HEATMAP_CELLS = 40_000  # outputs x inputs cells of one aggregate heatmap


HEATMAP_OUTPUTS = 100


POINT_CELLS = 60_000  # cells over all points embedded for the point slider


ROW_CELLS = 50_000  # cells over all outputs of the points x inputs heatmaps


def heatmap_columns(ctx: Context) -> tuple[list[int], list[int], list[str]]:
    """Rows (measure rows) and input columns an outputs x inputs heatmap can afford."""
    notes = []
    rows = list(range(min(ctx.k, HEATMAP_OUTPUTS)))
    if ctx.k > HEATMAP_OUTPUTS:
        notes.append(f"The first {HEATMAP_OUTPUTS} of {ctx.k} outputs are drawn.")
    cols = list(range(ctx.n))
    limit = max(10, HEATMAP_CELLS // max(1, len(rows)))
    if ctx.n > limit:
        ov = np.asarray(ctx.result.overall[ctx.primary], float) if ctx.primary else np.zeros(ctx.n)
        cols = sorted(ranking(ov)[:limit])
        notes.append(f"Cell budget: the {limit:,} most influential of {ctx.n:,} inputs (by the overall "
                     f"{ctx.label(ctx.primary).lower() if ctx.primary else 'measure'}) are drawn, in input order.")
    return rows, cols, notes


def heatmaps_section(ctx: Context) -> dict | None:
    r = ctx.result
    if ctx.image or not r.measure_source or ctx.primary is None:
        return None
    lead, lead_text = ctx.primary, NOUNS[ctx.primary]  # the one leading measure, as in the rankings
    rows, cols, budget_notes = heatmap_columns(ctx)
    xs = [plotly_text(ctx.names_in[j]) for j in cols]
    ys = [plotly_text(ctx.names_out[ctx.outputs[i]]) for i in rows]
    out: dict[str, Any] = {"figures": [], "notes": list(budget_notes)}
    if ctx.k < len(ctx.names_out):
        out["notes"].append(f"Only the {ctx.k} selected outputs (methods.rows) have derivatives in this run.")
    mean_abs = np.asarray(r.measures[lead], float)[np.ix_(rows, cols)]
    ranks = stats.rank_positions(np.asarray(r.measures[lead], float), axis=-1)[np.ix_(rows, cols)]
    x_names = [ctx.names_in[j] for j in cols]
    y_names = [ctx.names_out[ctx.outputs[i]] for i in rows]
    height = heat_height(len(rows), 22, x_names)
    axes = heat_axes("input", "output", x_names, y_names)
    hover = ("input %{x}<br>output %{y}<br>%{meta} %{z:.4g}<br>rank %{customdata} of " + f"{ctx.n}"
             + f" inputs for this output by {lead_text}<extra></extra>")
    clip_abs = S.clip_range(mean_abs)
    # declared units in the hover: the leading measure's and dy/dx's, per cell
    lead_units = [[plotly_text(ctx.measure_unit(lead, ctx.outputs[i], j)) for j in cols] for i in rows]
    rate_units = [[plotly_text(ctx.rate_unit(ctx.outputs[i], j)) for j in cols] for i in rows]
    with_units = ctx.has_units
    abs_trace = {"type": "heatmap", "x": xs, "y": ys, "z": round_list(mean_abs), "customdata": ranks.tolist(),
                 "meta": lead_text, "colorscale": SEQUENTIAL, "zmin": clip_abs["low"], "zmax": clip_abs["high"],
                 "zmid": None, "colorbar": {"title": {"text": lead_text}}, "hovertemplate": hover, "xgap": 0,
                 "ygap": 0}
    if with_units:
        abs_trace["text"] = lead_units
        abs_trace["hovertemplate"] = hover.replace("%{z:.4g}", "%{z:.4g} %{text}")
    variants = {"abs": {"data": [{"text": lead_units} if with_units else {}], "caption": clip_note(clip_abs, lead_text),
                        "summary": (f"Heatmap of {len(rows)} outputs by {len(cols)} inputs, {lead_text} over the points; "
                                    f"the largest cells (output / input) are {top_cells(mean_abs, y_names, x_names)}.")}}
    if ctx.deriv is not None:
        signed = ctx.signed_mean[np.ix_(rows, cols)]
        clip_s = S.clip_range(signed, symmetric=True)
        variants["signed"] = {
            "data": [{"z": round_list(signed), "meta": "mean dy/dx", "colorscale": DIVERGING, "zmin": clip_s["low"],
                      "zmax": clip_s["high"], "zmid": 0, "colorbar": {"title": {"text": "mean dy/dx"}},
                      **({"text": rate_units} if with_units else {})}],
            "layout": {"title": {"text": "Signed mean dy/dx over the points (red: output rises with the input; "
                                         "blue: falls)", "x": 0, "xanchor": "left"}},
            "caption": clip_note(clip_s, "|mean dy/dx| (symmetric around 0)"),
            "summary": (f"Heatmap of {len(rows)} outputs by {len(cols)} inputs, the signed mean dy/dx over the points; "
                        f"the largest in size (output / input) are {top_cells(signed, y_names, x_names, signed=True)}."),
        }
    else:
        out["notes"].append("The signed mean needs the per-point derivatives. " + (ctx.deriv_note or ""))
    variants["abs"]["layout"] = {"title": {"text": f"{ctx.label(lead)} over the points (the leading measure)",
                                           "x": 0, "xanchor": "left"}}
    fig = figure("heat-aggregate", [abs_trace], {**axes, "height": height, **variants["abs"]["layout"]},
                 variants=variants, controls=["heat-kind"], table="matrix", summary=variants["abs"]["summary"])
    out["figures"].append({"fig": fig, "caption": variants["abs"]["caption"],
                           "kinds": [{"value": k, "label": lbl} for k, lbl in
                                     (("abs", ctx.label(lead)), ("signed", "Signed mean dy/dx")) if k in variants]})
    # one point at a time
    deriv, preview_note = preview(r)
    out["point"] = out["rows"] = None
    if deriv is None:
        out["point_note"] = ctx.deriv_note
        return out
    P = len(deriv)
    out["rows"] = rows_heatmap(ctx, deriv, cols, preview_note)
    if P == 1:
        out["point_note"] = "One point only: the heatmap above is that point (choose the signed mean for its signs)."
        return out
    cells = max(1, len(rows) * len(cols))
    shown = S.subsample_indices(P, max(1, POINT_CELLS // cells))
    sub = np.asarray(deriv[shown], dtype=np.float64)[:, rows][:, :, cols]
    clip_p = S.clip_range(sub, symmetric=True)
    ranks_p = stats.rank_positions(np.abs(np.asarray(deriv[shown], dtype=np.float64)[:, rows]), axis=-1)[:, :, cols]
    hover_p = ("input %{x}<br>output %{y}<br>dy/dx %{z:.4g}<br>rank %{customdata} of " + f"{ctx.n}"
               + " inputs for this output at this point<extra></extra>")
    pvariants = {}
    for i, p in enumerate(shown):
        pvariants[str(i)] = {"data": [{"z": round_list(sub[i], 4), "customdata": ranks_p[i].tolist()}],
                             "caption": point_caption(ctx, int(p), i, len(shown), P),
                             "valuetext": f"point #{int(p)}, {i + 1} of {len(shown)}",
                             "summary": (f"Heatmap of dy/dx at point #{int(p)}; the largest in size (output / input) "
                                         f"are {top_cells(sub[i], y_names, x_names, signed=True)}.")}
    trace = {"type": "heatmap", "x": xs, "y": ys, "colorscale": DIVERGING, "zmin": clip_p["low"], "zmax": clip_p["high"],
             "zmid": 0, "colorbar": {"title": {"text": "dy/dx"}}, "hovertemplate": hover_p, **pvariants["0"]["data"][0]}
    if with_units:  # the same for every point: in the base trace only
        trace["text"] = rate_units
        trace["hovertemplate"] = hover_p.replace("%{z:.4g}", "%{z:.4g} %{text}")
    notes = [clip_note(clip_p, "|dy/dx| over the points shown") + " The colour range is the same for every point."]
    if len(shown) < P:
        notes.append(f"Cell budget: {len(shown):,} of {P:,} points are embedded, evenly spaced "
                     f"(#{', #'.join(str(int(p)) for p in shown[:4])}, …); every point is in arrays.npz.")
    if preview_note:
        notes.append(preview_note)
    pfig = figure("heat-point", [trace], {**axes, "height": height,
                                          "title": {"text": "dy/dx at one point", "x": 0, "xanchor": "left"}},
                  variants=pvariants, controls=["point"], table="matrix", summary=pvariants["0"]["summary"])
    order = point_orders(ctx, shown, "point")
    pfig["spec"]["order"] = {k: order[k] for k in ("control", "slider", "orders")}
    out["point"] = {"fig": pfig, "count": len(shown), "caption": pvariants["0"]["caption"], "notes": notes,
                    "orders": order["options"]}
    return out


ORDER_OUTPUTS = 10  # outputs the points can be ordered by


def point_orders(ctx: Context, shown, slider: str) -> dict:
    """Orders the point slider can step through: by index, by each output's value (first
    :data:`ORDER_OUTPUTS`), by the point's largest |dy/dx|; each a list of variant keys."""
    shown = np.asarray(shown)
    y = np.asarray(ctx.result.outputs, dtype=np.float64)[shown]
    orders = {"index": {"label": "point index", "keys": list(range(len(shown)))}}
    for o in range(min(y.shape[1], ORDER_OUTPUTS)):
        col = np.where(np.isfinite(y[:, o]), y[:, o], np.inf)
        orders[f"y{o}"] = {"label": f"{ctx.names_out[o]}, low to high", "keys": np.argsort(col, kind="stable").tolist()}
    return {"control": f"{slider}-order", "slider": slider,
            "orders": {k: v["keys"] for k, v in orders.items()},
            "options": [{"value": k, "label": v["label"]} for k, v in orders.items()]}


def point_caption(ctx: Context, p: int, i: int, shown: int, total: int) -> str:
    """Which point, with its first inputs (not for images: pixels say little) and outputs."""
    of = f"{i + 1} of {shown} shown" + (f", {total:,} in the run" if shown < total else "")
    parts = []
    if not ctx.image:
        x = ctx.result.points[p]
        parts.append(", ".join(f"{ctx.names_in[j]} = {ctx.value_text(x[j], ctx.units_in[j])}" for j in range(min(6, ctx.n)))
                     + (", …" if ctx.n > 6 else ""))
    lay = ctx.result.layout
    if lay is not None and lay.held:  # context: the held inputs' values at this point
        parts.append("(held: " + ", ".join(f"{h.info.name} = {h.value_at(p)}"
                                           for h in lay.held[:4]) + (", …" if len(lay.held) > 4 else "") + ")")
    y = ctx.result.outputs[p]
    outs = ctx.outputs[:4]
    # "inputs → outputs"; image points name no inputs (pixels say little), so no arrow from nothing
    parts.append(("→ " if parts else "outputs ") + ", ".join(f"{ctx.names_out[o]} = {ctx.value_text(y[o], ctx.units_out[o])}"
                                                             for o in outs)
                 + (", …" if len(ctx.outputs) > 4 else ""))
    return f"Point #{p} ({of}): " + " ".join(parts)


def rows_heatmap(ctx: Context, deriv: np.ndarray, cols: list[int], preview_note: str | None) -> dict:
    """Points x inputs for one output at a time, every output the measures' derivatives cover
    (a full Jacobian: all of them, not only those methods.rows selected)."""
    source, outputs = deriv, list(ctx.outputs)
    intro = ("Every output, from the derivatives the measures use." if len(outputs) == len(ctx.names_out) else
             f"The {len(outputs)} outputs with derivatives in this run, from the derivatives the measures use.")
    notes = [intro]
    outputs_shown = outputs[:HEATMAP_OUTPUTS]
    if len(outputs) > len(outputs_shown):
        notes.append(f"The first {len(outputs_shown)} of {len(outputs)} outputs are offered.")
    P = len(source)
    per = max(1, ROW_CELLS // max(1, len(outputs_shown) * len(cols)))
    shown = S.subsample_indices(P, per)
    sub = np.asarray(source[shown], dtype=np.float64)[:, :len(outputs_shown)][:, :, cols]  # [p, k, n]
    full = np.asarray(source[shown], dtype=np.float64)[:, :len(outputs_shown)]
    ranks = stats.rank_positions(np.abs(full), axis=-1)[:, :, cols]
    clip = S.clip_range(sub, symmetric=True)
    xs = [plotly_text(ctx.names_in[j]) for j in cols]
    ys = [int(p) for p in shown]
    variants = {}
    point_names = [f"point #{int(p)}" for p in shown]
    x_names = [ctx.names_in[j] for j in cols]
    for i, o in enumerate(outputs_shown):
        variants[str(i)] = {
            "data": [{"z": round_list(sub[:, i], 4), "customdata": ranks[:, i].tolist(), "meta": plotly_text(ctx.names_out[o])}],
            "layout": {"title": {"text": f"d {plotly_text(ctx.names_out[o])} / dx at each point", "x": 0, "xanchor": "left"}},
            "summary": (f"Heatmap of d {ctx.names_out[o]} / dx at {len(shown):,} points by {len(cols)} inputs; the largest "
                        f"in size (point / input) are {top_cells(sub[:, i], point_names, x_names, signed=True)}."),
        }
    hover = ("input %{x}<br>output %{meta}<br>point #%{y}<br>dy/dx %{z:.4g}<br>rank %{customdata} of " + f"{ctx.n}"
             + " inputs at this point<extra></extra>")
    trace = {"type": "heatmap", "x": xs, "y": ys, "colorscale": DIVERGING, "zmin": clip["low"], "zmax": clip["high"],
             "zmid": 0, "colorbar": {"title": {"text": "dy/dx"}}, "hovertemplate": hover, **variants["0"]["data"][0]}
    notes.append(clip_note(clip, "|dy/dx|") + " The colour range is the same for every output.")
    if len(shown) < P:
        notes.append(f"Cell budget: {len(shown):,} of {P:,} points are drawn, evenly spaced; every point is in "
                     "arrays.npz.")
    if preview_note:
        notes.append(preview_note)
    height = heat_height(len(shown), 8, x_names)
    axes = heat_axes("input", "point #", x_names)
    axes["yaxis"]["type"] = "linear"
    if len(shown) <= 12:
        axes["yaxis"].update(tickmode="array", tickvals=ys)
    fig = figure("heat-rows", [trace], {**axes, "height": height, **variants["0"]["layout"]},
                 variants=variants, controls=["row-output"], table="matrix", summary=variants["0"]["summary"])
    return {"fig": fig, "notes": notes,
            "options": [{"value": str(i), "label": ctx.names_out[o]} for i, o in enumerate(outputs_shown)]}
