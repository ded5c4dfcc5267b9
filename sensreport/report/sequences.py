"""Sequence inputs with named axes (``inputs.axes``): sensitivity as time x feature maps."""

from __future__ import annotations

from typing import Any

import numpy as np

from .context import NOUNS, UNITS, Context, preview
from .figures import SEQUENTIAL, figure, heat_axes, heat_height
from .format import plotly_text, round_list
from .heatmaps import point_caption

#: Outputs offered in the selector.
SEQUENCE_OUTPUTS = 50
#: Points embedded for the per-point map (each one feature x time map of the first output).
SEQUENCE_POINTS = 200


def _map(z: np.ndarray, time: list[str], features: list[str], title: str, what: str) -> dict[str, Any]:
    x, y = [plotly_text(t) for t in time], [plotly_text(f) for f in features]
    return {"data": [{"type": "heatmap", "z": round_list(z.T), "x": x, "y": y, "colorscale": SEQUENTIAL,
                      "colorbar": {"title": {"text": what}},
                      "hovertemplate": "%{y} at %{x}: %{z:.4g}<extra></extra>"}],
            "layout": {"title": {"text": title, "x": 0, "xanchor": "left"},
                       "height": heat_height(len(features), 30, time, cap=360),
                       **heat_axes("time step", "feature", time, features)}}


def sequence_section(ctx: Context) -> dict[str, Any] | None:
    r = ctx.result
    axes = r.layout.axes if r.layout is not None else None
    if axes is None or not ctx.primary:
        return None
    lead = ctx.primary
    time, feats = list(axes.time), list(axes.feature)
    T, F = len(time), len(feats)
    values = np.asarray(r.measures[lead], float)
    variants = {}
    for row, o in enumerate(ctx.outputs[:SEQUENCE_OUTPUTS]):
        variants[f"o{row}"] = _map(values[row].reshape(T, F), time, feats,
                                   f"{plotly_text(ctx.names_out[o])}: {ctx.label(lead)} per time step and feature",
                                   UNITS[lead])
    first = variants["o0"]
    fig = figure("sequence", first["data"], first["layout"], variants=variants, controls=["sequence-output"])
    out: dict[str, Any] = {"figure": fig, "output_options": [{"value": f"o{row}", "label": ctx.names_out[o]}
                                                             for row, o in enumerate(ctx.outputs[:SEQUENCE_OUTPUTS])],
                           "what": NOUNS[lead], "point": None}
    deriv, note = preview(r)
    if deriv is None:
        out["point_note"] = ctx.deriv_note
        return out
    P = len(deriv)
    shown = list(range(min(P, SEQUENCE_POINTS)))
    pvariants = {}
    o = ctx.names_out[ctx.outputs[0]]
    for i, p in enumerate(shown):
        z = np.abs(np.asarray(deriv[p, 0], float)).reshape(T, F)
        v = _map(z, time, feats, f"{plotly_text(o)}: |dy/dx| at one point", "|dy/dx|")
        pvariants[str(i)] = {"data": [{"z": v["data"][0]["z"]}], "caption": point_caption(ctx, int(p), i, len(shown), P)}
    base = _map(np.abs(np.asarray(deriv[0, 0], float)).reshape(T, F), time, feats,
                f"{plotly_text(o)}: |dy/dx| at one point", "|dy/dx|")
    pfig = figure("sequence-point", base["data"], base["layout"], variants=pvariants, controls=["sequence-point"])
    notes = [f"The first {len(shown):,} of {P:,} points are embedded; every point is in arrays.npz."] if len(shown) < P else []
    if note:
        notes.append(note)
    out["point"] = {"fig": pfig, "count": len(shown), "caption": pvariants["0"]["caption"], "notes": notes}
    return out
