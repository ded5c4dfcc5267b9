"""Decide what the report shows (plain data), then render it with Jinja templates.

:func:`build_report` turns a :class:`~sensreport.results.RunResult` into plain data:
sentences, check rows, tables, and plotly figure specs with their variants (one per
point, measure or output a control can select). :func:`render_report` renders that
data with one Jinja environment (autoescaping, ``StrictUndefined``). Math lives in
:mod:`sensreport.measures` and :mod:`sensreport.summaries`; this module selects,
rounds and lays out.

Escaping: all user text reaches HTML through Jinja's autoescaping. Figure data is
embedded as JSON with ``<``, ``>`` and ``&`` escaped (:func:`_json`), so no string can
close the script tag, and every user string that plotly draws is HTML-escaped first
(:func:`_pt`), because plotly renders a subset of HTML in labels and hover text.

Size: plotly.js is about 4.8 MB; everything else is kept under a few MB by cell
budgets. Past a budget the page shows a subset (the most influential inputs, evenly
spaced points) and says so; the full arrays are in ``arrays.npz``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from . import measures as M
from . import summaries as S
from .measures import DEFINITIONS, UNITLESS, ranking
from .results import RunResult

METHOD_TITLES = {
    "jacobian": "Full Jacobian (automatic differentiation)",
    "rows": "Selected rows (gradients of chosen outputs)",
    "finite_difference": "Finite differences",
}

#: Measures the ranking selector offers, in this order (``positive_share`` is a direction, not a size).
RANKABLE = ("std_scaled", "mean_abs", "rms", "elasticity")
#: Each measure as a noun phrase for sentences ("… of its std-scaled sensitivity").
NOUNS = {
    "mean_abs": "mean |dy/dx|",
    "rms": "RMS derivative",
    "std_scaled": "std-scaled sensitivity",
    "elasticity": "elasticity",
    "positive_share": "share of positive derivatives",
}
UNITS = {
    "mean_abs": "mean |dy/dx|",
    "rms": "RMS dy/dx",
    "std_scaled": "mean |dy/dx| × std(x)",
    "elasticity": "mean |x/y · dy/dx|",
    "positive_share": "share of points",
}

TOP_BARS = 15  # ranking charts show the top 15 inputs plus one "all other N inputs" bar
SUMMARY_OUTPUTS = 20  # one sentence per output, up to this many
SELECT_OUTPUTS = 100  # outputs offered in the ranking selector (all are in the CSV)
HEATMAP_CELLS = 40_000  # outputs x inputs cells of one aggregate heatmap
HEATMAP_OUTPUTS = 100
POINT_CELLS = 60_000  # cells over all points embedded for the point slider
ROW_CELLS = 50_000  # cells over all outputs of the points x inputs heatmaps
IMAGE_OUTPUTS = 20
IMAGE_CELLS = 100_000  # pixels over all embedded per-point images
SCATTER_ENTRIES = 2_000  # FD-vs-AD entries drawn in the scatter
SCATTER_WORST = 200  # of which the worst by relative error
AGREEMENT_ENTRIES = 8_000_000  # entries the error heatmap and scatter are computed from at most
STATS_ENTRIES = 8_000_000  # per-point values held at once for spread and stability (64 MB each)
CLIP_PERCENTILE = 98.0
IMAGE_CLIP_PERCENTILE = 99.5  # a feature can cover 2% of an image: clip less, or it saturates
STABILITY_SPEARMAN = 0.5  # below: an output's ranking changes order much across points
STABILITY_OVERLAP = 0.5
SIGN_MINORITY = 0.1  # a derivative changes sign when at least 10% of points go the other way
FD_WARN_SHARE = 0.95  # FD-vs-AD: warn when some entries disagree, fail below this share

# ColorBrewer RdBu (colour-blind safe), blue for negative, red for positive.
DIVERGING = [[0.0, "#053061"], [0.1, "#2166ac"], [0.2, "#4393c3"], [0.3, "#92c5de"], [0.4, "#d1e5f0"],
             [0.5, "#f7f7f7"], [0.6, "#fddbc7"], [0.7, "#f4a582"], [0.8, "#d6604d"], [0.9, "#b2182b"],
             [1.0, "#67001f"]]
SEQUENTIAL = "Viridis"  # perceptually uniform and colour-blind safe
# Okabe-Ito colours: distinguishable with every common colour-vision deficiency.
BLUE, VERMILLION, GREY, BLACK = "#0072B2", "#D55E00", "#9aa0a6", "#222222"

PLOT_CONFIG = {"responsive": True, "displaylogo": False,
               "modeBarButtonsToRemove": ["select2d", "lasso2d", "toggleSpikelines"]}


# --------------------------------------------------------------------------- formatting
def format_number(value: Any, digits: int = 4) -> str:
    """A number for people: 4 significant digits, scientific when very small or large."""
    if value is None:
        return "—"
    v = float(value)
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{digits - 1}e}"


def _percent(share: float) -> str:
    """A share as a percentage that never rounds a partial share to 0% or 100%."""
    if share is None or not math.isfinite(share):
        return "—"
    p = 100 * share
    if p in (0, 100):
        return f"{p:.0f}%"
    if p > 99.5:
        return f"{min(p, 99.99):.2f}%"
    return f"{p:.0f}%" if p >= 9.5 else f"{p:.1f}%" if p >= 0.1 else "<0.1%"


def _tol(v: float) -> str:
    """A tolerance as written in a spec: ``2e-3`` rather than ``0.002`` or ``2.000e-03``."""
    m, e = f"{float(v):.6e}".split("e")
    return f"{float(m):g}e{int(e)}"


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _markdown(text: str):
    """Markdown to HTML with raw HTML disabled (it is shown as text) and unsafe links refused."""
    import markupsafe
    from markdown_it import MarkdownIt

    return markupsafe.Markup(MarkdownIt("commonmark", {"html": False}).render(text or ""))


def _round(a: np.ndarray, sig: int = 6) -> list:
    """Nested lists with ``sig`` significant digits and None for non-finite values (keeps the page small)."""
    arr = np.asarray(a, dtype=np.float64)
    flat = [float(f"{v:.{sig}g}") if math.isfinite(v) else None for v in arr.ravel().tolist()]
    if arr.ndim == 0:
        return flat[0]
    out: Any = flat
    for size in reversed(arr.shape[1:]):
        out = [out[i:i + size] for i in range(0, len(out), size)]
    return out


def _json(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _pt(text: str) -> str:
    """A user string for plotly, which renders a subset of HTML in labels: shown as text."""
    return html.escape(str(text), quote=False)


def _csv_cell(text: str) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; a leading ' keeps them text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --------------------------------------------------------------------------- data access
def _derivatives(result: RunResult) -> tuple[np.ndarray | None, str | None]:
    """The per-point derivative array the measures came from, ``[P, k, n]``, or None with why."""
    name = result.measure_source
    if name is None:
        return None, "No method produced derivatives, so there is nothing to rank or map."
    m = result.methods[name]
    if m.values is not None:
        return m.values, None
    return None, (f"The per-point derivatives of this run ({METHOD_TITLES[name].lower()}) were not kept, so "
                  "per-point views, spreads across points and stability checks are not shown; the aggregate "
                  "measures are.")


def _preview(result: RunResult) -> tuple[np.ndarray | None, str | None]:
    """Derivatives for per-point views: all points, or the first ones the run kept as a preview."""
    deriv, _ = _derivatives(result)
    if deriv is not None:
        return deriv, None
    name = result.measure_source
    preview = getattr(result.methods[name], "preview", None) if name else None
    if preview is not None and len(preview):
        return preview, (f"Only the first {_count(len(preview), 'point')} were kept; per-point views show those "
                         "(the measures use all points).")
    return None, None


def _figure(fid: str, data: list, layout: dict, *, variants: dict | None = None, controls: list | None = None,
            table: str | None = None) -> dict:
    base = {"margin": {"t": 44, "r": 20, "b": 40, "l": 20}, "font": {"size": 12},
            "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "hoverlabel": {"namelength": -1}}
    base.update(layout)
    fig = {"data": data, "layout": base}
    if variants:
        fig["variants"] = variants
        fig["controls"] = controls or []
    if table:
        fig["table"] = table
    return {"id": fid, "spec": fig}


LABEL_CHARS = 28  # axis labels longer than this are shortened (hover shows the full name)


def _short(name: str) -> str:
    name = str(name)
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"


def _ticks(names: list[str]) -> dict:
    """Axis settings that shorten long category labels; plotly's own thinning is kept past 60 labels."""
    if len(names) > 60 or all(len(str(n)) <= LABEL_CHARS for n in names):
        return {}
    return {"tickmode": "array", "tickvals": [_pt(n) for n in names], "ticktext": [_pt(_short(n)) for n in names]}


