"""A run's result in a notebook: a short text, a small HTML summary, a tidy table.

:class:`~sensreport.results.RunResult` calls these for ``repr(result)``,
``result._repr_html_()`` (what Jupyter shows) and ``result.to_pandas()``. They display
what the run decided (the verdict and the checks come from :mod:`sensreport.checks`
and are shown, never judged again) and the measures as computed. Every name comes
from the user and is escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from .analysis.measures import DEFINITIONS, RANKABLE
from .analysis.stats import rank_positions, ranking, shares

if TYPE_CHECKING:  # pragma: no cover
    from .results import RunResult

#: Outputs listed with their top inputs, and the heatmap's size (outputs x inputs).
TOP_OUTPUTS = 20
TOP_INPUTS = 3
HEATMAP_INPUTS = 12
#: Names longer than this are cut in the HTML (the full name is in the tooltip).
NAME_CHARS = 40
#: Tones of the verdict banner: (background, border, text).
TONES = {"pass": ("#e6f4ea", "#1e8e3e", "#0d652d"), "warn": ("#fef7e0", "#f9ab00", "#7a4f01"),
         "fail": ("#fce8e6", "#d93025", "#a50e0e"), "none": ("#f1f3f4", "#80868b", "#3c4043")}
#: viridis at 0, 0.1, ..., 1 (the report's colour scale).
VIRIDIS = ("#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70", "#7ad151",
           "#bddf26", "#fde725")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _name(text: str) -> str:
    """An escaped name, cut to :data:`NAME_CHARS` with the full name as its tooltip."""
    text = str(text)
    if len(text) <= NAME_CHARS:
        return _e(text)
    return f'<span title="{_e(text)}">{_e(text[: NAME_CHARS - 1])}…</span>'


def label(measure: str | None) -> str:
    return DEFINITIONS[measure][0] if measure in DEFINITIONS else str(measure)


def _number(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


def _viridis(t: float) -> str:
    if not np.isfinite(t):
        return "#ffffff"
    return VIRIDIS[int(round(min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)))]


def short_repr(r: RunResult) -> str:
    """One line: title, verdict, model, sizes, methods, the top inputs overall."""
    verdict = r.verdict.headline + f" (exit {r.verdict.exit_code})" if r.verdict else "checks not applied"
    methods = ", ".join(f"{k} {m.status}" for k, m in r.methods.items()) or "no methods"
    top = ""
    if r.leading_measure and r.leading_measure in r.overall:
        names = [r.input_names[j] for j in ranking(r.overall[r.leading_measure])[:3]]
        top = f"; top inputs ({r.leading_measure}): {', '.join(_cut(n) for n in names)}"
    where = f"; written to {r.out_dir}" if r.out_dir else ""
    return (f"<RunResult {_cut(r.title)!r}: {verdict}; {r.model.get('kind')} model, {len(r.points)} points, "
            f"{len(r.input_names)} inputs -> {len(r.output_names)} outputs; {methods}{top}{where}>")


def _cut(text: str, n: int = NAME_CHARS) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _banner(r: RunResult) -> str:
    if r.verdict is None:
        tone, text = "none", "Checks not applied"
    else:
        tone, text = r.verdict.tone, f"{r.verdict.headline} (exit {r.verdict.exit_code})"
    bg, border, fg = TONES[tone]
    return (f'<div style="background:{bg};border-left:4px solid {border};color:{fg};padding:6px 10px;'
            f'font-weight:600;margin:4px 0">{_e(text)}</div>')


def _checks(r: RunResult) -> str:
    shown = [c for c in r.checks if c.status in ("fail", "error", "warn")]
    if not shown:
        return ""
    order = {"fail": 0, "error": 1, "warn": 2}
    items = "".join(f"<li><b>{_e(c.status.upper())}</b> <code>{_e(c.id)}</code>: {_e(c.message)}</li>"
                    for c in sorted(shown, key=lambda c: order[c.status])[:10])
    more = f"<li>and {len(shown) - 10} more</li>" if len(shown) > 10 else ""
    return f'<ul style="margin:4px 0 8px 1.2em;padding:0">{items}{more}</ul>'


def _top_table(r: RunResult, m: str) -> str:
    values = np.asarray(r.measures[m], dtype=np.float64)
    share = shares(values, axis=1)
    rows = []
    for k, o in enumerate(r.measure_outputs[:TOP_OUTPUTS]):
        cells = []
        for j in ranking(values[k])[:TOP_INPUTS]:
            pct = f" ({share[k, j]:.0%})" if np.isfinite(share[k, j]) else ""
            cells.append(f"<td>{_name(r.input_names[j])}<small>{_e(pct)}</small></td>")
        cells += ["<td></td>"] * (TOP_INPUTS - len(cells))
        rows.append(f"<tr><th style=\"text-align:left\">{_name(r.output_names[o])}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>#{i + 1}</th>" for i in range(min(TOP_INPUTS, len(r.input_names))))
    more = len(r.measure_outputs) - TOP_OUTPUTS
    foot = f'<tr><td colspan="{TOP_INPUTS + 1}"><small>and {more:,} more outputs</small></td></tr>' if more > 0 else ""
    return (f'<table style="border-collapse:collapse;margin:4px 0"><caption style="text-align:left">Top inputs per '
            f"output by {_e(label(m))} (share of the output's total)</caption><tr><th>output</th>{head}</tr>"
            f"{''.join(rows)}{foot}</table>")


def _heatmap(r: RunResult, m: str) -> str:
    """Outputs x the overall most influential inputs, coloured by each output's share."""
    values = np.asarray(r.measures[m], dtype=np.float64)
    share = shares(values, axis=1)
    cols = ranking(r.overall[m])[:HEATMAP_INPUTS]
    rows_k = list(range(min(TOP_OUTPUTS, len(r.measure_outputs))))
    shown = share[np.ix_(rows_k, cols)] if rows_k and cols else np.zeros((0, 0))
    top = float(np.nanmax(shown)) if shown.size and np.isfinite(shown).any() else 1.0
    top = top if top > 0 else 1.0
    head = "".join(f'<th style="writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;'
                   f'padding:2px">{_name(r.input_names[j])}</th>' for j in cols)
    body = []
    for k in rows_k:
        o = r.measure_outputs[k]
        cells = []
        for j in cols:
            v, s = values[k, j], share[k, j]
            t = s / top if np.isfinite(s) else np.nan
            tip = f"{r.output_names[o]} / {r.input_names[j]}: {label(m)} {_number(v)}" + (
                f", {s:.1%} of the output's total" if np.isfinite(s) else "")
            fg = "#000" if np.isfinite(t) and t > 0.6 else "#fff"
            cells.append(f'<td title="{_e(tip)}" style="background:{_viridis(t)};color:{fg};width:2.6em;'
                         f'text-align:center;font-size:11px">{_e(f"{s:.0%}" if np.isfinite(s) else "–")}</td>')
        body.append(f'<tr><th style="text-align:right;font-weight:normal">{_name(r.output_names[o])}</th>'
                    f"{''.join(cells)}</tr>")
    note = []
    if len(r.input_names) > len(cols):
        note.append(f"the {len(cols)} most influential of {len(r.input_names):,} inputs")
    if len(r.measure_outputs) > len(rows_k):
        note.append(f"the first {len(rows_k)} of {len(r.measure_outputs):,} outputs")
    caption = f"{_e(label(m))}, share of each output's total" + (f" ({_e('; '.join(note))})" if note else "")
    return (f'<table style="border-collapse:collapse;margin:6px 0"><caption style="text-align:left">{caption}'
            f"</caption><tr><th></th>{head}</tr>{''.join(body)}</table>")


