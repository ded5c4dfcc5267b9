"""sensreport: sensitivity-analysis reports for TensorFlow models.

The Python API is the one the CLI uses::

    import sensreport
    result = sensreport.run("audit.yaml", out="reports/today")

and the engine works on its own, on a function and an array of points::

    target = sensreport.as_target(lambda x: x ** 2, point_shape=(3,))
    jac = sensreport.jacobian(target, points).values      # [P, m, n]
"""

from __future__ import annotations

import logging as _logging

from .errors import ComputeError, InputError, SensreportError, SpecError

# A library's logger: silent unless the application configures logging (sensreport.logs).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "ComputeError",
    "InputError",
    "RunResult",
    "SensreportError",
    "Spec",
    "SpecError",
    "Target",
    "as_target",
    "finite_difference",
    "jacobian",
    "load_spec",
    "parse_spec",
    "rows",
    "run",
    "write_outputs",
]

_LAZY = {
    "RunResult": "results",
    "Spec": "spec",
    "load_spec": "spec",
    "parse_spec": "spec",
    "run": "runner",
    "write_outputs": "outputs",
    "Target": "engine",
    "as_target": "engine",
    "jacobian": "engine",
    "rows": "engine",
    "finite_difference": "engine",
}


def __getattr__(name: str):
    # Lazy, so that `import sensreport` (and `sensreport --help`) do not import TensorFlow.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'sensreport' has no attribute {name!r}")
