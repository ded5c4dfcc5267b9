"""The rankings section: top inputs per output and overall, with the spread across points, and its CSV."""

from __future__ import annotations

import csv
import html
import io

import numpy as np

from ..analysis import stats
from ..analysis.measures import UNITLESS
from ..analysis.globalsa import overlaps
from ..analysis.stats import ranking
from .context import Context, UNITS
from .figures import BLACK, BLUE, GREY, GREY_DARK, figure, ticks
from .format import csv_cell, exact_column, format_number, plotly_text, round_list


TOP_BARS = 15  # ranking charts show the top 15 inputs plus one "all other N inputs" bar


SELECT_OUTPUTS = 100  # outputs offered in the ranking selector (all are in the CSV)


def rankings_section(ctx: Context) -> dict | None:
    if not ctx.primary:
        return None
    views = [("overall", "Overall (all outputs, equal weight)", None)] if ctx.k > 1 else []
    views += [(f"o{row}", ctx.names_out[o], row) for row, o in enumerate(ctx.outputs[:SELECT_OUTPUTS])]
    variants = {}
    for m in ctx.rankable:
        for key, label, row in views:
            variants[f"{m}|{key}"] = ranking_variant(ctx, m, row, label)
    first = variants[f"{ctx.primary}|{views[0][0]}"]
    fig = figure("ranking", first["data"], first["layout"], variants=variants, controls=["rank-measure", "rank-view"],
                 summary=first["summary"])
    caption = first["caption"]
    notes = ["Bars: the measure over all points. Dot and whisker: the median and interquartile range (25th to 75th "
             "percentile) of the per-point values, i.e. how much the input's effect varies from point to point."]
    level = f"{100 * ctx.result.confidence:g} %"
    iv = ctx.result.intervals
    if iv is not None:
        notes.append(f"Thin grey line on a bar: the {level} confidence interval of the measure (on the overall view, "
                     f"of the share), by a bootstrap over {iv.batches} batches of consecutive points "
                     f"({iv.replicates} replicates).")
    if not ctx.spread:
        notes = ["Bars: the measure over all points. " + (ctx.deriv_note or "One point only: no spread across points.")]
    if ctx.stats_note:
        notes.append(ctx.stats_note)
    if ctx.n > TOP_BARS + 1:
        notes.append(f"The {TOP_BARS} largest inputs are drawn; one more bar adds up the other {ctx.n - TOP_BARS}. "
                     "The table lists every input.")
    if ctx.k > SELECT_OUTPUTS:
        notes.append(f"The selector offers the first {SELECT_OUTPUTS} of {ctx.k} outputs; the CSV holds all of them.")
    columns, text = rankings_csv(ctx)
    return {
        "print": [print_ranking(ctx, row, label) for _, label, row in views],
        "figure": fig,
        "caption": caption,
        "notes": notes,
        "measure_options": [{"value": m, "label": ctx.label(m)} for m in ctx.rankable],
        "view_options": [{"value": key, "label": label} for key, label, _ in views],
        "csv": {"filename": "sensitivity-rankings.csv", "text": text, "columns": columns},
        "columns": [{"key": m, "label": ctx.label(m)} for m in ctx.shown],
    }


