"""Plotly figure specs: colour scales, the toolbar's configuration, axes, sizes and captions shared by every chart."""

from __future__ import annotations

import html

import numpy as np

from .format import count_text, format_number, plotly_text


# ColorBrewer RdBu (colour-blind safe), blue for negative, red for positive.
DIVERGING = [[0.0, "#053061"], [0.1, "#2166ac"], [0.2, "#4393c3"], [0.3, "#92c5de"], [0.4, "#d1e5f0"],
             [0.5, "#f7f7f7"], [0.6, "#fddbc7"], [0.7, "#f4a582"], [0.8, "#d6604d"], [0.9, "#b2182b"],
             [1.0, "#67001f"]]


SEQUENTIAL = "Viridis"  # perceptually uniform and colour-blind safe


# Okabe-Ito colours: distinguishable with every common colour-vision deficiency.
BLUE, VERMILLION, GREY, BLACK = "#0072B2", "#D55E00", "#9aa0a6", "#222222"
GREY_DARK = "#5f6368"  # confidence intervals on bars: apart from the black spread marks


#: The chart toolbar: zoom, pan, reset and "download as PNG" only. A confidential audit
#: offers no button that uploads a chart or opens it elsewhere: plotly.js 3+ shows "Share
#: chart..." (upload to Plotly's cloud at ``plotlyServerURL``) unless ``showSendToCloud``
#: is false, so it is turned off and the server URL emptied; ``modeBarButtons`` replaces
#: every default button. The same configuration draws the history and comparison pages.
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "showSendToCloud": False, "plotlyServerURL": "",
               "modeBarButtons": [["zoom2d", "pan2d", "resetScale2d", "toImage"]]}


CLIP_PERCENTILE = 98.0


IMAGE_CLIP_PERCENTILE = 99.5  # a feature can cover 2% of an image: clip less, or it saturates


def figure(fid: str, data: list, layout: dict, *, variants: dict | None = None, controls: list | None = None,
            table: str | None = None, summary: str = "", narrow: dict | None = None) -> dict:
    """A figure spec: plotly ``data`` and ``layout``, and what the page shows around the chart.

    The layout's title is lifted out into the page (``title``, plain text): a heading
    wraps on a phone where a plotly title is cut, sits clear of the toolbar and is read
    by screen readers. ``summary`` is the chart in words, the page's text alternative
    (``aria-describedby``). Each variant (a patch a control selects) may carry its own
    ``layout`` (its title lifted too), ``caption``, ``summary`` and ``valuetext`` (what a
    slider announces). ``narrow`` patches the layout in containers under
    :data:`NARROW_WIDTH` pixels (a phone).
    """
    base = {"margin": {"t": 36, "r": 20, "b": 40, "l": 20}, "font": {"size": 12},
            "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "hoverlabel": {"namelength": -1}}
    base.update(layout)
    fig = {"data": data, "layout": base, "title": _lift_title(base), "summary": summary}
    if variants:
        for v in variants.values():
            if "title" in v.get("layout", {}):
                v["title"] = _lift_title(v["layout"])
        fig["variants"] = variants
        fig["controls"] = controls or []
    if table:
        fig["table"] = table
    if narrow:
        fig["narrow"] = narrow
    return {"id": fid, "spec": fig}


NARROW_WIDTH = 560  # px: below it a chart uses its ``narrow`` layout


def _lift_title(layout: dict) -> str:
    """Remove the plotly title from ``layout``; return it as plain text (plotly's labels are HTML-escaped)."""
    title = layout.pop("title", None)
    text = title.get("text", "") if isinstance(title, dict) else (title or "")
    return html.unescape(str(text))


def top_cells(values, row_names: list[str], col_names: list[str], top: int = 3, signed: bool = False) -> str:
    """The largest cells of a matrix in words, for a chart's text summary: ``"y / x 0.12, ..."``."""
    v = np.asarray(values, dtype=np.float64)
    mag = np.where(np.isfinite(v), np.abs(v), -np.inf).ravel()
    if not mag.size or not np.isfinite(mag).any():
        return "no finite values"
    order = np.argsort(-mag, kind="stable")[:top]
    parts = []
    for flat in order:
        if not np.isfinite(mag[flat]):
            break
        i, j = np.unravel_index(flat, v.shape)
        parts.append(f"{row_names[i]} / {col_names[j]} {format_number(v[i, j]) if signed else format_number(abs(v[i, j]))}")
    return ", ".join(parts)


LABEL_CHARS = 28  # axis labels longer than this are shortened (hover shows the full name)


def short_label(name: str) -> str:
    name = str(name)
    return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"


def ticks(names: list[str]) -> dict:
    """Axis settings that shorten long category labels; plotly's own thinning is kept past 60 labels."""
    if len(names) > 60 or all(len(str(n)) <= LABEL_CHARS for n in names):
        return {}
    return {"tickmode": "array", "tickvals": [plotly_text(n) for n in names], "ticktext": [plotly_text(short_label(n)) for n in names]}


def label_room(names: list[str]) -> int:
    """Pixels that labels rotated by 45 degrees need below the plot."""
    longest = max((len(short_label(n)) for n in names), default=1)
    return int(30 + 4.8 * longest)


def heat_height(rows: int, per_row: int, x_names: list[str], cap: int = 560) -> int:
    """Title, axis labels and a plot area of at least 180 px (more for many rows, up to ``cap``)."""
    return 90 + max(180, min(cap, per_row * rows)) + label_room(x_names)


def heat_axes(xtitle: str, ytitle: str, x_names: list[str] = (), y_names: list[str] = ()) -> dict:
    return {
        "xaxis": {"title": {"text": xtitle, "standoff": 8}, "automargin": True, "tickangle": -45, "showgrid": False,
                  **ticks(list(x_names))},
        "yaxis": {"title": {"text": ytitle}, "automargin": True, "autorange": "reversed", "showgrid": False,
                  **ticks(list(y_names))},
    }


def clip_note(clip: dict, what: str) -> str:
    if clip["clipped"] == 0:
        return (f"Colour scale: {what} up to {format_number(clip['high'])}, the largest value or the "
                f"{CLIP_PERCENTILE:g}th percentile; no cell is clipped.")
    return (f"Colour scale clipped at the {CLIP_PERCENTILE:g}th percentile of {what} ({format_number(clip['high'])}): "
            f"{count_text(clip['clipped'], 'cell')} of {clip['total']:,} lie beyond and show the end colour. "
            "Hover shows every cell's exact value.")
