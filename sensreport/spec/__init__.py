"""The spec stage: YAML in, a validated :class:`Spec` (typed, paths resolved) out.

:mod:`.schema` says what a spec may contain, :mod:`.parse` validates every key at once
and builds the :class:`Spec` of :mod:`.types`. No model is loaded here.
"""

from __future__ import annotations

from ..sizes import parse_size
from .parse import load_spec, parse_spec
from .schema import CHECK_DEFAULTS, MEASURES, SCHEMA, schema
from .types import ModelSpec, PointsSpec, Spec, default_checks

__all__ = [
    "CHECK_DEFAULTS",
    "MEASURES",
    "SCHEMA",
    "ModelSpec",
    "PointsSpec",
    "Spec",
    "default_checks",
    "load_spec",
    "parse_size",
    "parse_spec",
    "schema",
]
