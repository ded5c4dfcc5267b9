"""Runs over time: an index page of every run in a folder, and a comparison of two runs.

Both read only ``results.json`` files (never the arrays), so they stay fast and small
however large the runs were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis.baseline import MeasureTable, compare, direction_changes, load_baseline
from ..analysis.measures import DEFINITIONS
from ..errors import InputError
from ..files import atomic_write_text
from .environment import environment, plotly_script
from .figures import BLACK, BLUE, PLOT_CONFIG, VERMILLION, figure
from .format import format_number, plotly_text, to_json

#: Inputs whose measure is drawn over time (the top ones of the newest run).
TREND_INPUTS = 8

#: Okabe-Ito colours (no red/green pair), with a dash and a marker each for the trend lines.
PALETTE = [BLUE, VERMILLION, "#009E73", "#CC79A7", "#E69F00", "#56B4E9", BLACK, "#F0E442"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid", "dash"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star"]


@dataclass
class Run:
    path: Path  # the run's folder
    doc: dict[str, Any]

    @property
    def created(self) -> str:
        return self.doc.get("provenance", {}).get("created") or ""


def find_runs(folder: Path, skipped: list[str] | None = None) -> list[Run]:
    """Every run below ``folder`` (a folder holding results.json), oldest first.

    Links (such as ``latest``) are not followed, so no run is listed twice. A
    results.json that is not a sensreport result of the structure it writes is left
    out, and why is appended to ``skipped``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("DIR", f"not a folder: {folder}")
    runs = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(root) / d).is_symlink())
        if "results.json" in files:
            try:
                doc = load_baseline(Path(root) / "results.json", key="DIR")
            except InputError as exc:
                if skipped is not None:
                    skipped.append(exc.message)
                continue  # not a sensreport result: skip it
            runs.append(Run(Path(root), doc))
    return sorted(runs, key=lambda r: (r.created, str(r.path)))


def leading(doc: dict) -> str:
    """The measure a run's views rank by (runs written before it was recorded: mean |dy/dx|)."""
    return doc.get("measures", {}).get("leading") or "mean_abs"