def _label_room(names: list[str]) -> int:
    """Pixels that labels rotated by 45 degrees need below the plot."""
    longest = max((len(_short(n)) for n in names), default=1)
    return int(30 + 4.8 * longest)


def _heat_height(rows: int, per_row: int, x_names: list[str], cap: int = 560) -> int:
    """Title, axis labels and a plot area of at least 180 px (more for many rows, up to ``cap``)."""
    return 90 + max(180, min(cap, per_row * rows)) + _label_room(x_names)


def _heat_axes(xtitle: str, ytitle: str, x_names: list[str] = (), y_names: list[str] = ()) -> dict:
    return {
        "xaxis": {"title": {"text": xtitle, "standoff": 8}, "automargin": True, "tickangle": -45, "showgrid": False,
                  **_ticks(list(x_names))},
        "yaxis": {"title": {"text": ytitle}, "automargin": True, "autorange": "reversed", "showgrid": False,
                  **_ticks(list(y_names))},
    }


def _clip_note(clip: dict, what: str) -> str:
    if clip["clipped"] == 0:
        return (f"Colour scale: {what} up to {format_number(clip['high'])}, the largest value or the "
                f"{CLIP_PERCENTILE:g}th percentile; no cell is clipped.")
    return (f"Colour scale clipped at the {CLIP_PERCENTILE:g}th percentile of {what} ({format_number(clip['high'])}): "
            f"{_count(clip['clipped'], 'cell')} of {clip['total']:,} lie beyond and show the end colour. "
            "Hover shows every cell's exact value.")