def repr_html(r: RunResult) -> str:
    """A small HTML summary for Jupyter: the verdict, failed checks, top inputs, a heatmap."""
    parts = ['<div class="sensreport-result" style="font-family:system-ui,sans-serif;font-size:13px;'
             'max-width:60em">', f'<div style="font-size:15px;font-weight:600">{_e(r.title)}</div>', _banner(r),
             _checks(r)]
    methods = ", ".join(f"{k} {m.status}" for k, m in r.methods.items())
    facts = (f"{_e(r.model.get('summary') or r.model.get('kind'))}; {len(r.points):,} points, "
             f"{len(r.input_names):,} inputs → {len(r.output_names):,} outputs; methods: {_e(methods)}")
    parts.append(f'<div style="color:#5f6368;margin:2px 0 6px">{facts}</div>')
    for p in r.problems():
        parts.append(f"<div>{_e(p)}</div>")
    m = r.leading_measure
    if m and m in r.measures and len(r.measure_outputs):
        parts += [_top_table(r, m), _heatmap(r, m)]
    else:
        parts.append("<div>No measures: no method produced derivatives.</div>")
    where = (f"report: <code>{_e(r.out_dir / 'report.html')}</code>" if r.out_dir is not None
             else "not written: <code>result.save(folder)</code> writes the report")
    parts.append(f'<div style="color:#5f6368">{where}; <code>result.to_pandas()</code> has every number</div></div>')
    return "".join(parts)


