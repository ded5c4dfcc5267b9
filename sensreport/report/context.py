"""What several report sections share, computed once per report: :class:`Context`."""

from __future__ import annotations

import numpy as np

from ..analysis import summaries as S
from ..analysis.measures import DEFINITIONS, input_spread
from ..analysis.pointstats import rankable_measures
from ..compute.methods import METHODS
from ..results import RunResult
from .format import count_text, format_number


#: What the report calls each method.
METHOD_TITLES = {name: method.title for name, method in METHODS.items()}

#: Each measure as a noun phrase for sentences ("… of its std-scaled sensitivity").
NOUNS = {
    "mean_abs": "mean |dy/dx|",
    "rms": "RMS derivative",
    "std_scaled": "std-scaled sensitivity",
    "elasticity": "elasticity",
    "positive_share": "share of positive derivatives",
}

#: Each measure's unit, for axis titles.
UNITS = {
    "mean_abs": "mean |dy/dx|",
    "rms": "RMS dy/dx",
    "std_scaled": "mean |dy/dx| × std(x)",
    "elasticity": "mean |x/y · dy/dx|",
    "positive_share": "share of points",
}


class Context:
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
        self.rankable = rankable_measures(self.shown, r.measures, r.overall)
        self.primary = r.leading_measure  # decided once, by the analysis stage
        self.deriv, self.deriv_note = derivatives(r)
        # a sequence with named axes is drawn as time x feature maps, not as an image
        named_axes = r.layout is not None and r.layout.axes is not None
        self.image = None if named_axes else S.image_axes(r.input_shape)
        ps = r.point_stats
        self.spread = ps.spread if ps else {}  # measure -> [3, k, n] percentiles 25/50/75
        self.spread_overall = ps.spread_overall if ps else {}  # measure -> [3, n]
        self.signs = (ps.positive, ps.negative) if ps is not None and ps.positive is not None else None
        self.signed_mean = ps.signed_mean if ps else None
        self.stats_note = None
        if ps is not None and ps.sampled is not None and ps.sampled < self.P:
            self.stats_note = (f"The spread across points and the stability check use {ps.sampled:,} of the "
                               f"{self.P:,} points, evenly spaced (a memory budget); the measures use all.")

        # declared units (inputs.units, model.output_units), "" where none
        self.units_in = list(r.input_units) if len(r.input_units) == self.n else [""] * self.n
        self.units_out = (list(r.output_units) if len(r.output_units) == len(self.names_out)
                          else [""] * len(self.names_out))
        self.has_units = any(self.units_in) or any(self.units_out)
        self._spread = None

    def label(self, m: str) -> str:
        return DEFINITIONS[m][0]

    @property
    def input_std(self) -> np.ndarray:
        """Each input's standard deviation over the points (what std-scaled multiplies by)."""
        if self._spread is None:
            self._spread = input_spread(np.asarray(self.result.points, dtype=np.float64))
        return self._spread

    def value_text(self, value: float, unit: str) -> str:
        """A number with its unit, when one is declared: ``12.3 kUSD``."""
        return f"{format_number(value)} {unit}" if unit else format_number(value)

    def rate_unit(self, o: int, j: int) -> str:
        """The unit of dy/dx for output ``o`` and input ``j`` (``probability per kUSD``), "" when neither has one."""
        uo, ui = self.units_out[o], self.units_in[j]
        if uo and ui:
            return f"{uo} per {ui}"
        return f"per {ui}" if ui else (f"{uo} per unit of the input" if uo else "")

    def measure_unit(self, m: str, o: int | None, j: int) -> str:
        """The unit of measure ``m`` of output ``o`` (None: overall, a share) for input ``j``."""
        if o is None or m in ("elasticity", "positive_share"):
            return ""
        if m == "std_scaled":
            return self.units_out[o]
        return self.rate_unit(o, j)


def derivatives(result: RunResult) -> tuple[np.ndarray | None, str | None]:
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


def preview(result: RunResult) -> tuple[np.ndarray | None, str | None]:
    """Derivatives for per-point views: all points, or the first ones the run kept as a preview."""
    deriv, _ = derivatives(result)
    if deriv is not None:
        return deriv, None
    name = result.measure_source
    preview = getattr(result.methods[name], "preview", None) if name else None
    if preview is not None and len(preview):
        return preview, (f"Only the first {count_text(len(preview), 'point')} were kept; per-point views show those "
                         "(the measures use all points).")
    return None, None
