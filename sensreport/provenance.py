"""Provenance of a run: what produced it, so that an auditor can reproduce it."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from importlib import metadata
from typing import Any

import numpy as np

from .inputs import LoadedModel, Points
from .spec import Spec


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def provenance(spec: Spec, loaded: LoadedModel, points: Points, command: list[str] | None) -> dict[str, Any]:
    tf_version = sys.modules["tensorflow"].__version__ if "tensorflow" in sys.modules else None
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec_path": str(spec.path) if spec.path else None,
        "spec_sha256": spec.sha256,
        "model_sha256": loaded.sha256,
        "points_source": points.source,
        "seed": points.seed,
        "command": command,
        "cwd": os.getcwd(),
        "versions": {
            "sensreport": _version("sensreport"),
            "python": platform.python_version(),
            "tensorflow": tf_version,
            "keras": _version("keras"),
            "numpy": np.__version__,
            "jinja2": _version("jinja2"),
            "plotly": _version("plotly"),
        },
        "platform": platform.platform(),
    }
