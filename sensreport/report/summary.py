"""The summary section: one sentence per output naming its top inputs and their direction."""

from __future__ import annotations

import numpy as np

from ..analysis import stats
from ..analysis.stats import ranking
from .context import Context, NOUNS
from .format import join_words, percent


SUMMARY_OUTPUTS = 20  # one sentence per output, up to this many


def summary_section(ctx: Context) -> dict:
    r = ctx.result
    sentences = []
    overall = None
    if ctx.primary:
        m = ctx.primary
        ov = np.asarray(r.overall[m], float)
        top = [j for j in ranking(ov)[:3] if np.isfinite(ov[j])]
        if top and ctx.k > 1:
            overall = (f"Across {'both' if ctx.k == 2 else f'all {ctx.k:,}'} outputs, the most influential inputs by "
                       f"{NOUNS[m]} are "
                       + join_words([f"{ctx.names_in[j]} ({percent(ov[j])})" for j in top]) + ".")
        for row, o in enumerate(ctx.outputs[:SUMMARY_OUTPUTS]):
            values = np.asarray(r.measures[m][row], float)
            share = stats.shares(values)
            order = [j for j in ranking(values)[:3] if np.isfinite(values[j]) and values[j] > 0]
            if not order:
                sentences.append({"output": ctx.names_out[o], "text": "does not react to any input at these points "
                                  "(every derivative is zero or not finite)."})
                continue
            parts = [f"{ctx.names_in[j]} ({percent(share[j])})" for j in order]
            text = f"reacts most to {join_words(parts)} of its {NOUNS[m]}"
            direction = direction_text(ctx, row, order)
            effect = effect_text(ctx, row, o, order)
            sentences.append({"output": ctx.names_out[o], "text": text + (f"; {direction}" if direction else "") + "."
                              + (f" {effect}." if effect else "")})
    return {"overall": overall, "sentences": sentences, "more": max(0, ctx.k - SUMMARY_OUTPUTS)}


def effect_text(ctx: Context, row: int, o: int, inputs: list[int]) -> str:
    """The top inputs' effects in the output's own units: the mean derivative times one standard
    deviation of the input (a linear reading of the std-scaled measure, with its sign)."""
    if ctx.signed_mean is None or ctx.P < 2:
        return ""
    parts = []
    for j in inputs:
        std, slope = float(ctx.input_std[j]), float(ctx.signed_mean[row, j])
        if not (np.isfinite(std) and np.isfinite(slope)) or std == 0 or slope == 0:
            continue
        effect = slope * std
        verb = "raises" if effect > 0 else "lowers"
        what = ctx.names_out[o] if not parts else "it"
        parts.append(f"{'+1 std of ' if not parts else 'of '}{ctx.names_in[j]} ({ctx.value_text(std, ctx.units_in[j])}) "
                     f"{verb} {what} by {ctx.value_text(abs(effect), ctx.units_out[o])}")
    return ("On average over the points, " + "; ".join(parts)) if parts else ""


def direction_text(ctx: Context, row: int, inputs: list[int]) -> str:
    if ctx.signs is None:
        return ""
    pos, neg = ctx.signs
    rises, falls, mixed = [], [], []
    for j in inputs:
        p = pos[row, j]
        q = (1.0 - p) if neg is None else neg[row, j]
        if not np.isfinite(p):
            continue
        if q == 0 and p > 0:
            rises.append(ctx.names_in[j])
        elif p == 0 and q > 0:
            falls.append(ctx.names_in[j])
        elif p > 0 and q > 0:
            mixed.append(f"{ctx.names_in[j]} (rises at {percent(p)} of points)")
    where = "at every point" if ctx.P > 1 else "at this point"
    parts = []
    if rises:
        parts.append(f"it rises with {join_words(rises)}")
    if falls:
        parts.append(f"falls with {join_words(falls)}" if parts else f"it falls with {join_words(falls)}")
    text = " and ".join(parts) + (f" {where}" if parts else "")
    if mixed:
        text += ("; " if text else "") + "the direction depends on the point for " + join_words(mixed)
    return text
