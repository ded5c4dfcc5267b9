"""Global sensitivity: upper bounds on the Sobol' total indices and the active subspaces,
per output (the analysis stage computed both; this module only lays them out)."""

from __future__ import annotations

import numpy as np

from ..analysis.stats import ranking
from ..analysis.summaries import subsample_indices
from .context import Context
from .figures import BLACK, BLUE, figure, ticks
from .format import format_number, plotly_text, round_list

GLOBAL_OUTPUTS = 20  # outputs offered in the section's selector
BOUND_BARS = 15  # inputs drawn per output in the bounds chart
EIGEN_SHOWN = 20  # eigenvalues drawn per output
SUMMARY_SHOWN = 200  # points drawn per output in the summary plot (the page's size budget)
WEIGHTS_LISTED = 6  # weights of the first direction named in its caption
ROUNDING_GAP = 1e12  # a second eigenvalue this much below the first is rounding: said as zero


def percent(v: float) -> str:
    return "unknown" if not np.isfinite(v) else f"{100 * v:.3g} %"


def global_section(ctx: Context) -> dict | None:
    r = ctx.result
    sb, sub = r.sobol, r.subspace
    if sb is None and sub is None:
        return None
    rows = list(range(min(ctx.k, GLOBAL_OUTPUTS)))
    sub_rows = len(sub.outputs) if sub is not None else 0
    level = f"{100 * r.confidence:g} %"
    out: dict = {"outputs": [{"value": str(row), "label": ctx.names_out[ctx.outputs[row]]} for row in rows],
                 "level": level, "bounds": None, "eigen": None, "summary": None, "notes": []}
    if ctx.k > len(rows):
        out["notes"].append(f"The first {len(rows)} of {ctx.k} outputs are offered; results.json holds all of them.")
    if sb is not None:
        out["bounds"] = _bounds(ctx, rows, level)
    if sub is not None:
        out["eigen"], out["summary"] = _subspace(ctx, rows[:sub_rows], level)
    return out


