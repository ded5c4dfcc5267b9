"""The report stage: decide what the report shows (plain data), then render it.

:func:`build_report` (:mod:`.page`) turns a :class:`~sensreport.results.RunResult` into
plain data, one module per section (:mod:`.summary`, :mod:`.checks`, :mod:`.rankings`,
:mod:`.heatmaps`, :mod:`.images`, :mod:`.agreement`, :mod:`.baseline`,
:mod:`.provenance`): sentences, check rows, tables, and plotly figure specs with their
variants (one per point, measure or output a control can select). :func:`render_report`
renders that data with the one Jinja environment (:mod:`.environment`: autoescaping,
``StrictUndefined``, user templates first). Math lives in the analysis stage; verdicts
in the checks stage; this package selects, rounds and lays out. :mod:`.history`
renders the history and comparison pages.

Escaping: all user text reaches HTML through Jinja's autoescaping. Figure data is
embedded as JSON with ``<``, ``>`` and ``&`` escaped (:func:`~.format.to_json`), so no
string can close the script tag, and every user string that plotly draws is
HTML-escaped first (:func:`~.format.plotly_text`), because plotly renders a subset of
HTML in labels and hover text.

Size: plotly.js is about 4.8 MB; everything else is kept under a few MB by cell
budgets. Past a budget the page shows a subset (the most influential inputs, evenly
spaced points) and says so; the full arrays are in ``arrays.npz``.
"""

from __future__ import annotations

from .environment import plotly_script
from .format import format_number, to_json
from .page import build_report, render_report

__all__ = ["build_report", "format_number", "plotly_script", "render_report", "to_json"]
