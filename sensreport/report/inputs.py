"""The model's inputs section: its tensors, the feature groups' ranking, the held inputs
(their values, the measures split by category) and the discrete effects."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analysis.measures import UNITLESS
from ..analysis.stats import ranking
from .context import NOUNS, UNITS, Context
from .figures import BLUE, DIVERGING, SEQUENTIAL, figure, heat_axes, heat_height, ticks
from .format import format_number, plotly_text, round_list

#: Groups drawn in the group ranking (the table lists them all).
TOP_GROUPS = 20
#: Inputs drawn in a category split's heatmap: the most influential overall.
CATEGORY_INPUTS = 30
#: Outputs offered in the selectors of this section.
SELECT_OUTPUTS = 50


def inputs_section(ctx: Context) -> dict[str, Any] | None:
    """None for a model with one input tensor, no held input and no group."""
    r = ctx.result
    lay = r.layout
    if lay is None or (len(lay.tensors) == 1 and not lay.held and not lay.groups and not r.discrete):
        return None
    tensors = [{"name": t.info.name, "shape": "×".join(map(str, t.info.shape)) or "scalar", "dtype": t.info.dtype,
                "role": "held at each point's value" if t.fixed else "differentiated",
                "elements": len(t.names), "first": ", ".join(t.names[:4]) + (", …" if len(t.names) > 4 else "")}
               for t in lay.tensors]
    held = [_held(ctx, h, i) for i, h in enumerate(lay.held)]
    return {"tensors": tensors, "groups": _groups(ctx), "held": held,
            "discrete": [_discrete(ctx, e, i) for i, e in enumerate(r.discrete)]}


def _groups(ctx: Context) -> dict[str, Any] | None:
    g = ctx.result.groups
    if g is None or not ctx.primary:
        return None
    rankable = [m for m in ctx.rankable if m not in UNITLESS]
    views = ([("overall", "Overall (all outputs, equal weight)", None)] if ctx.k > 1 else [])
    views += [(f"o{row}", ctx.names_out[o], row) for row, o in enumerate(ctx.outputs[:SELECT_OUTPUTS])]
    variants = {}
    for m in rankable:
        for key, label, row in views:
            values = np.asarray(g.overall[m] if row is None else g.measures[m][row], float)
            order = ranking(values)[:TOP_GROUPS]
            names = [g.names[j] for j in order]
            what = "share of sensitivity, averaged over outputs" if row is None else UNITS[m]
            variants[f"{m}|{key}"] = {
                "data": [{"type": "bar", "orientation": "h", "x": round_list(values[order]),
                          "y": [plotly_text(n) for n in names], "marker": {"color": BLUE},
                          "hovertemplate": "%{y}: %{x:.4g}<extra></extra>"}],
                "layout": {"title": {"text": f"{plotly_text(label)}: {ctx.label(m)} of each group", "x": 0,
                                     "xanchor": "left"},
                           "height": 110 + 24 * len(names),
                           "xaxis": {"title": {"text": what}, "rangemode": "tozero", "automargin": True},
                           "yaxis": {"automargin": True, "autorange": "reversed", "type": "category", **ticks(names)},
                           "showlegend": False, "bargap": 0.25}}
    lead = ctx.primary if ctx.primary in rankable else rankable[0]
    first = variants[f"{lead}|{views[0][0]}"]
    fig = figure("groups", first["data"], first["layout"], variants=variants, controls=["group-measure", "group-view"])
    overall = np.asarray(g.overall[lead], float)
    rows = [{"name": name, "members": ", ".join(ctx.names_in[j] for j in g.members[i][:8])
             + (f", … ({len(g.members[i])} inputs)" if len(g.members[i]) > 8 else ""),
             "share": format_number(overall[i]) if np.isfinite(overall[i]) else "—"}
            for i, name in ((i, g.names[i]) for i in ranking(overall))]
    return {"figure": fig, "rows": rows, "measure": ctx.label(lead),
            "measure_options": [{"value": m, "label": ctx.label(m)} for m in rankable],
            "view_options": [{"value": key, "label": label} for key, label, _ in views],
            "notes": [f"A group's {NOUNS['mean_abs']}, std-scaled sensitivity and elasticity are the sums of its "
                      "members'; its RMS derivative is the root of their summed squares (the derivative-based "
                      "measure adds up over inputs); its overall share is the sum of its members' shares. "
                      "Members may belong to several groups. "
                      + (f"The {TOP_GROUPS} largest of {len(g.names)} groups are drawn; the table lists all."
                         if len(g.names) > TOP_GROUPS else "")]}


def _held(ctx: Context, h, index: int) -> dict[str, Any]:
    r = ctx.result
    values = h.values_seen(20)
    counts = np.bincount(h.codes, minlength=len(h.table))
    out: dict[str, Any] = {"name": h.info.name, "dtype": h.info.dtype, "distinct": len(h.table),
                           "values": [{"value": str(v), "points": int(c)} for v, c in zip(values, counts[:20])]}
    split = next((c for c in r.categories if c.input == h.info.name), None)
    if split is None or not ctx.primary:
        out["note"] = ("The measures are split by category for held inputs with 2 to 20 values, when the "
                       "per-point derivatives are kept." if len(h.table) > 1 else None)
        return out
    lead = ctx.primary
    ov = np.asarray(r.overall[lead], float)
    cols = sorted(ranking(ov)[:CATEGORY_INPUTS])
    xs = [ctx.names_in[j] for j in cols]
    ys = [f"{h.info.name} = {v} ({c:,} points)" for v, c in zip(split.values, split.counts)]
    variants = {}
    for row, o in enumerate(ctx.outputs[:SELECT_OUTPUTS]):
        z = np.asarray(split.measures[lead][:, row][:, cols], float)
        variants[f"o{row}"] = {"data": [{"type": "heatmap", "z": round_list(z), "x": [plotly_text(x) for x in xs],
                                         "y": [plotly_text(y) for y in ys], "colorscale": SEQUENTIAL,
                                         "colorbar": {"title": {"text": UNITS[lead]}},
                                         "hovertemplate": "%{y}<br>%{x}: %{z:.4g}<extra></extra>"}],
                               "layout": {"title": {"text": f"{plotly_text(ctx.names_out[o])}: {ctx.label(lead)} "
                                                            f"by {plotly_text(h.info.name)}", "x": 0,
                                                    "xanchor": "left"},
                                          "height": heat_height(len(ys), 28, xs, cap=400),
                                          **heat_axes("input", plotly_text(h.info.name), xs, ys)}}
    first = variants["o0"]
    out["figure"] = figure(f"category{index}", first["data"], first["layout"], variants=variants,
                           controls=[f"category{index}-output"])
    out["control"] = f"category{index}-output"
    out["output_options"] = [{"value": f"o{row}", "label": ctx.names_out[o]}
                             for row, o in enumerate(ctx.outputs[:SELECT_OUTPUTS])]
    out["note"] = (f"Each row: the {NOUNS[lead]} over the points of that category only"
                   + (f"; the {CATEGORY_INPUTS} most influential inputs overall are drawn." if ctx.n > CATEGORY_INPUTS
                      else "."))
    return out


def effect_sentences(input_name: str, labels: list, counts: np.ndarray, mean: np.ndarray, outputs: list[str],
                     limit: int = 5) -> list[str]:
    """Per output (the first ``limit``): the largest mean change between two values, in words."""
    out = []
    for i, name in enumerate(outputs[:limit]):
        m = np.where(np.isfinite(mean[:, :, i]), np.abs(mean[:, :, i]), -1.0)
        a, b = np.unravel_index(int(np.argmax(m)), m.shape)
        v = float(mean[a, b, i])
        if not np.isfinite(v) or v == 0:
            continue
        out.append(f"{input_name} {labels[b]} instead of {labels[a]} {'raises' if v > 0 else 'lowers'} {name} by "
                   f"{format_number(abs(v))} on average (over the {int(counts[a]):,} points with {input_name} "
                   f"{labels[a]}).")
    return out


def _discrete(ctx: Context, e, index: int) -> dict[str, Any]:
    mean = e.mean_effect  # [U, U, m]
    labels = [str(v) for v in e.labels]
    names = ctx.names_out
    variants = {}
    for i, name in enumerate(names[:SELECT_OUTPUTS]):
        z = mean[:, :, i]
        top = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        variants[f"y{i}"] = {"data": [{"type": "heatmap", "z": round_list(z),
                                       "x": [plotly_text(v) for v in labels], "y": [plotly_text(v) for v in labels],
                                       "colorscale": DIVERGING, "zmin": -top or -1, "zmax": top or 1,
                                       "colorbar": {"title": {"text": "change"}},
                                       "hovertemplate": f"from %{{y}} to %{{x}}: %{{z:.4g}}<extra></extra>"}],
                             "layout": {"title": {"text": f"{plotly_text(name)}: mean change when "
                                                          f"{plotly_text(e.input)} takes another value", "x": 0,
                                                  "xanchor": "left"},
                                        "height": heat_height(len(labels), 28, labels, cap=420),
                                        **heat_axes(f"{plotly_text(e.input)} instead", f"{plotly_text(e.input)} "
                                                    "of the point", labels, labels)}}
    first = variants["y0"]
    table = [{"from": labels[a], "points": int(e.counts[a]),
              "cells": [format_number(mean[a, b, 0]) for b in range(len(labels))]} for a in range(len(labels))]
    return {"input": e.input, "figure": figure(f"discrete{index}", first["data"], first["layout"], variants=variants,
                                               controls=[f"discrete{index}-output"]),
            "control": f"discrete{index}-output",
            "output_options": [{"value": f"y{i}", "label": n} for i, n in enumerate(names[:SELECT_OUTPUTS])],
            "sentences": effect_sentences(e.input, labels, e.counts, mean, names),
            "labels": labels, "table": table, "table_output": names[0]}
