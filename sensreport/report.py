"""Decide what the report shows (plain data), then render it with one Jinja template.

Math stays in :mod:`sensreport.measures`; this module only selects, rounds and lays
out numbers that a :class:`~sensreport.results.RunResult` already holds. All user text
goes through Jinja's autoescaping; figure data is embedded as JSON with ``<``, ``>``
and ``&`` escaped, so no user string can close a script tag.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .measures import DEFINITIONS, UNITLESS, ranking
from .results import RunResult

METHOD_TITLES = {
    "jacobian": "Full Jacobian (automatic differentiation)",
    "rows": "Selected rows (gradients of chosen outputs)",
    "finite_difference": "Finite differences",
}


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
    env.filters["seconds"] = lambda s: "—" if s is None else (f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s")
    env.filters["markdown"] = _markdown
    return env


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


def _markdown(text: str):
    """Markdown to HTML with raw HTML disabled (it is shown as text) and unsafe links refused."""
    import markupsafe
    from markdown_it import MarkdownIt

    return markupsafe.Markup(MarkdownIt("commonmark", {"html": False}).render(text or ""))


def _round(a: np.ndarray, sig: int = 6) -> list:
    """Nested lists with 6 significant digits and None for non-finite values (keeps the page small)."""
    arr = np.asarray(a, dtype=np.float64)
    out = np.vectorize(lambda v: float(f"{v:.{sig}g}") if math.isfinite(v) else None, otypes=[object])(arr)
    return out.tolist()


def _json(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def build_report(result: RunResult) -> dict[str, Any]:
    """The report's structure as plain data: sections, tables and figure specs."""
    names_in, names_out = result.input_names, result.output_names
    figures: dict[str, Any] = {}
    summary: list[str] = []
    measure_rows = []
    shown = [m for m in result.shown_measures if m in result.measures]
    primary = shown[0] if shown else None
    if primary:
        ov = result.overall[primary]
        order = ranking(ov)
        top = [names_in[j] for j in order[:3]]
        summary.append(f"Across all outputs, the most influential inputs by {DEFINITIONS[primary][0]} are: {', '.join(top)}.")
        for k, o in enumerate(result.measure_outputs[:20]):
            best = ranking(result.measures[primary][k])[0]
            summary.append(f"{names_out[o]} reacts most to {names_in[best]}.")
        mean_abs = result.measures["mean_abs"]
        figures["heatmap"] = {
            "data": [{
                "type": "heatmap",
                "z": _round(mean_abs),
                "x": names_in,
                "y": [names_out[o] for o in result.measure_outputs],
                "colorscale": "Viridis",
                "hovertemplate": "input %{x}<br>output %{y}<br>mean |dy/dx| %{z}<extra></extra>",
            }],
            "layout": {"title": {"text": "Mean |dy/dx| (outputs × inputs)"}, "xaxis": {"automargin": True},
                       "yaxis": {"automargin": True}, "margin": {"t": 40}},
        }
        top_n = order[:15]
        figures["ranking"] = {
            "data": [{
                "type": "bar", "orientation": "h",
                "x": _round(ov[top_n][::-1]),
                "y": [names_in[j] for j in top_n][::-1],
                "marker": {"color": "#1f77b4"},
                "hovertemplate": "%{y}: %{x}<extra></extra>",
            }],
            "layout": {"title": {"text": f"Overall ranking: {DEFINITIONS[primary][0]} (share, averaged over outputs)"},
                       "yaxis": {"automargin": True}, "margin": {"t": 40}},
        }
        for j in order:
            measure_rows.append({"input": names_in[j], "values": [result.overall[m][j] for m in shown]})
    agreement = None
    if result.agreement:
        s = result.agreement["summary"]
        agreement = dict(s)
        agreement["worst"] = [
            {**w, "output_name": names_out[w["output"]], "input_name": names_in[w["input"]]} for w in s["worst"]
        ]
    methods = [
        {"name": METHOD_TITLES[name], "status": m.status, "reason": m.reason, "strategy": m.strategy,
         "dtype": m.dtype, "seconds": m.seconds, "first_call": m.first_call_seconds, "calls": m.calls}
        for name, m in result.methods.items()
    ]
    fd = result.methods.get("finite_difference")
    step = None
    if fd is not None and fd.step is not None:
        step = [{"input": names_in[j], "median": float(np.median(fd.step[:, j]))} for j in range(len(names_in))][:50]
    issues = result.problems() + [f"Dead input (zero derivative everywhere): {names_in[j]}" for j in result.dead_inputs]
    prov = result.provenance
    return {
        "title": result.title,
        "description": result.description,
        "created": prov["created"],
        "status": result.status,
        "model": result.model,
        "points": len(result.points),
        "n_inputs": len(names_in),
        "n_outputs": len(names_out),
        "summary": summary,
        "issues": issues,
        "warnings": result.warnings,
        "methods": methods,
        "measure_names": [DEFINITIONS[m][0] + ("" if m in UNITLESS else " (share)") for m in shown],
        "measure_rows": measure_rows,
        "measure_source": METHOD_TITLES.get(result.measure_source or "", "none"),
        "definitions": [{"title": DEFINITIONS[m][0], "text": DEFINITIONS[m][1], "ref": DEFINITIONS[m][2]} for m in shown],
        "agreement": agreement,
        "step": step,
        "provenance": prov,
        "timings": result.timings,
        "spec_text": result.spec_text,
        "figures_json": _json(figures),
        "figure_ids": list(figures),
    }


def render_report(result: RunResult, plotlyjs: str = "inline") -> str:
    """The complete HTML page; ``plotlyjs='inline'`` embeds plotly.js so it opens offline."""
    import plotly.offline

    if plotlyjs == "inline":
        script = {"inline": plotly.offline.get_plotlyjs().replace("</script", "<\\/script")}
    else:
        version = plotly.offline.get_plotlyjs_version()
        script = {"src": f"https://cdn.plot.ly/plotly-{version}.min.js"}
    return _environment().get_template("report.html.j2").render(report=build_report(result), plotly=script)