def ranking_variant(ctx: Context, m: str, row: int | None, view_label: str) -> dict:
    r = ctx.result
    values = np.asarray(r.overall[m] if row is None else r.measures[m][row], dtype=np.float64)
    order = ranking(values)
    top = order[:TOP_BARS] if ctx.n > TOP_BARS + 1 else order
    rest = order[len(top):]
    raw = [ctx.names_in[j] for j in top]
    names = [plotly_text(n) for n in raw]
    x = [values[j] for j in top]
    colours = [BLUE] * len(top)
    if rest:
        raw.append(f"all other {len(rest):,} inputs (sum)")
        names.append(raw[-1])
        x.append(float(np.nansum(values[rest])))
        colours.append(GREY)
    o = None if row is None else ctx.outputs[row]
    units = [ctx.measure_unit(m, o, j) for j in top] + ([""] if rest else [])
    data = [{"type": "bar", "orientation": "h", "x": round_list(np.array(x)), "y": names, "name": ctx.label(m),
             "marker": {"color": colours}, "hovertemplate": "%{y}: %{x:.4g}<extra></extra>"}]
    if any(units):  # declared units in the hover: "income_k: 0.0123 probability per kUSD"
        data[0]["customdata"] = [plotly_text(u) for u in units]
        data[0]["hovertemplate"] = "%{y}: %{x:.4g} %{customdata}<extra></extra>"
    low, high = ranking_interval(ctx, m, row)
    if low is not None:  # the confidence interval of the measure itself, on each bar
        bars = np.array(x[:len(top)], dtype=np.float64)
        pad = [None] * (len(x) - len(top))
        data[0]["error_x"] = {"type": "data", "symmetric": False, "color": GREY_DARK, "thickness": 1.2, "width": 3,
                              "array": round_list(np.maximum(high[top] - bars, 0), 3) + pad,
                              "arrayminus": round_list(np.maximum(bars - low[top], 0), 3) + pad}
    spread = ctx.spread_overall.get(m) if row is None else (ctx.spread[m][:, row] if m in ctx.spread else None)
    if spread is not None:
        q = spread[:, top]
        data.append({
            "type": "scatter", "mode": "markers", "x": round_list(q[1]), "y": names[:len(top)],
            "name": "median and interquartile range across points",
            "marker": {"color": BLACK, "size": 7, "symbol": "diamond"},
            "error_x": {"type": "data", "symmetric": False, "array": round_list(q[2] - q[1]),
                        "arrayminus": round_list(q[1] - q[0]), "color": BLACK, "thickness": 1.5, "width": 4},
            "hovertemplate": "%{y}: median %{x:.4g} across points<extra></extra>",
        })
    what = "share of sensitivity, averaged over outputs" if row is None and m not in UNITLESS else UNITS[m]
    if o is not None and ctx.units_out[o] and m == "std_scaled":
        what += f", in {ctx.units_out[o]}"
    elif o is not None and ctx.units_out[o] and m in ("mean_abs", "rms"):
        what += f", in {ctx.units_out[o]} per unit of each input"
    title = f"{plotly_text(view_label)}: {ctx.label(m)}"
    xaxis = {"title": {"text": plotly_text(what)}, "rangemode": "tozero", "zeroline": True, "automargin": True}
    # a long tail of small inputs can sum to more than the top bars: cut that bar at the axis end, label its value
    reach = [v for v in x[:len(top)] if np.isfinite(v)] + ([float(np.nanmax(spread[2, top]))] if spread is not None
                                                           and np.isfinite(spread[2, top]).any() else [])
    annotations = []
    if rest and reach and np.isfinite(x[-1]) and x[-1] > 1.6 * max(reach) > 0:
        xaxis["range"] = [0, 1.25 * max(reach)]
        annotations.append({"x": xaxis["range"][1], "y": names[-1], "xref": "x", "yref": "y", "xanchor": "right",
                            "text": f"{format_number(x[-1])} →", "showarrow": False,
                            "font": {"color": "#ffffff", "size": 12}})
        title += " (last bar cut at the axis end)"
    layout = {"title": {"text": title, "x": 0, "xanchor": "left"}, "height": 110 + 24 * len(names),
              "xaxis": xaxis, "annotations": annotations,
              "yaxis": {"automargin": True, "autorange": "reversed", "type": "category", **ticks(raw)},
              "showlegend": spread is not None,  # above the bars on the left, clear of the toolbar on the right
              "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"},
              "bargap": 0.25}
    listed = ", ".join(f"{raw[i]} {ctx.value_text(x[i], units[i])}" for i in range(min(5, len(top))))
    summary = (f"Bar chart, {html.unescape(title)}, {what}: the largest of {ctx.n:,} "
               f"input{'s' if ctx.n != 1 else ''} are {listed}.")
    caption = ""
    if low is not None:
        pairs = overlaps(order, low, high)
        if pairs:
            said = "; ".join(f"{ctx.names_in[a]} and {ctx.names_in[b]}" for a, b in pairs[:3])
            caption = (f"{said} cannot be told apart at these points: their {100 * ctx.result.confidence:g} % "
                       "intervals overlap.")
    return {"data": data, "layout": layout, "summary": summary, "caption": caption}


def ranking_interval(ctx: Context, m: str, row: int | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The confidence interval of what a ranking view shows ``[n]``: the measure's for one
    output, the overall shares' for "Overall" (None without intervals)."""
    iv = ctx.result.intervals
    if iv is None:
        return None, None
    if row is not None and m in iv.measures:
        low, high = iv.measures[m]
        return np.asarray(low[row], dtype=np.float64), np.asarray(high[row], dtype=np.float64)
    if row is None and m in iv.overall:
        low, high = iv.overall[m]
        return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return None, None


def print_ranking(ctx: Context, row: int | None, label: str) -> dict:
    """One view's top inputs by the leading measure as a table, for print: paper shows every
    output's ranking, not only the one a selector shows on screen."""
    m = ctx.primary
    values = np.asarray(ctx.result.overall[m] if row is None else ctx.result.measures[m][row], dtype=np.float64)
    share = values if row is None and m not in UNITLESS else stats.shares(values)
    order = ranking(values)
    top = order[:TOP_BARS] if ctx.n > TOP_BARS + 1 else order
    o = None if row is None else ctx.outputs[row]
    rows = [{"rank": k + 1, "input": ctx.names_in[j], "value": float(values[j]), "share": float(share[j]),
             "unit": ctx.measure_unit(m, o, j)} for k, j in enumerate(top)]
    rest = order[len(top):]
    return {"label": label, "rows": rows, "overall": row is None,
            "rest": {"count": len(rest), "value": float(np.nansum(values[rest])),
                     "share": float(np.nansum(share[rest]))} if rest else None}


def rankings_csv(ctx: Context) -> tuple[list[str], str]:
    """Every view's table as CSV: measures exactly as in results.json, ranks, spread across points."""
    r = ctx.result
    measures = ctx.shown + [m for m in ctx.rankable if m not in ctx.shown]
    spread_cols = [m for m in ctx.rankable if m in ctx.spread]
    columns = (["scope", "output", "input"] + [f"rank_{m}" for m in ctx.rankable] + measures
               + [f"{m}_{q}" for m in spread_cols for q in ("p25", "p75")])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    views = ([("overall", "", None)] if ctx.k > 1 else []) + [("output", ctx.names_out[o], row)
                                                              for row, o in enumerate(ctx.outputs)]
    for scope, out_name, row in views:
        vals = {m: np.asarray(r.overall[m] if row is None else r.measures[m][row], float) for m in measures}
        order = ranking(vals[ctx.primary])
        # whole columns at once, in the rows' order: the same text as exact() per cell
        cols = [[int(v) for v in stats.rank_positions(vals[m])[order]] for m in ctx.rankable]
        cols += [exact_column(vals[m][order]) for m in measures]
        for m in spread_cols:
            q = ctx.spread_overall[m] if row is None else ctx.spread[m][:, row]
            cols += [exact_column(q[0, order], 6), exact_column(q[2, order], 6)]
        out_cell, names = csv_cell(out_name), [csv_cell(ctx.names_in[j]) for j in order]
        w.writerows([scope, out_cell, name, *cells] for name, *cells in zip(names, *cols))
    return columns, buf.getvalue()