def build_history(runs: list[Run], folder: Path, measure: str | None = None) -> dict[str, Any]:
    """The index page's structure: a table of runs and trend figures of the top inputs
    (by ``measure``, default the newest run's leading measure)."""
    measure = measure or (leading(runs[-1].doc) if runs else "mean_abs")
    rows = []
    for run in reversed(runs):  # newest first in the table
        d = run.doc
        report = run.path / "report.html"
        rows.append({
            "created": run.created,
            "title": d.get("title", ""),
            "link": os.path.relpath(report.resolve(), Path(folder).resolve()) if report.exists() else None,
            "model_sha256": (d.get("provenance", {}).get("model_sha256") or "")[:12],
            "status": d.get("status"),
            # the verdict the run decided (runs written before verdicts: their worst check)
            "check_status": (d.get("verdict") or {}).get("status") or d.get("check_status", "pass"),
            "failed": ((d["verdict"]["failing"] + d["verdict"]["failed_methods"]) if d.get("verdict") else
                       [c["id"] for c in d.get("checks", []) if c["status"] in ("fail", "error")]),
            "points": d.get("points"),
            "top": (d.get("rankings", {}).get(measure, {}).get("overall") or [])[:3],
        })
    figures = {}
    newest = runs[-1].doc if runs else None
    if newest and measure in newest.get("measures", {}).get("values", {}):
        top = ((newest.get("rankings", {}).get(measure) or {}).get("overall") or [])[:TREND_INPUTS]
        x = [r.created for r in runs]
        traces = []
        for k, name in enumerate(top):
            y = [r.doc.get("measures", {}).get("values", {}).get(measure, {}).get("overall", {}).get(name)
                 for r in runs]
            # colour, dash and marker differ: lines that coincide (several inputs at 0) stay apart in the legend
            traces.append({"type": "scatter", "mode": "lines+markers", "name": plotly_text(name), "x": x, "y": y,
                           "line": {"color": PALETTE[k % len(PALETTE)], "dash": DASHES[k % len(DASHES)], "width": 2},
                           "marker": {"symbol": SYMBOLS[k % len(SYMBOLS)], "size": 8},
                           "hovertemplate": f"{plotly_text(name)} %{{y:.4g}}<extra></extra>"})
        latest = ", ".join(f"{n} {format_number(t['y'][-1])}" for n, t in zip(top, traces))
        figures["trend"] = figure("trend", traces, {
            "title": {"text": f"{DEFINITIONS[measure][0]} (share, averaged over outputs) per run", "x": 0,
                      "xanchor": "left"},
            "height": 420, "hovermode": "x unified",
            "xaxis": {"title": {"text": "run"}, "automargin": True},
            "yaxis": {"title": {"text": "share"}, "rangemode": "tozero", "automargin": True},
            "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}},
            summary=(f"Line chart of {len(top)} inputs' share over {len(runs)} runs; in the newest run: {latest}."))
    return {"folder": str(folder), "runs": rows, "measure": DEFINITIONS[measure][0], "figures": figures}


def build_comparison(old: dict, new: dict, measure: str | None = None, top_k: int = 5) -> dict[str, Any]:
    """A comparison of two results documents: per output, side-by-side rankings and deltas."""
    measure = measure or leading(new)  # run B's leading measure, unless asked for another
    table = MeasureTable.from_doc(new, measure)
    c = compare(table, old, top_k) if table is not None else {"error": f"run B has no '{measure}' values"}
    if "error" in c:
        raise InputError("B", f"cannot compare these runs: {c['error']}")
    outputs = []
    figures = {}
    directions = direction_changes(old, new)
    for k, (out, row) in enumerate(c["per_output"].items()):
        shown = row["inputs"][:30]
        outputs.append({"name": out, "rows": shown, "more": len(row["inputs"]) - len(shown),
                        "max_rel_change": row["max_rel_change"], "top_k_changes": row["top_k_changes"],
                        "rank_correlation": row["rank_correlation"], "figure": f"cmp{k}",
                        "direction": directions.get(out)})
        names = [r["input"] for r in shown[:15]][::-1]
        listed = ", ".join(f"{r['input']} {format_number(r['old'])} → {format_number(r['new'])}" for r in shown[:5])
        figures[f"cmp{k}"] = figure(f"cmp{k}", [
            {"type": "bar", "orientation": "h", "name": "A (before)", "y": [plotly_text(n) for n in names],
             "x": [r["old"] for r in shown[:15]][::-1], "marker": {"color": "#999999"}},
            {"type": "bar", "orientation": "h", "name": "B (after)", "y": [plotly_text(n) for n in names],
             "x": [r["new"] for r in shown[:15]][::-1], "marker": {"color": "#0072B2"}},
        ], {"barmode": "group", "title": {"text": f"{plotly_text(out)}: {DEFINITIONS[measure][0]}", "x": 0,
                                          "xanchor": "left"},
            "yaxis": {"automargin": True}, "xaxis": {"automargin": True}, "height": 120 + 28 * len(names),
            "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}},
            summary=f"Bar chart of {out}'s top inputs, A against B: {listed}.")
    return {
        "a": {"title": old.get("title"), "created": old.get("provenance", {}).get("created"),
              "model_sha256": (old.get("provenance", {}).get("model_sha256") or "")[:12]},
        "b": {"title": new.get("title"), "created": new.get("provenance", {}).get("created"),
              "model_sha256": (new.get("provenance", {}).get("model_sha256") or "")[:12]},
        "model_changed": c["model_changed"],
        "measure": DEFINITIONS[measure][0],
        "top_k": top_k,
        "outputs": outputs,
        "figures": figures,
    }


def _render(template: str, page: dict[str, Any], plotlyjs: str) -> str:
    charts = page.pop("figures")  # id -> figure (figures.figure): the page shows titles and summaries
    page = {**page, "charts": charts, "figures_json": to_json({k: f["spec"] for k, f in charts.items()}),
            "config_json": to_json(PLOT_CONFIG), "figure_ids": list(charts)}
    return environment().get_template(template).render(page=page, plotly=plotly_script(plotlyjs))


def write_history(folder: Path, out: Path | None = None, measure: str | None = None, plotlyjs: str = "inline",
                  skipped: list[str] | None = None) -> tuple[Path, int]:
    """Write ``index.html`` (default in ``folder``) over every run found in ``folder``;
    return it and how many runs it lists (``skipped``: why other results.json were left out)."""
    folder = Path(folder)
    runs = find_runs(folder, skipped)
    if not runs:
        raise InputError("DIR", f"no sensreport runs (results.json) found below {folder}")
    out = Path(out) if out else folder / "index.html"
    html = _render("history.html.j2", build_history(runs, out.parent, measure), plotlyjs)
    atomic_write_text(out, html)
    return out, len(runs)


def write_comparison(a: Path, b: Path, out: Path, measure: str | None = None, plotlyjs: str = "inline") -> Path:
    """Write a comparison page of run ``a`` (before) and run ``b`` (after)."""
    docs = []
    for key, path in (("A", a), ("B", b)):
        path = Path(path)
        docs.append(load_baseline(path / "results.json" if path.is_dir() else path, key=key))
    html = _render("compare.html.j2", build_comparison(docs[0], docs[1], measure), plotlyjs)
    atomic_write_text(Path(out), html)
    return Path(out)
