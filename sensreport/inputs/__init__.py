"""The inputs stage: the points a spec names (:mod:`.points`) and the model, loaded and
wrapped as an engine :class:`~sensreport.engine.Target` (:mod:`.models`)."""

from __future__ import annotations

from .models import LoadedModel, file_sha256, load_callable, load_model
from .prepare import Prepared, prepare
from .points import Points, index_names, load_points

__all__ = ["LoadedModel", "Points", "Prepared", "prepare", "file_sha256", "index_names", "load_callable", "load_model", "load_points"]