def _bounds(ctx: Context, rows: list[int], level: str) -> dict:
    sb = ctx.result.sobol
    variants, sentences = {}, []
    for row in rows:
        o = ctx.outputs[row]
        b, lo, hi = sb.bound[row], sb.low[row], sb.high[row]
        known = [j for j in ranking(b) if np.isfinite(b[j])][:BOUND_BARS]
        names = [ctx.names_in[j] for j in known]
        x = np.minimum(b[known], 1.0) * 100
        data = [{"type": "bar", "orientation": "h", "x": round_list(x), "y": [plotly_text(n) for n in names],
                 "marker": {"color": BLUE}, "name": "upper bound",
                 "error_x": {"type": "data", "symmetric": False, "color": BLACK, "thickness": 1.2, "width": 3,
                             "array": round_list(np.minimum(hi[known], 1.0) * 100 - x),
                             "arrayminus": round_list(x - np.minimum(lo[known], 1.0) * 100)},
                 "customdata": round_list(b[known] * 100, 4),
                 "hovertemplate": "%{y}: at most %{customdata:.3g} % of the variance<extra></extra>"}]
        out_name = ctx.names_out[o]
        caption = ""
        useful = [j for j in known if b[j] < 1]
        if useful:
            j = useful[0]
            caption = (f"{ctx.names_in[j]} can explain at most {percent(b[j])} of the variance of {out_name} "
                       f"({level} interval {percent(lo[j])} to {percent(hi[j])}).")
            loose = [ctx.names_in[i] for i in known if b[i] >= 1]
            if loose:
                caption = (f"The bound does not limit {', '.join(loose[:3])}{' …' if len(loose) > 3 else ''} (100 % "
                           f"or more). " + caption)
        elif known:
            caption = (f"The bounds do not limit any input of {out_name}: each is 100 % or more (largest "
                       f"{percent(b[known[0]])}, for {ctx.names_in[known[0]]}), so none can be ruled out.")
        if known:
            small = [ctx.names_in[i] for i in known if b[i] < 0.01]
            if small:
                caption += f" {len(small)} input{'s' if len(small) > 1 else ''} can explain under 1 % each."
        sentences.append(caption)
        variants[str(row)] = {
            "data": data, "caption": caption,
            "layout": {"title": {"text": f"{plotly_text(out_name)}: upper bound on each input's total Sobol' index",
                                 "x": 0, "xanchor": "left"},
                       "height": 110 + 24 * max(1, len(names)),
                       "xaxis": {"title": {"text": "share of the output's variance, at most (%)"},
                                 "range": [0, 100], "automargin": True},
                       "yaxis": {"automargin": True, "autorange": "reversed", "type": "category", **ticks(names)}},
            "summary": f"Bar chart of upper bounds on the total Sobol' indices of {out_name}: {caption}",
        }
    first = variants["0"]
    fig = figure("sobol-bounds", first["data"], first["layout"], variants=variants, controls=["gsa-output"],
                 summary=first["summary"], table="series")
    missing = [ctx.names_in[j] for j in range(ctx.n) if not np.isfinite(sb.constants[j])]
    notes = ["Bars: C_i E[(dy/dx_i)^2] / Var(y), an upper bound on the share of the output's variance that input i "
             "accounts for, alone and with all its interactions (the total Sobol' index), for independent inputs "
             "with the distributions given. C_i is the Poincaré constant of the input's distribution "
             "((b - a)^2 / pi^2 for uniform on [a, b], the variance for normal). Whiskers: the "
             f"{level} interval from the DGSM's; the output's variance is taken as known."]
    if missing:
        notes.append(f"No bound for {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}: no distribution with a "
                     "Poincaré constant is known for "
                     f"{'them' if len(missing) > 1 else 'it'} (declare one in inputs.distributions).")
    groups = [{"name": g, "bound": percent(float(v[0]))} for g, v in sb.groups.items()]
    return {"fig": fig, "caption": first["caption"], "notes": notes, "groups": groups,
            "print": [{"output": ctx.names_out[ctx.outputs[row]], "sentence": s} for row, s in zip(rows, sentences)]}


def _direction(ctx: Context, w: np.ndarray) -> str:
    order = np.argsort(-np.abs(w), kind="stable")[:WEIGHTS_LISTED]
    parts = [f"{'-' if w[j] < 0 else '+'} {abs(w[j]):.2f} {ctx.names_in[j]}" for j in order]
    text = " ".join(parts).lstrip("+ ")
    return text + (" …" if len(w) > WEIGHTS_LISTED else "")