def tidy_rows(r: RunResult, overall: bool = False) -> dict[str, list]:
    """The measures as tidy columns: output, input, measure, value, rank, p25, p75.

    One row per output, input and measure (per output in the order of the outputs,
    then measures in the spec's order, then by rank). ``rank`` is 1 for the most
    sensitive input of that output under that measure (None for ``positive_share``,
    which is not a ranking); ``p25``/``p75`` the spread of the per-point values across
    points, NaN where the per-point derivatives were not kept. With ``overall``, rows
    whose ``output`` is None hold the overall shares (averaged over outputs).
    """
    cols: dict[str, list] = {k: [] for k in ("output", "input", "measure", "value", "rank", "p25", "p75")}
    order = [m for m in r.shown_measures if m in r.measures] + [m for m in r.measures if m not in r.shown_measures]
    spread = r.point_stats.spread if r.point_stats is not None else {}
    spread_overall = r.point_stats.spread_overall if r.point_stats is not None else {}
    views = [(k, r.output_names[o]) for k, o in enumerate(r.measure_outputs)] + ([(None, None)] if overall else [])
    for k, out_name in views:
        for m in order:
            vals = np.asarray(r.overall[m] if k is None else r.measures[m][k], dtype=np.float64)
            ranks = rank_positions(vals) if m in RANKABLE else None
            q = spread_overall.get(m) if k is None else (spread[m][:, k] if m in spread else None)
            for j in ranking(vals):
                cols["output"].append(out_name)
                cols["input"].append(r.input_names[j])
                cols["measure"].append(m)
                cols["value"].append(float(vals[j]) if np.isfinite(vals[j]) else np.nan)
                cols["rank"].append(int(ranks[j]) if ranks is not None else None)
                cols["p25"].append(float(q[0, j]) if q is not None else np.nan)
                cols["p75"].append(float(q[2, j]) if q is not None else np.nan)
    return cols


def to_pandas(r: RunResult, overall: bool = False):
    """:func:`tidy_rows` as a pandas DataFrame (pandas imported only here)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'sensreport[pandas]'") from None
    cols = tidy_rows(r, overall)
    frame = pd.DataFrame({
        "output": pd.Series(cols["output"], dtype="object"),
        "input": pd.Series(cols["input"], dtype="object"),
        "measure": pd.Series(cols["measure"], dtype="object"),
        "value": pd.Series(cols["value"], dtype="float64"),
        "rank": pd.Series(cols["rank"], dtype="Int64"),
        "p25": pd.Series(cols["p25"], dtype="float64"),
        "p75": pd.Series(cols["p75"], dtype="float64"),
    })
    return frame
