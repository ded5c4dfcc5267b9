"""Plotly figure specs: colour scales, the toolbar's configuration, axes, sizes and captions shared by every chart."""

from __future__ import annotations

from .format import count_text, format_number, plotly_text


# ColorBrewer RdBu (colour-blind safe), blue for negative, red for positive.
DIVERGING = [[0.0, "#053061"], [0.1, "#2166ac"], [0.2, "#4393c3"], [0.3, "#92c5de"], [0.4, "#d1e5f0"],
             [0.5, "#f7f7f7"], [0.6, "#fddbc7"], [0.7, "#f4a582"], [0.8, "#d6604d"], [0.9, "#b2182b"],
             [1.0, "#67001f"]]


SEQUENTIAL = "Viridis"  # perceptually uniform and colour-blind safe


# Okabe-Ito colours: distinguishable with every common colour-vision deficiency.
BLUE, VERMILLION, GREY, BLACK = "#0072B2", "#D55E00", "#9aa0a6", "#222222"


#: The chart toolbar: zoom, pan, reset and "download as PNG" only. A confidential audit
#: offers no button that uploads a chart or opens it elsewhere ("Share chart...").
PLOT_CONFIG = {"responsive": True, "displaylogo": False, "showSendToCloud": False, "showEditInChartStudio": False,
               "showLink": False,
               "modeBarButtons": [["zoom2d", "pan2d", "resetScale2d", "toImage"]]}


CLIP_PERCENTILE = 98.0


IMAGE_CLIP_PERCENTILE = 99.5  # a feature can cover 2% of an image: clip less, or it saturates


def figure(fid: str, data: list, layout: dict, *, variants: dict | None = None, controls: list | None = None,
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