def _subspace(ctx: Context, rows: list[int], level: str) -> tuple[dict, dict]:
    r = ctx.result
    sub = r.subspace
    eig, summ = {}, {}
    y_all = np.asarray(r.outputs, dtype=np.float64)
    pick = subsample_indices(len(sub.sample), SUMMARY_SHOWN)
    for row in rows:
        o = ctx.outputs[row]
        out_name = ctx.names_out[o]
        ev = sub.eigenvalues[row][:EIGEN_SHOWN]
        idx = list(range(1, len(ev) + 1))
        trace = {"type": "scatter", "mode": "lines+markers", "x": idx, "y": round_list(ev), "name": "eigenvalue",
                 "marker": {"color": BLUE, "size": 7}, "line": {"color": BLUE},
                 "hovertemplate": "eigenvalue %{x}: %{y:.4g}<extra></extra>"}
        if sub.low is not None:
            lo, hi = sub.low[row][:EIGEN_SHOWN], sub.high[row][:EIGEN_SHOWN]
            trace["error_y"] = {"type": "data", "symmetric": False, "array": round_list(np.maximum(hi - ev, 0)),
                                "arrayminus": round_list(np.maximum(ev - lo, 0)), "color": BLACK, "thickness": 1.2}
        gap = sub.gap(row)
        w = sub.eigenvectors[row][0]
        lead = "" if not np.isfinite(w).all() else f"First direction: {_direction(ctx, w)}."
        if np.isfinite(gap) and gap >= ROUNDING_GAP:
            gap = float("inf")
        if np.isfinite(gap) and gap >= 10:
            caption = (f"{out_name} varies mostly along one direction of the scaled inputs: the first eigenvalue "
                       f"is {format_number(gap)} times the second. {lead}")
        elif np.isfinite(gap):
            caption = (f"No single dominant direction for {out_name}: the first eigenvalue is {gap:.3g} times the "
                       f"second. {lead}")
        else:
            caption = (f"{out_name} varies along one direction only: the other eigenvalues are zero up to rounding. "
                       f"{lead}")
        positive = ev[ev > 0]
        eig[str(row)] = {
            "data": [trace], "caption": caption.strip(),
            "layout": {"title": {"text": f"{plotly_text(out_name)}: eigenvalues of E[g g^T]", "x": 0,
                                 "xanchor": "left"},
                       "xaxis": {"title": {"text": "eigenvalue number"}, "dtick": 1, "automargin": True},
                       "yaxis": {"title": {"text": "eigenvalue (log scale)"}, "type": "log" if positive.size else "linear",
                                 "automargin": True}},
            "summary": f"Eigenvalues of the active subspace of {out_name}: {caption}",
        }
        z = sub.first_variable[row][pick]
        y = y_all[sub.sample[pick], o]
        summ[str(row)] = {
            "data": [{"type": "scatter", "mode": "markers", "x": round_list(z, 4), "y": round_list(y, 4),
                      "marker": {"color": BLUE, "size": 5, "opacity": 0.7}, "name": "points",
                      "hovertemplate": "first active variable %{x:.4g}<br>" + plotly_text(out_name)
                                       + " %{y:.4g}<extra></extra>"}],
            "layout": {"title": {"text": f"{plotly_text(out_name)} against the first active variable", "x": 0,
                                 "xanchor": "left"},
                       "xaxis": {"title": {"text": "first active variable (w1 · scaled inputs)"}, "automargin": True},
                       "yaxis": {"title": {"text": plotly_text(out_name)}, "automargin": True}},
            "summary": (f"Scatter of {out_name} against the first active variable at {len(pick):,} points: a thin "
                        "curve means one direction explains the output."),
        }
    fe, fs = eig["0"], summ["0"]
    eig_fig = figure("active-eigen", fe["data"], {"height": 340, **fe["layout"]}, variants=eig,
                     controls=["gsa-output"], summary=fe["summary"], table="series")
    sum_fig = figure("active-summary", fs["data"], {"height": 380, **fs["layout"]}, variants=summ,
                     controls=["gsa-output"], summary=fs["summary"], table="series")
    notes = ["Active subspaces (Constantine 2015): the eigen-decomposition of the mean outer product of the gradient "
             "with respect to the inputs scaled by their standard deviation over the points (x_j / std_j). The first "
             "eigenvectors are the directions along which the output changes most on average; a large drop after "
             "the first eigenvalues means a few combinations of inputs explain the output."]
    notes.append(f"Whiskers: {level} intervals by a bootstrap over batches of points (eigenvectors held at their "
                 "estimate)." if sub.low is not None else
                 "No intervals: the batch matrices they need would take too much memory at this many inputs.")
    if len(sub.outputs) < ctx.k:
        notes.append(f"Active subspaces are computed for the first {len(sub.outputs)} of {ctx.k} outputs.")
    if len(pick) < len(y_all):
        notes.append(f"The summary plot draws {len(pick):,} of {len(y_all):,} points, evenly spaced.")
    return ({"fig": eig_fig, "caption": fe["caption"], "notes": notes},
            {"fig": sum_fig, "caption": fs.get("caption", "")})
