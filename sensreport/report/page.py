"""Assemble the report's structure as plain data (:func:`build_report`) and render it (:func:`render_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis.measures import DEFINITIONS, UNITLESS
from ..results import RunResult
from .agreement import agreement_section
from .baseline import baseline_section
from .checks import check_rows, verdict_banner
from .context import METHOD_TITLES, NOUNS, Context
from .environment import environment, plotly_script
from .figures import NARROW_WIDTH, PLOT_CONFIG
from .format import date_text, to_json
from .dependence import dependence_section
from .globalsa import global_section
from .heatmaps import heatmaps_section
from .images import images_section
from .inputs import inputs_section
from .sequences import sequence_section
from .provenance import definitions, provenance_section, spec_download
from .rankings import rankings_section
from .summary import summary_section




def build_report(result: RunResult) -> dict[str, Any]:
    """The report's structure as plain data: sections, sentences, tables and figure specs.

    Everything in it comes from ``result``; nothing here is HTML. Figure specs carry
    ``variants`` (patches a control selects: a point, a measure, an output) so that the
    page's script only switches between numbers decided here.
    """
    ctx = Context(result)
    r = result
    rankings = rankings_section(ctx)
    heatmaps = heatmaps_section(ctx)
    images = images_section(ctx)
    dependence = dependence_section(ctx)
    agreement = agreement_section(ctx)
    inputs = inputs_section(ctx)
    sequence = sequence_section(ctx)
    global_sa = global_section(ctx)
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
    if dependence:
        collect(dependence["fig"])
    if global_sa:
        for part in ("bounds", "eigen", "summary"):
            collect(global_sa[part] and global_sa[part]["fig"])
    for f in agreement["figures"]:
        collect(f["fig"])
    if sequence:
        collect(sequence["figure"])
        if sequence["point"]:
            collect(sequence["point"]["fig"])
    if inputs:
        collect(inputs["groups"] and inputs["groups"]["figure"])
        for part in inputs["held"] + inputs["discrete"]:
            collect(part.get("figure"))
    downloads = {}
    spec_file = spec_download(r)  # the spec's one copy on the page besides its first lines
    if spec_file:
        downloads["spec"] = spec_file
    if rankings:
        downloads["rankings"] = {"filename": rankings["csv"]["filename"], "mime": "text/csv",
                                 "text": rankings["csv"]["text"]}
    methods = [
        {"name": METHOD_TITLES[name], "status": m.status, "reason": m.reason, "strategy": m.run.strategy,
         "dtype": m.run.dtype, "seconds": m.run.seconds if m.status == "ok" else None,
         "first_call": m.run.first_call_seconds, "calls": m.run.calls}
        for name, m in r.methods.items()
    ]
    table = None
    if rankings:
        table = {"columns": rankings["csv"]["columns"], "measures": [c["key"] for c in rankings["columns"]],
                 "labels": {m: ctx.label(m) for m in DEFINITIONS}, "rankable": ctx.rankable,
                 # the overall view shows each input's share of the output's total, not the measure itself
                 "overall_labels": {m: ctx.label(m) + ("" if m in UNITLESS else " (share)") for m in DEFINITIONS},
                 "spread": [m for m in ctx.rankable if m in ctx.spread],
                 "units": {n: u for n, u in zip(ctx.names_in, ctx.units_in) if u} if any(ctx.units_in) else None,
                 "views": {v["value"]: ({"scope": "overall", "output": ""} if v["value"] == "overall" else
                                        {"scope": "output", "output": ctx.names_out[ctx.outputs[int(v["value"][1:])]]})
                           for v in rankings["view_options"]}}
    payload = {"figures": figures, "downloads": downloads, "table": table, "config": PLOT_CONFIG,
               "narrow": NARROW_WIDTH}
    prov = r.provenance
    verdict = verdict_banner(r)
    return {
        "print_header": " · ".join([r.title or "Sensitivity report", date_text(prov.get("created"))]
                                   + ([verdict["headline"]] if verdict else [])),
        "title": r.title or "Sensitivity report",
        "description": r.description,
        "created": date_text(prov.get("created")),
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
        "summary": summary_section(ctx),
        "verdict": verdict,
        "checks": check_rows(r),
        "notes": list(r.notes),
        "methods": methods,
        "rankings": rankings and {k: v for k, v in rankings.items() if k != "csv"} | {
            "csv_filename": rankings["csv"]["filename"]},
        "spec_file": spec_file and {k: v for k, v in spec_file.items() if k in ("filename", "mime", "bytes")},
        "no_measures_note": ctx.deriv_note if not ctx.primary else None,
        "heatmaps": heatmaps,
        "inputs": inputs,
        "sequence": sequence,
        "images": images,
        "dependence": dependence,
        "global_sa": global_sa,
        "agreement": agreement,
        "baseline": baseline_section(r),
        "provenance": provenance_section(r),
        "definitions": definitions(ctx),
        "figure_ids": list(figures),
        "payload_json": to_json(payload),
    }


def render_report(result: RunResult, plotlyjs: str = "inline", templates: Path | None = None) -> str:
    """The complete HTML page; ``plotlyjs='inline'`` embeds plotly.js so it opens offline.

    ``templates`` is a folder whose templates replace the built-in ones of the same name.
    """
    return environment(templates).get_template("report.html.j2").render(report=build_report(result),
                                                                         plotly=plotly_script(plotlyjs))
