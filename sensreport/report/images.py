"""Image-shaped inputs: each output's sensitivity drawn as an image of the input."""

from __future__ import annotations

import math

import numpy as np

from ..analysis import summaries as S
from .context import NOUNS, Context, preview
from .figures import IMAGE_CLIP_PERCENTILE, SEQUENTIAL, figure
from .format import plotly_text, round_list
from .heatmaps import point_caption, point_orders


IMAGE_OUTPUTS = 20


IMAGE_CELLS = 100_000  # pixels over all embedded per-point images


def images_section(ctx: Context) -> dict | None:
    r = ctx.result
    if not ctx.image or not r.measure_source or ctx.primary is None:
        return None
    lead = ctx.primary  # the one leading measure, as in the rankings
    shape = r.input_shape
    axes = ctx.image
    rows = list(range(min(ctx.k, IMAGE_OUTPUTS)))
    notes = []
    if ctx.k > len(rows):
        notes.append(f"The first {len(rows)} of {ctx.k} outputs are drawn.")
    if axes["reduced"]:
        notes.append(f"Inputs of shape {list(shape)}: axis {', '.join(map(str, axes['reduced']))} "
                     f"(channels) is averaged as mean |value|, so each pixel shows how much it matters in any channel.")
    agg = S.to_image(np.asarray(r.measures[lead], float)[rows], shape)  # [k, H, W]
    fig = image_grid(ctx, "img-aggregate", agg, rows, f"{ctx.label(lead)} per pixel (the leading measure)",
                     NOUNS[lead], summary=brightest(ctx, agg, rows, NOUNS[lead]))
    out = {"figures": [fig], "notes": notes + [
        f"Each image is scaled to its own {IMAGE_CLIP_PERCENTILE:g}th percentile (1 on the colour bar), so the pattern of "
        "every output is visible; brighter pixels beyond it are clipped. Hover shows exact values."]}
    deriv, preview_note = preview(r)
    if deriv is None:
        out["point"] = None
        out["point_note"] = ctx.deriv_note
        return out
    P = len(deriv)
    per = max(1, IMAGE_CELLS // max(1, len(rows) * axes["height"] * axes["width"]))
    shown = S.subsample_indices(P, per)
    imgs = S.to_image(np.asarray(deriv[shown], dtype=np.float64)[:, rows], shape)  # [p, k, H, W]
    scale = np.array([S.clip_range(imgs[:, i], IMAGE_CLIP_PERCENTILE)["high"] for i in range(len(rows))])
    variants = {}
    for i, p in enumerate(shown):
        v = image_grid(ctx, "img-point", imgs[i], rows, "", "|dy/dx|", scale=scale)["spec"]["data"]
        variants[str(i)] = {"data": [{"z": t["z"], "customdata": t["customdata"]} for t in v],
                            "caption": point_caption(ctx, int(p), i, len(shown), P),
                            "valuetext": f"point #{int(p)}, {i + 1} of {len(shown)}",
                            "summary": brightest(ctx, imgs[i], rows, f"|dy/dx| at point #{int(p)}")}
    pfig = image_grid(ctx, "img-point", imgs[0], rows, "|dy/dx| per pixel at one point", "|dy/dx|", scale=scale,
                      variants=variants, summary=variants["0"]["summary"])
    pnotes = [f"Each output's images share one scale over the points shown (its {IMAGE_CLIP_PERCENTILE:g}th percentile), "
              "so brightness compares across points; brighter pixels are clipped."]
    if len(shown) < P:
        pnotes.append(f"Cell budget: {len(shown):,} of {P:,} points are embedded, evenly spaced; every point is in "
                      "arrays.npz.")
    if preview_note:
        pnotes.append(preview_note)
    order = point_orders(ctx, shown, "img-point")
    pfig["spec"]["order"] = {k: order[k] for k in ("control", "slider", "orders")}
    out["point"] = {"fig": pfig, "count": len(shown), "caption": variants["0"]["caption"], "notes": pnotes,
                    "orders": order["options"]}
    return out


def image_grid(ctx: Context, fid: str, images: np.ndarray, rows: list[int], title: str, what: str,
               scale: np.ndarray | None = None, variants: dict | None = None, summary: str = "") -> dict:
    """One heatmap per output, laid out in a grid of square subplots sharing a 0-1 colour axis:
    up to 5 columns, 2 in a narrow container (a phone), where the images would shrink to a few pixels."""
    k = len(rows)
    names = [plotly_text(ctx.names_out[ctx.outputs[row]]) for row in rows]
    data = []
    for i in range(k):
        sfx = "" if i == 0 else str(i + 1)
        img = images[i]
        s = scale[i] if scale is not None else S.clip_range(img, IMAGE_CLIP_PERCENTILE)["high"]
        s = s if s > 0 else 1.0
        data.append({"type": "heatmap", "z": round_list(img / s, 3), "customdata": round_list(img, 4), "coloraxis": "coloraxis",
                     "xaxis": f"x{sfx}", "yaxis": f"y{sfx}", "meta": names[i],
                     "hovertemplate": "output %{meta}<br>row %{y}, column %{x}<br>" + what
                     + " %{customdata:.4g}<extra></extra>"})
    layout = {"title": {"text": title, "x": 0, "xanchor": "left"},
              "coloraxis": {"colorscale": SEQUENTIAL, "cmin": 0, "cmax": 1, "colorbar": {"title": {"text": "relative"}}},
              **grid_layout(names, min(k, 5))}
    narrow = grid_layout(names, min(k, 2)) if k > 2 else None
    if narrow:
        narrow["coloraxis"] = {**layout["coloraxis"], "colorbar": {"title": {"text": "relative"}, "orientation": "h",
                                                                   "y": -0.02, "yanchor": "top", "thickness": 12}}
    return figure(fid, data, layout, variants=variants, controls=["img-point"] if variants else None, table="matrix",
                  summary=summary, narrow=narrow)


def grid_layout(names: list[str], ncol: int) -> dict:
    """Axes (square, ticks hidden) and name labels of ``len(names)`` images in ``ncol`` columns."""
    k = len(names)
    nrow = math.ceil(k / ncol)
    gap = 0.04
    layout: dict = {"height": 60 + (190 if ncol > 2 else 200) * nrow, "annotations": []}
    for i, name in enumerate(names):
        r_, c_ = divmod(i, ncol)
        sfx = "" if i == 0 else str(i + 1)
        top = 1 - r_ / nrow
        dom_y = [max(0.0, top - 1 / nrow + gap), top - gap * 0.6]
        dom_x = [c_ / ncol + gap / 2, (c_ + 1) / ncol - gap / 2]
        layout[f"xaxis{sfx}"] = {"domain": dom_x, "showticklabels": False, "showgrid": False, "zeroline": False,
                                 "ticks": "", "anchor": f"y{sfx}", "constrain": "domain"}
        layout[f"yaxis{sfx}"] = {"domain": dom_y, "showticklabels": False, "showgrid": False, "zeroline": False,
                                 "ticks": "", "anchor": f"x{sfx}", "autorange": "reversed", "scaleanchor": f"x{sfx}",
                                 "constrain": "domain"}
        layout["annotations"].append({"text": name, "x": (dom_x[0] + dom_x[1]) / 2, "y": dom_y[1], "xref": "paper",
                                      "yref": "paper", "showarrow": False, "yanchor": "bottom", "font": {"size": 12}})
    return layout


def brightest(ctx: Context, images: np.ndarray, rows: list[int], what: str) -> str:
    """Where each image (the first five) is brightest, in words, for a chart's text summary."""
    parts = []
    for i, row in enumerate(rows[:5]):
        img = np.where(np.isfinite(images[i]), images[i], -np.inf)
        r_, c_ = np.unravel_index(int(np.argmax(img)), img.shape)
        parts.append(f"{ctx.names_out[ctx.outputs[row]]} at row {r_}, column {c_}")
    more = f" (and {len(rows) - 5} more outputs)" if len(rows) > 5 else ""
    return f"Images of {what} per pixel for {len(rows)} outputs; the brightest pixel of " + "; ".join(parts) + more + "."