# --------------------------------------------------------------------------- sections
class _Context:
    """What several sections share, computed once."""

    def __init__(self, result: RunResult):
        r = result
        self.result = r
        self.names_in = list(r.input_names)
        self.names_out = list(r.output_names)
        self.n = len(self.names_in)
        self.P = int(len(r.points))
        self.outputs = list(r.measure_outputs)  # output index of each measure row
        self.k = len(self.outputs)
        shown = [m for m in r.shown_measures if m in r.measures]
        self.shown = shown or [m for m in DEFINITIONS if m in r.measures]
        ok = [m for m in RANKABLE if m in r.measures and np.isfinite(np.asarray(r.overall[m], float)).any()]
        self.rankable = [m for m in self.shown if m in ok] + [m for m in ok if m not in self.shown]
        self.primary = self.rankable[0] if self.rankable else None
        self.deriv, self.deriv_note = _derivatives(r)
        self.image = S.image_axes(r.input_shape)
        self.spread: dict[str, np.ndarray] = {}  # measure -> [3, k, n] percentiles 25/50/75
        self.spread_overall: dict[str, np.ndarray] = {}  # measure -> [3, n]
        self.stability = None
        self.signs = None
        self.signed_mean = None
        self.stats_note = None
        if self.deriv is not None and self.P > 1:
            # spread and stability need every per-point value at once: past a budget, evenly spaced points
            idx = S.subsample_indices(self.P, max(1, STATS_ENTRIES // max(1, self.k * self.n)))
            if len(idx) < self.P:
                self.stats_note = (f"The spread across points and the stability check use {len(idx):,} of the "
                                   f"{self.P:,} points, evenly spaced (a memory budget); the measures use all.")
            y = np.asarray(r.outputs, dtype=np.float64)[:, self.outputs]
            sample = self.deriv if len(idx) == self.P else self.deriv[idx]
            spread, guard = M.input_spread(r.points), M.elasticity_guard(y)
            for m in self.rankable:
                local = S.local_values(m, sample, r.points[idx], y[idx], spread=spread, guard=guard)
                self.spread[m] = S.quantiles(local, axis=0)
                self.spread_overall[m] = S.quantiles(S.overall_local(local), axis=0)
                if m == self.primary and self.n >= 3:
                    self.top_k = min(5, max(1, self.n // 3))  # small enough that a random order rarely shares it
                    self.stability = S.rank_stability(local, r.measures[m], self.top_k)
                del local
        if self.deriv is not None:
            d = S.direction_stats(self.deriv)  # all points, a chunk at a time
            self.signs = (d["positive"], d["negative"])
            self.signed_mean = d["mean"]
        elif "positive_share" in r.measures:
            self.signs = (np.asarray(r.measures["positive_share"], float), None)

    def label(self, m: str) -> str:
        return DEFINITIONS[m][0]


def _summary(ctx: _Context) -> dict:
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
                       + _join([f"{ctx.names_in[j]} ({_percent(ov[j])})" for j in top]) + ".")
        for row, o in enumerate(ctx.outputs[:SUMMARY_OUTPUTS]):
            values = np.asarray(r.measures[m][row], float)
            share = S.shares(values)
            order = [j for j in ranking(values)[:3] if np.isfinite(values[j]) and values[j] > 0]
            if not order:
                sentences.append({"output": ctx.names_out[o], "text": "does not react to any input at these points "
                                  "(every derivative is zero or not finite)."})
                continue
            parts = [f"{ctx.names_in[j]} ({_percent(share[j])})" for j in order]
            text = f"reacts most to {_join(parts)} of its {NOUNS[m]}"
            direction = _direction(ctx, row, order)
            sentences.append({"output": ctx.names_out[o], "text": text + (f"; {direction}" if direction else "") + "."})
    return {"overall": overall, "sentences": sentences, "more": max(0, ctx.k - SUMMARY_OUTPUTS)}


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _direction(ctx: _Context, row: int, inputs: list[int]) -> str:
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
            mixed.append(f"{ctx.names_in[j]} (rises at {_percent(p)} of points)")
    where = "at every point" if ctx.P > 1 else "at this point"
    parts = []
    if rises:
        parts.append(f"it rises with {_join(rises)}")
    if falls:
        parts.append(f"falls with {_join(falls)}" if parts else f"it falls with {_join(falls)}")
    text = " and ".join(parts) + (f" {where}" if parts else "")
    if mixed:
        text += ("; " if text else "") + "the direction depends on the point for " + _join(mixed)
    return text


def _checks(ctx: _Context) -> list[dict]:
    r = ctx.result
    rows: list[dict] = []

    def add(status, title, text, items=(), key=None):
        rows.append({"status": status, "title": title, "text": text, "items": list(items), "key": key})

    for name, m in r.methods.items():
        if m.status != "ok":
            add("fail", f"{METHOD_TITLES[name]} failed", m.reason or "no reason given", key=f"method.{name}")
    # FD vs AD
    a = r.agreement["summary"] if r.agreement else None
    if a is None:
        ran = {k for k, m in r.methods.items() if m.status == "ok"}
        why = ("needs finite differences and automatic derivatives (methods.finite_difference with "
               "methods.jacobian or methods.rows)") if not ({"finite_difference"} <= ran and ran & {"jacobian", "rows"}) \
            else "no comparison was made"
        add("na", "Finite differences vs automatic derivatives", f"Not compared: {why}.", key="fd_vs_ad")
    else:
        share = a.get("share_within_tolerance")
        bad = a["entries"] - round((share or 0) * a["entries"])
        within = a["entries"] - bad
        text = (f"{within:,} of {a['entries']:,} entries ({_percent(share)}) agree within a relative error of "
                f"{_tol(a['rtol'])} ({a.get('dtype', '')}); largest relative error "
                f"{format_number(a.get('max_rel_error'))}.")
        if share == 1.0 and not a.get("nonfinite_entries"):
            add("pass", "Finite differences agree with automatic derivatives", text, key="fd_vs_ad")
        else:
            worst = [f"point #{w['point']}, {ctx.names_out[w['output']]} / {ctx.names_in[w['input']]}: "
                     f"automatic {format_number(w['ad'])}, finite difference {format_number(w['fd'])} "
                     f"(relative error {format_number(w['rel_error'])})" for w in a["worst"][:3]
                     if w["rel_error"] > a["rtol"]]
            status = "warn" if share is not None and share >= FD_WARN_SHARE else "fail"
            add(status, f"Finite differences vs automatic derivatives: {_count(bad, 'entry', 'entries')} outside the "
                "tolerance",
                text + " Disagreement usually means a kink (ReLU, max, abs), a step too large for a curved "
                "function, or a wrong custom gradient.", worst, key="fd_vs_ad")
    # non-finite values
    bad = [(k, v) for k, v in r.nonfinite.items() if v["count"]]
    if bad:
        items = []
        for k, v in bad:
            locs = ", ".join(_location(ctx, k, loc) for loc in v["locations"][:5])
            items.append(f"{v['count']:,} in {k} ({v['nan']:,} NaN, {v['inf']:,} infinite); first at {locs}")
        add("fail", "Non-finite values", "NaN or infinite numbers were found; they are left out of every measure.", items,
            key="nonfinite")
    elif r.nonfinite:
        add("pass", "All values are finite", "No NaN or infinite output or derivative.", key="nonfinite")
    # dead inputs
    if ctx.k and r.measure_source:
        if r.dead_inputs:
            names = [ctx.names_in[j] for j in r.dead_inputs]
            shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            add("warn", f"{_count(len(names), 'dead input')}",
                f"The derivative of every output with respect to {shown} is exactly zero at every point: the model "
                "ignores these inputs here, or a gradient is blocked (stop_gradient, rounding).", key="dead_inputs")
        else:
            add("pass", "No dead inputs", "Every input moves at least one output at some point.", key="dead_inputs")
    # stability of the ranking across points
    if ctx.stability is not None:
        rho, ov = ctx.stability["median_spearman"], ctx.stability["mean_overlap"]
        unstable = [row for row in range(ctx.k)
                    if (np.isfinite(rho[row]) and rho[row] < STABILITY_SPEARMAN) or ov[row] < STABILITY_OVERLAP]
        what = (f"median Spearman correlation between each point's ranking and the overall ranking, and the share of "
                f"the top {ctx.top_k} inputs in common")
        if unstable:
            items = [f"{ctx.names_out[ctx.outputs[row]]}: median Spearman {rho[row]:.2f}, top-{ctx.top_k} overlap "
                     f"{_percent(ov[row])}" for row in unstable[:10]]
            if len(unstable) > 10:
                items.append(f"and {len(unstable) - 10} more outputs")
            add("warn", f"Ranking changes across points for {_count(len(unstable), 'output')}",
                f"The aggregate ranking hides point-to-point differences ({what}). Read the per-point heatmaps.", items)
        else:
            add("pass", "Rankings are stable across points",
                f"For every output, {what} are at least {STABILITY_SPEARMAN} and {_percent(STABILITY_OVERLAP)}.")
    elif ctx.deriv is not None and ctx.P == 1:
        add("na", "Stability across points", "One point only: nothing to compare.")
    elif ctx.deriv is not None and ctx.n < 3:
        add("na", "Stability across points", "Fewer than three inputs: the order of the inputs has little to change.")
    # sign changes among the top inputs
    if ctx.signs is not None and ctx.signs[1] is not None and ctx.P > 1 and ctx.primary:
        pos, neg = ctx.signs
        items = []
        for row, o in enumerate(ctx.outputs):
            values = np.asarray(ctx.result.measures[ctx.primary][row], float)
            for j in [j for j in ranking(values)[:3] if values[j] > 0]:
                if min(pos[row, j], neg[row, j]) >= SIGN_MINORITY:
                    items.append(f"{ctx.names_out[o]} rises with {ctx.names_in[j]} at {_percent(pos[row, j])} of "
                                 f"points and falls at {_percent(neg[row, j])}")
        if items:
            more = len(items) - 10
            add("warn", f"Direction changes across points ({_count(len(items), 'case')})",
                "For these top inputs the sign of the derivative depends on the point, so one average hides "
                "two opposite effects.", items[:10] + ([f"and {more} more"] if more > 0 else []))
        else:
            add("pass", "Directions are consistent",
                f"Each output's top inputs act in one direction at {_percent(1 - SIGN_MINORITY)} or more of the points.")
    for w in r.warnings:
        add("warn", "Warning from the run", w)
    for note in getattr(r, "notes", None) or []:
        add("info", "Note from the run", note)
    _merge_configured(rows, getattr(r, "checks", None) or [])
    order = {"fail": 0, "error": 1, "warn": 2, "pass": 3, "info": 4, "na": 5}
    rows.sort(key=lambda row: order.get(row["status"], 1))
    return rows


def _merge_configured(rows: list[dict], configured: list[dict]) -> None:
    """Fold in the checks the spec configured (``result.checks``): their status is the one the CLI exits on.

    A configured check with the same id as a finding above sets that row's status and
    adds its threshold; the others (e.g. the baseline comparison) get rows of their own.
    """
    by_key = {row["key"]: row for row in rows if row["key"]}
    for c in configured:
        c = dict(c)
        cid = str(c.get("id", "check"))
        status = c.get("status") if c.get("status") in ("pass", "warn", "fail", "error") else "error"
        line = f"Spec check {cid}: {c.get('message', '')}"
        if c.get("threshold") is not None:
            line += f" (threshold {_plain(c['threshold'])}, severity {c.get('severity', '—')})"
        row = by_key.get(cid)
        if row is None:
            title = {"baseline.drift": "Drift against the baseline run",
                     "baseline.top_k": "Top inputs against the baseline run",
                     "baseline.rank_correlation": "Ranking against the baseline run",
                     "baseline": "Comparison with the baseline run"}.get(cid, f"Check {cid}")
            rows.append({"status": status, "title": title, "text": str(c.get("message", "")), "items": [line],
                         "key": cid})
        else:
            row["status"] = status
            row["items"] = [line] + row["items"]


def _plain(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, float):
        return _tol(value) if 0 < abs(value) < 1e-2 else f"{value:g}"
    return str(value)




def _location(ctx: _Context, array: str, loc: list[int]) -> str:
    if array == "outputs" and len(loc) == 2:
        return f"point #{loc[0]}, {ctx.names_out[loc[1]]}"
    m = ctx.result.methods.get(array)
    if m is not None and len(loc) == 3:
        out = m.outputs[loc[1]] if loc[1] < len(m.outputs) else loc[1]
        return f"point #{loc[0]}, {ctx.names_out[out]} / {ctx.names_in[loc[2]]}"
    return str(loc)


# --------------------------------------------------------------------------- rankings
def _rankings(ctx: _Context) -> dict | None:
    if not ctx.primary:
        return None
    views = [("overall", "Overall (all outputs, equal weight)", None)] if ctx.k > 1 else []
    views += [(f"o{row}", ctx.names_out[o], row) for row, o in enumerate(ctx.outputs[:SELECT_OUTPUTS])]
    variants = {}
    for m in ctx.rankable:
        for key, label, row in views:
            variants[f"{m}|{key}"] = _ranking_variant(ctx, m, row, label)
    first = variants[f"{ctx.primary}|{views[0][0]}"]
    fig = _figure("ranking", first["data"], first["layout"], variants=variants, controls=["rank-measure", "rank-view"])
    notes = ["Bars: the measure over all points. Dot and whisker: the median and interquartile range (25th to 75th "
             "percentile) of the per-point values, i.e. how much the input's effect varies from point to point."]
    if not ctx.spread:
        notes = ["Bars: the measure over all points. " + (ctx.deriv_note or "One point only: no spread across points.")]
    if ctx.stats_note:
        notes.append(ctx.stats_note)
    if ctx.n > TOP_BARS + 1:
        notes.append(f"The {TOP_BARS} largest inputs are drawn; one more bar adds up the other {ctx.n - TOP_BARS}. "
                     "The table lists every input.")
    if ctx.k > SELECT_OUTPUTS:
        notes.append(f"The selector offers the first {SELECT_OUTPUTS} of {ctx.k} outputs; the CSV holds all of them.")
    columns, text = _rankings_csv(ctx)
    return {
        "figure": fig,
        "notes": notes,
        "measure_options": [{"value": m, "label": ctx.label(m)} for m in ctx.rankable],
        "view_options": [{"value": key, "label": label} for key, label, _ in views],
        "csv": {"filename": "sensitivity-rankings.csv", "text": text, "columns": columns},
        "columns": [{"key": m, "label": ctx.label(m)} for m in ctx.shown],
    }


def _ranking_variant(ctx: _Context, m: str, row: int | None, view_label: str) -> dict:
    r = ctx.result
    values = np.asarray(r.overall[m] if row is None else r.measures[m][row], dtype=np.float64)
    order = ranking(values)
    top = order[:TOP_BARS] if ctx.n > TOP_BARS + 1 else order
    rest = order[len(top):]
    raw = [ctx.names_in[j] for j in top]
    names = [_pt(n) for n in raw]
    x = [values[j] for j in top]
    colours = [BLUE] * len(top)
    if rest:
        raw.append(f"all other {len(rest):,} inputs (sum)")
        names.append(raw[-1])
        x.append(float(np.nansum(values[rest])))
        colours.append(GREY)
    data = [{"type": "bar", "orientation": "h", "x": _round(np.array(x)), "y": names, "name": ctx.label(m),
             "marker": {"color": colours}, "hovertemplate": "%{y}: %{x:.4g}<extra></extra>"}]
    spread = ctx.spread_overall.get(m) if row is None else (ctx.spread[m][:, row] if m in ctx.spread else None)
    if spread is not None:
        q = spread[:, top]
        data.append({
            "type": "scatter", "mode": "markers", "x": _round(q[1]), "y": names[:len(top)],
            "name": "median and interquartile range across points",
            "marker": {"color": BLACK, "size": 7, "symbol": "diamond"},
            "error_x": {"type": "data", "symmetric": False, "array": _round(q[2] - q[1]),
                        "arrayminus": _round(q[1] - q[0]), "color": BLACK, "thickness": 1.5, "width": 4},
            "hovertemplate": "%{y}: median %{x:.4g} across points<extra></extra>",
        })
    what = "share of sensitivity, averaged over outputs" if row is None and m not in UNITLESS else UNITS[m]
    title = f"{_pt(view_label)}: {ctx.label(m)}"
    xaxis = {"title": {"text": what}, "rangemode": "tozero", "zeroline": True, "automargin": True}
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
              "yaxis": {"automargin": True, "autorange": "reversed", "type": "category", **_ticks(raw)},
              "showlegend": spread is not None,
              "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
              "bargap": 0.25}
    return {"data": data, "layout": layout}


def _rankings_csv(ctx: _Context) -> tuple[list[str], str]:
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
        ranks = {m: S.rank_positions(vals[m]) for m in ctx.rankable}
        for j in ranking(vals[ctx.primary]):
            cells = [scope, _csv_cell(out_name), _csv_cell(ctx.names_in[j])]
            cells += [int(ranks[m][j]) for m in ctx.rankable]
            cells += [_exact(vals[m][j]) for m in measures]
            for m in spread_cols:
                q = ctx.spread_overall[m] if row is None else ctx.spread[m][:, row]
                cells += [_exact(q[0, j], 6), _exact(q[2, j], 6)]
            w.writerow(cells)
    return columns, buf.getvalue()


def _exact(v: float, sig: int | None = None) -> str:
    """Python's shortest round-trip repr (as in results.json), or ``sig`` digits; empty when not finite."""
    v = float(v)
    if not math.isfinite(v):
        return ""
    return repr(v) if sig is None else repr(float(f"{v:.{sig}g}"))


# --------------------------------------------------------------------------- heatmaps
def _heatmap_columns(ctx: _Context) -> tuple[list[int], list[int], list[str]]:
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


def _heatmaps(ctx: _Context) -> dict | None:
    r = ctx.result
    if ctx.image or not r.measure_source or "mean_abs" not in r.measures:
        return None
    rows, cols, budget_notes = _heatmap_columns(ctx)
    xs = [_pt(ctx.names_in[j]) for j in cols]
    ys = [_pt(ctx.names_out[ctx.outputs[i]]) for i in rows]
    out: dict[str, Any] = {"figures": [], "notes": list(budget_notes)}
    if ctx.k < len(ctx.names_out):
        out["notes"].append(f"Only the {ctx.k} selected outputs (methods.rows) have derivatives in this run.")
    mean_abs = np.asarray(r.measures["mean_abs"], float)[np.ix_(rows, cols)]
    ranks = S.rank_positions(np.asarray(r.measures["mean_abs"], float), axis=-1)[np.ix_(rows, cols)]
    x_names = [ctx.names_in[j] for j in cols]
    y_names = [ctx.names_out[ctx.outputs[i]] for i in rows]
    height = _heat_height(len(rows), 22, x_names)
    axes = _heat_axes("input", "output", x_names, y_names)
    hover = ("input %{x}<br>output %{y}<br>%{meta} %{z:.4g}<br>rank %{customdata} of " + f"{ctx.n}"
             + " inputs for this output<extra></extra>")
    clip_abs = S.clip_range(mean_abs)
    abs_trace = {"type": "heatmap", "x": xs, "y": ys, "z": _round(mean_abs), "customdata": ranks.tolist(),
                 "meta": "mean |dy/dx|", "colorscale": SEQUENTIAL, "zmin": clip_abs["low"], "zmax": clip_abs["high"],
                 "zmid": None, "colorbar": {"title": {"text": "mean |dy/dx|"}}, "hovertemplate": hover, "xgap": 0,
                 "ygap": 0}
    variants = {"abs": {"data": [{}], "caption": _clip_note(clip_abs, "mean |dy/dx|")}}
    if ctx.deriv is not None:
        signed = ctx.signed_mean[np.ix_(rows, cols)]
        clip_s = S.clip_range(signed, symmetric=True)
        variants["signed"] = {
            "data": [{"z": _round(signed), "meta": "mean dy/dx", "colorscale": DIVERGING, "zmin": clip_s["low"],
                      "zmax": clip_s["high"], "zmid": 0, "colorbar": {"title": {"text": "mean dy/dx"}}}],
            "layout": {"title": {"text": "Signed mean dy/dx over the points (red: output rises with the input; "
                                         "blue: falls)", "x": 0, "xanchor": "left"}},
            "caption": _clip_note(clip_s, "|mean dy/dx| (symmetric around 0)"),
        }
    else:
        out["notes"].append("The signed mean needs the per-point derivatives. " + (ctx.deriv_note or ""))
    variants["abs"]["layout"] = {"title": {"text": "Mean |dy/dx| over the points", "x": 0, "xanchor": "left"}}
    fig = _figure("heat-aggregate", [abs_trace], {**axes, "height": height, **variants["abs"]["layout"]},
                  variants=variants, controls=["heat-kind"], table="matrix")
    out["figures"].append({"fig": fig, "caption": variants["abs"]["caption"],
                           "kinds": [{"value": k, "label": lbl} for k, lbl in
                                     (("abs", "Mean |dy/dx|"), ("signed", "Signed mean dy/dx")) if k in variants]})
    # one point at a time
    deriv, preview_note = _preview(r)
    out["point"] = out["rows"] = None
    if deriv is None:
        out["point_note"] = ctx.deriv_note
        return out
    P = len(deriv)
    out["rows"] = _rows_heatmap(ctx, deriv, cols, preview_note)
    if P == 1:
        out["point_note"] = "One point only: the heatmap above is that point (choose the signed mean for its signs)."
        return out
    cells = max(1, len(rows) * len(cols))
    shown = S.subsample_indices(P, max(1, POINT_CELLS // cells))
    sub = np.asarray(deriv[shown], dtype=np.float64)[:, rows][:, :, cols]
    clip_p = S.clip_range(sub, symmetric=True)
    ranks_p = S.rank_positions(np.abs(np.asarray(deriv[shown], dtype=np.float64)[:, rows]), axis=-1)[:, :, cols]
    hover_p = ("input %{x}<br>output %{y}<br>dy/dx %{z:.4g}<br>rank %{customdata} of " + f"{ctx.n}"
               + " inputs for this output at this point<extra></extra>")
    pvariants = {}
    for i, p in enumerate(shown):
        pvariants[str(i)] = {"data": [{"z": _round(sub[i], 4), "customdata": ranks_p[i].tolist()}],
                             "caption": _point_caption(ctx, int(p), i, len(shown), P)}
    trace = {"type": "heatmap", "x": xs, "y": ys, "colorscale": DIVERGING, "zmin": clip_p["low"], "zmax": clip_p["high"],
             "zmid": 0, "colorbar": {"title": {"text": "dy/dx"}}, "hovertemplate": hover_p, **pvariants["0"]["data"][0]}
    notes = [_clip_note(clip_p, "|dy/dx| over the points shown") + " The colour range is the same for every point."]
    if len(shown) < P:
        notes.append(f"Cell budget: {len(shown):,} of {P:,} points are embedded, evenly spaced "
                     f"(#{', #'.join(str(int(p)) for p in shown[:4])}, …); every point is in arrays.npz.")
    if preview_note:
        notes.append(preview_note)
    pfig = _figure("heat-point", [trace], {**axes, "height": height,
                                           "title": {"text": "dy/dx at one point", "x": 0, "xanchor": "left"}},
                   variants=pvariants, controls=["point"], table="matrix")
    out["point"] = {"fig": pfig, "count": len(shown), "caption": pvariants["0"]["caption"], "notes": notes}
    return out


def _point_caption(ctx: _Context, p: int, i: int, shown: int, total: int) -> str:
    """Which point, with its first inputs (not for images: pixels say little) and outputs."""
    of = f"{i + 1} of {shown} shown" + (f", {total:,} in the run" if shown < total else "")
    parts = []
    if not ctx.image:
        x = ctx.result.points[p]
        parts.append(", ".join(f"{ctx.names_in[j]} = {format_number(x[j])}" for j in range(min(6, ctx.n)))
                     + (", …" if ctx.n > 6 else ""))
    y = ctx.result.outputs[p]
    outs = ctx.outputs[:4]
    parts.append("→ " + ", ".join(f"{ctx.names_out[o]} = {format_number(y[o])}" for o in outs)
                 + (", …" if len(ctx.outputs) > 4 else ""))
    return f"Point #{p} ({of}): " + " ".join(parts)


def _rows_heatmap(ctx: _Context, deriv: np.ndarray, cols: list[int], preview_note: str | None) -> dict:
    """Points x inputs for one output at a time: the rows method's outputs when it ran, else every output."""
    r = ctx.result
    rows_m = r.methods.get("rows")
    if rows_m is not None and rows_m.status == "ok" and rows_m.values is not None and r.measure_source != "rows":
        source, outputs = rows_m.values, list(rows_m.outputs)
        intro = "The outputs selected in methods.rows, from their gradients."
    else:
        source, outputs = deriv, list(ctx.outputs)
        intro = "Every output, from the derivatives the measures use."
    notes = [intro]
    outputs_shown = outputs[:HEATMAP_OUTPUTS]
    if len(outputs) > len(outputs_shown):
        notes.append(f"The first {len(outputs_shown)} of {len(outputs)} outputs are offered.")
    P = len(source)
    per = max(1, ROW_CELLS // max(1, len(outputs_shown) * len(cols)))
    shown = S.subsample_indices(P, per)
    sub = np.asarray(source[shown], dtype=np.float64)[:, :len(outputs_shown)][:, :, cols]  # [p, k, n]
    full = np.asarray(source[shown], dtype=np.float64)[:, :len(outputs_shown)]
    ranks = S.rank_positions(np.abs(full), axis=-1)[:, :, cols]
    clip = S.clip_range(sub, symmetric=True)
    xs = [_pt(ctx.names_in[j]) for j in cols]
    ys = [int(p) for p in shown]
    variants = {}
    for i, o in enumerate(outputs_shown):
        variants[str(i)] = {
            "data": [{"z": _round(sub[:, i], 4), "customdata": ranks[:, i].tolist(), "meta": _pt(ctx.names_out[o])}],
            "layout": {"title": {"text": f"d {_pt(ctx.names_out[o])} / dx at each point", "x": 0, "xanchor": "left"}},
        }
    hover = ("input %{x}<br>output %{meta}<br>point #%{y}<br>dy/dx %{z:.4g}<br>rank %{customdata} of " + f"{ctx.n}"
             + " inputs at this point<extra></extra>")
    trace = {"type": "heatmap", "x": xs, "y": ys, "colorscale": DIVERGING, "zmin": clip["low"], "zmax": clip["high"],
             "zmid": 0, "colorbar": {"title": {"text": "dy/dx"}}, "hovertemplate": hover, **variants["0"]["data"][0]}
    notes.append(_clip_note(clip, "|dy/dx|") + " The colour range is the same for every output.")
    if len(shown) < P:
        notes.append(f"Cell budget: {len(shown):,} of {P:,} points are drawn, evenly spaced; every point is in "
                     "arrays.npz.")
    if preview_note:
        notes.append(preview_note)
    x_names = [ctx.names_in[j] for j in cols]
    height = _heat_height(len(shown), 8, x_names)
    axes = _heat_axes("input", "point #", x_names)
    axes["yaxis"]["type"] = "linear"
    if len(shown) <= 12:
        axes["yaxis"].update(tickmode="array", tickvals=ys)
    fig = _figure("heat-rows", [trace], {**axes, "height": height, **variants["0"]["layout"]},
                  variants=variants, controls=["row-output"], table="matrix")
    return {"fig": fig, "notes": notes,
            "options": [{"value": str(i), "label": ctx.names_out[o]} for i, o in enumerate(outputs_shown)]}


# --------------------------------------------------------------------------- images
def _images(ctx: _Context) -> dict | None:
    r = ctx.result
    if not ctx.image or not r.measure_source or "mean_abs" not in r.measures:
        return None
    shape = r.input_shape
    axes = ctx.image
    rows = list(range(min(ctx.k, IMAGE_OUTPUTS)))
    notes = []
    if ctx.k > len(rows):
        notes.append(f"The first {len(rows)} of {ctx.k} outputs are drawn.")
    if axes["reduced"]:
        notes.append(f"Inputs of shape {list(shape)}: axis {', '.join(map(str, axes['reduced']))} "
                     f"(channels) is averaged as mean |value|, so each pixel shows how much it matters in any channel.")
    agg = S.to_image(np.asarray(r.measures["mean_abs"], float)[rows], shape)  # [k, H, W]
    fig = _image_grid(ctx, "img-aggregate", agg, rows, "Mean |dy/dx| per pixel", "mean |dy/dx|")
    out = {"figures": [fig], "notes": notes + [
        f"Each image is scaled to its own {IMAGE_CLIP_PERCENTILE:g}th percentile (1 on the colour bar), so the pattern of "
        "every output is visible; brighter pixels beyond it are clipped. Hover shows exact values."]}
    deriv, preview_note = _preview(r)
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
        v = _image_grid(ctx, "img-point", imgs[i], rows, "", "|dy/dx|", scale=scale)["spec"]["data"]
        variants[str(i)] = {"data": [{"z": t["z"], "customdata": t["customdata"]} for t in v],
                            "caption": _point_caption(ctx, int(p), i, len(shown), P)}
    pfig = _image_grid(ctx, "img-point", imgs[0], rows, "|dy/dx| per pixel at one point", "|dy/dx|", scale=scale,
                       variants=variants)
    pnotes = [f"Each output's images share one scale over the points shown (its {IMAGE_CLIP_PERCENTILE:g}th percentile), "
              "so brightness compares across points; brighter pixels are clipped."]
    if len(shown) < P:
        pnotes.append(f"Cell budget: {len(shown):,} of {P:,} points are embedded, evenly spaced; every point is in "
                      "arrays.npz.")
    if preview_note:
        pnotes.append(preview_note)
    out["point"] = {"fig": pfig, "count": len(shown), "caption": variants["0"]["caption"], "notes": pnotes}
    return out


def _image_grid(ctx: _Context, fid: str, images: np.ndarray, rows: list[int], title: str, what: str,
                scale: np.ndarray | None = None, variants: dict | None = None) -> dict:
    """One heatmap per output, laid out in a grid of square subplots sharing a 0-1 colour axis."""
    k = len(rows)
    ncol = min(k, 5)
    nrow = math.ceil(k / ncol)
    gap = 0.04
    data, layout = [], {"height": 60 + 190 * nrow, "title": {"text": title, "x": 0, "xanchor": "left"},
                        "coloraxis": {"colorscale": SEQUENTIAL, "cmin": 0, "cmax": 1,
                                      "colorbar": {"title": {"text": "relative"}}},
                        "annotations": []}
    for i, row in enumerate(rows):
        r_, c_ = divmod(i, ncol)
        sfx = "" if i == 0 else str(i + 1)
        top = 1 - r_ / nrow
        dom_y = [max(0.0, top - 1 / nrow + gap), top - gap * 0.6]
        dom_x = [c_ / ncol + gap / 2, (c_ + 1) / ncol - gap / 2]
        img = images[i]
        s = scale[i] if scale is not None else S.clip_range(img, IMAGE_CLIP_PERCENTILE)["high"]
        s = s if s > 0 else 1.0
        name = _pt(ctx.names_out[ctx.outputs[row]])
        data.append({"type": "heatmap", "z": _round(img / s, 3), "customdata": _round(img, 4), "coloraxis": "coloraxis",
                     "xaxis": f"x{sfx}", "yaxis": f"y{sfx}", "meta": name,
                     "hovertemplate": "output %{meta}<br>row %{y}, column %{x}<br>" + what
                     + " %{customdata:.4g}<extra></extra>"})
        layout[f"xaxis{sfx}"] = {"domain": dom_x, "showticklabels": False, "showgrid": False, "zeroline": False,
                                 "ticks": "", "anchor": f"y{sfx}", "constrain": "domain"}
        layout[f"yaxis{sfx}"] = {"domain": dom_y, "showticklabels": False, "showgrid": False, "zeroline": False,
                                 "ticks": "",
                                 "anchor": f"x{sfx}", "autorange": "reversed", "scaleanchor": f"x{sfx}",
                                 "constrain": "domain"}
        layout["annotations"].append({"text": name, "x": (dom_x[0] + dom_x[1]) / 2, "y": dom_y[1], "xref": "paper",
                                      "yref": "paper", "showarrow": False, "yanchor": "bottom", "font": {"size": 12}})
    return _figure(fid, data, layout, variants=variants, controls=["img-point"] if variants else None, table="matrix")


# --------------------------------------------------------------------------- FD vs AD
def _agreement(ctx: _Context) -> dict:
    r = ctx.result
    fd = r.methods.get("finite_difference")
    out: dict[str, Any] = {"summary": None, "figures": [], "notes": [], "step": None, "worst": []}
    if fd is not None and fd.status == "ok" and fd.step is not None:
        step = np.asarray(fd.step, dtype=np.float64)
        med = np.median(step, axis=0)
        out["step"] = {
            "scheme": fd.strategy or "", "min": float(step.min()), "max": float(step.max()),
            "per_input": [{"input": ctx.names_in[j], "median": float(med[j])} for j in range(min(ctx.n, 200))],
            "more": max(0, ctx.n - 200),
        }
    if not r.agreement:
        return out
    a = r.agreement["summary"]
    out["summary"] = a
    out["worst"] = [{**w, "output_name": ctx.names_out[w["output"]], "input_name": ctx.names_in[w["input"]]}
                    for w in a["worst"]]
    name = a.get("compared", "jacobian")
    ad_m = r.methods.get(name)
    ad_outputs = list(r.agreement.get("outputs") or (ad_m.outputs if ad_m else []))
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
    if "rel_error" in r.agreement and len(pts) == P:
        rel = np.asarray(r.agreement["rel_error"], dtype=np.float64)
    else:
        from .measures import agreement as _measure_agreement

        rel = _measure_agreement(ad, fdv, a["rtol"])["rel_error"]
    if len(pts) < P:
        out["notes"].append(f"The plots use {len(pts):,} of {P:,} points, evenly spaced (entry budget).")
    out["figures"].append(_fd_scatter(ctx, ad, fdv, rel, pts, ad_outputs, a["rtol"]))
    out["figures"].append(_fd_error_map(ctx, rel, pts, ad_outputs, a["rtol"]))
    return out


def _fd_scatter(ctx: _Context, ad, fd, rel, pts, outputs, rtol) -> dict:
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
    labels = [f"point #{int(pts[p])} · {_pt(ctx.names_out[outputs[o]])} / {_pt(ctx.names_in[j])}"
              for p, o, j in zip(p_i, o_i, j_i)]
    ok = e <= rtol
    data = []
    for mask, name, colour, symbol in ((ok, f"within tolerance ({_tol(rtol)})", BLUE, "circle"),
                                       (~ok, "outside tolerance", VERMILLION, "x")):
        idx = np.flatnonzero(mask)
        data.append({"type": "scatter", "mode": "markers", "name": f"{name}: {len(idx):,} drawn",
                     "x": _round(x[idx], 8), "y": _round(y[idx], 8), "text": [labels[i] for i in idx],
                     "customdata": _round(e[idx], 3),
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
    return {"fig": _figure("fd-scatter", data, layout, table="points"), "notes": [note]}


def _fd_error_map(ctx: _Context, rel, pts, outputs, rtol) -> dict:
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
    custom = [[[_round(w[i, c], 4), int(pts[at[i, j]])] for c, j in enumerate(cols)] for i in range(len(outputs))]
    lo = math.floor(np.nanmin(z)) if np.isfinite(z).any() else -16
    hi = math.ceil(np.nanmax(z)) if np.isfinite(z).any() else 0
    hi = max(hi, math.ceil(math.log10(rtol)) + 1, lo + 1)
    step = max(1, math.ceil((hi - lo) / 7))
    ticks = list(range(lo, hi + 1, step))
    trace = {"type": "heatmap", "x": [_pt(ctx.names_in[j]) for j in cols],
             "y": [_pt(ctx.names_out[o]) for o in outputs], "z": _round(z, 4), "customdata": custom,
             "meta": {"values": "customdata"}, "colorscale": SEQUENTIAL, "zmin": lo, "zmax": hi,
             "colorbar": {"title": {"text": "largest relative error"}, "tickvals": ticks,
                          "ticktext": [f"1e{t}" for t in ticks]},
             "hovertemplate": "input %{x}<br>output %{y}<br>largest relative error %{customdata[0]:.3g}"
                              "<br>at point #%{customdata[1]}<extra></extra>"}
    x_names = [ctx.names_in[j] for j in cols]
    y_names = [ctx.names_out[o] for o in outputs]
    layout = {**_heat_axes("input", "output", x_names, y_names), "height": _heat_height(len(outputs), 22, x_names),
              "title": {"text": "Largest relative error over the points (log scale)", "x": 0, "xanchor": "left"}}
    notes.append(f"Colour is log10 of the largest relative error; the tolerance {_tol(rtol)} is at "
                 f"{math.log10(rtol):.1f}. Bright cells are where the two methods disagree most.")
    return {"fig": _figure("fd-error", [trace], layout, table="matrix"), "notes": notes}


# --------------------------------------------------------------------------- baseline
def _baseline(result: RunResult) -> dict | None:
    """The comparison with a previous run (``checks.baseline``) as tables, if the run made one."""
    c = getattr(result, "baseline", None)
    if not c:
        return None
    if "error" in c:
        return {"error": c["error"]}
    measure = c.get("measure", "mean_abs")
    outputs = []
    for name, row in (c.get("per_output") or {}).items():
        outputs.append({
            "output": name, "max_rel_change": row.get("max_rel_change"), "top_k_changes": row.get("top_k_changes"),
            "rank_correlation": row.get("rank_correlation"),
            "inputs": [dict(i) for i in (row.get("inputs") or [])[:10]], "more": max(0, len(row.get("inputs") or []) - 10),
        })
    return {
        "error": None, "measure": DEFINITIONS.get(measure, (measure,))[0], "top_k": c.get("top_k"),
        "created": _date(c.get("baseline_created")), "model_sha256": c.get("baseline_model_sha256") or "—",
        "model_changed": c.get("model_changed"), "outputs": outputs,
    }


# --------------------------------------------------------------------------- provenance
def _provenance(result: RunResult) -> dict:
    prov = result.provenance
    command = prov.get("command")
    if command:
        cmd = " ".join(_shell_quote(c) for c in command)
        if prov.get("cwd"):
            cmd = f"cd {_shell_quote(prov['cwd'])} && {cmd}"
    elif prov.get("spec_path"):
        cmd = f"sensreport run {_shell_quote(str(prov['spec_path']))}"
    else:
        cmd = None
    rows = [("Model", result.model.get("source")), ("Model kind", result.model.get("kind")),
            ("Model sha256", result.model.get("sha256") or prov.get("model_sha256")),
            ("Spec file", prov.get("spec_path")), ("Spec sha256", prov.get("spec_sha256")),
            ("Points", prov.get("points_source")), ("Seed", prov.get("seed")), ("Created", prov.get("created")),
            ("Platform", prov.get("platform"))]
    memory = result.memory or {}
    return {
        "command": cmd,
        "rows": [{"key": k, "value": "—" if v is None else str(v)} for k, v in rows],
        "versions": [{"key": k, "value": v or "—"} for k, v in (prov.get("versions") or {}).items()],
        "timings": [{"key": k, "value": v} for k, v in result.timings.items()],
        "memory": [{"key": k.replace("_", " "), "value": _size(v) if k.endswith(("bytes", "budget", "rss")) else
                    _plain(v) if v is not None else None} for k, v in memory.items()],
        "spec_text": result.spec_text,
    }


def _size(n) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—" if n is None else str(n)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _date(iso: str | None) -> str:
    """``2026-11-27T06:33:03+00:00`` as ``27 Nov 2026, 06:33 UTC``."""
    import datetime as dt

    if not iso:
        return "—"
    try:
        d = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if d.utcoffset() == dt.timedelta(0):
        return f"{d:%d %b %Y, %H:%M} UTC"
    return f"{d:%d %b %Y, %H:%M %z}"


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _definitions(ctx: _Context) -> list[dict]:
    keys = ctx.shown + [m for m in DEFINITIONS if m not in ctx.shown and m in ctx.result.measures]
    return [{"title": DEFINITIONS[m][0], "text": DEFINITIONS[m][1], "ref": DEFINITIONS[m][2]} for m in keys]


# --------------------------------------------------------------------------- assembly
def build_report(result: RunResult) -> dict[str, Any]:
    """The report's structure as plain data: sections, sentences, tables and figure specs.

    Everything in it comes from ``result``; nothing here is HTML. Figure specs carry
    ``variants`` (patches a control selects: a point, a measure, an output) so that the
    page's script only switches between numbers decided here.
    """
    ctx = _Context(result)
    r = result
    rankings = _rankings(ctx)
    heatmaps = _heatmaps(ctx)
    images = _images(ctx)
    agreement = _agreement(ctx)
    figures: dict[str, Any] = {}

    def collect(fig):
        if fig:
            figures[fig["id"]] = fig["spec"]

    if rankings:
        collect(rankings["figure"])
    for sec in (heatmaps, images):
        if sec:
            for f in sec["figures"]:
                collect(f["fig"] if "fig" in f else f)
            if sec.get("point"):
                collect(sec["point"]["fig"])
            if sec.get("rows"):
                collect(sec["rows"]["fig"])
    for f in agreement["figures"]:
        collect(f["fig"])
    downloads = {"spec": {"filename": _spec_filename(r), "mime": "text/yaml", "text": r.spec_text}}
    if rankings:
        downloads["rankings"] = {"filename": rankings["csv"]["filename"], "mime": "text/csv",
                                 "text": rankings["csv"]["text"]}
    methods = [
        {"name": METHOD_TITLES[name], "status": m.status, "reason": m.reason, "strategy": m.strategy,
         "dtype": m.dtype, "seconds": m.seconds, "first_call": m.first_call_seconds, "calls": m.calls}
        for name, m in r.methods.items()
    ]
    table = None
    if rankings:
        table = {"columns": rankings["csv"]["columns"], "measures": [c["key"] for c in rankings["columns"]],
                 "labels": {m: ctx.label(m) for m in DEFINITIONS}, "rankable": ctx.rankable,
                 "spread": [m for m in ctx.rankable if m in ctx.spread],
                 "views": {v["value"]: ({"scope": "overall", "output": ""} if v["value"] == "overall" else
                                        {"scope": "output", "output": ctx.names_out[ctx.outputs[int(v["value"][1:])]]})
                           for v in rankings["view_options"]}}
    payload = {"figures": figures, "downloads": downloads, "table": table, "config": PLOT_CONFIG}
    prov = r.provenance
    return {
        "title": r.title or "Sensitivity report",
        "description": r.description,
        "created": _date(prov.get("created")),
        "status": r.status,
        "model": r.model,
        "points": ctx.P,
        "n_inputs": ctx.n,
        "n_outputs": len(ctx.names_out),
        "input_shape": list(r.input_shape),
        "measure_source": METHOD_TITLES.get(r.measure_source or "", "none"),
        "primary": ctx.label(ctx.primary) if ctx.primary else None,
        "primary_noun": NOUNS[ctx.primary] if ctx.primary else None,
        "measure_source_short": {"jacobian": "full Jacobian", "rows": "selected rows (gradients)",
                                 "finite_difference": "finite differences"}.get(r.measure_source or "", "—"),
        "summary": _summary(ctx),
        "checks": _checks(ctx),
        "methods": methods,
        "rankings": rankings and {k: v for k, v in rankings.items() if k != "csv"} | {
            "csv_filename": rankings["csv"]["filename"]},
        "spec_filename": downloads["spec"]["filename"],
        "no_measures_note": ctx.deriv_note if not ctx.primary else None,
        "heatmaps": heatmaps,
        "images": images,
        "agreement": agreement,
        "baseline": _baseline(r),
        "provenance": _provenance(r),
        "definitions": _definitions(ctx),
        "figure_ids": list(figures),
        "payload_json": _json(payload),
    }


def _spec_filename(result: RunResult) -> str:
    path = result.provenance.get("spec_path")
    name = Path(str(path)).name if path else "spec.yaml"
    return name if name.endswith((".yaml", ".yml")) else "spec.yaml"


def _template_dir() -> Path:
    """Templates ship in the wheel as ``sensreport/templates``; a source checkout has ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "report.html.j2").is_file():
            return candidate
    raise FileNotFoundError("sensreport's templates are missing from the installation")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["percent"] = _percent
    env.filters["tol"] = _tol
    env.filters["seconds"] = lambda s: "—" if s is None else (f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s")
    env.filters["markdown"] = _markdown
    return env


def plotly_script(plotlyjs: str = "inline") -> dict[str, str]:
    """How a page loads plotly.js: ``{"inline": code}`` (works offline) or ``{"src": CDN url}``."""
    import plotly.offline

    if plotlyjs == "inline":
        return {"inline": plotly.offline.get_plotlyjs().replace("</script", "<\\/script")}
    return {"src": f"https://cdn.plot.ly/plotly-{plotly.offline.get_plotlyjs_version()}.min.js"}


def render_report(result: RunResult, plotlyjs: str = "inline") -> str:
    """The complete HTML page; ``plotlyjs='inline'`` embeds plotly.js so it opens offline."""
    return _environment().get_template("report.html.j2").render(report=build_report(result),
                                                                plotly=plotly_script(plotlyjs))
