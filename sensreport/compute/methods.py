"""The methods a spec can request, in one registry with one signature.

Each entry of :data:`METHODS` computes its derivative array for one chunk of points:
``run(target, x, method_plan, plan, points_slice, progress) -> Derivative``. Adding a
method means adding an entry here (and its key to the spec's schema).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import engine
from .plan import MethodPlan, Plan


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # what the report calls it
    automatic: bool  # by automatic differentiation (can be blocked; compared with FD)
    run: Callable[..., engine.Derivative]


def _jacobian(target, x: np.ndarray, mp: MethodPlan, plan: Plan, sl: slice, progress) -> engine.Derivative:
    return engine.jacobian(target, x, mode=mp.mode or "auto", memory_budget=plan.call_budget, progress=progress)


def _rows(target, x: np.ndarray, mp: MethodPlan, plan: Plan, sl: slice, progress) -> engine.Derivative:
    return engine.rows(target, x, list(mp.outputs), memory_budget=plan.call_budget, progress=progress)


def _finite_difference(target, x: np.ndarray, mp: MethodPlan, plan: Plan, sl: slice, progress) -> engine.Derivative:
    # the steps were computed once, for all points, by the plan
    return engine.finite_difference(target, x, scheme=mp.scheme or "central", step=plan.fd_step[sl],
                                    memory_budget=plan.call_budget, progress=progress, output_scale=plan.output_scale)


METHODS: dict[str, Method] = {
    "jacobian": Method("jacobian", "Full Jacobian (automatic differentiation)", True, _jacobian),
    "rows": Method("rows", "Selected rows (gradients of chosen outputs)", True, _rows),
    "finite_difference": Method("finite_difference", "Finite differences", False, _finite_difference),
}
