"""The result of a run, and its conversions to JSON and to arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_SCHEMA_VERSION = 1
#: Names per ranking list in results.json.
RANKING_TOP = 100


@dataclass
class MethodResult:
    """One requested method: its derivative array or the reason it failed."""

    name: str  # jacobian | rows | finite_difference
    status: str  # ok | failed
    reason: str | None = None
    values: np.ndarray | None = None  # [P, k, n]
    outputs: list[int] = field(default_factory=list)  # output index of each of the k rows
    strategy: str | None = None
    dtype: str | None = None
    seconds: float | None = None
    first_call_seconds: float | None = None
    calls: int | None = None
    chunk_points: int | None = None
    notes: list[str] = field(default_factory=list)
    step: np.ndarray | None = None  # finite differences: the step of every point and input, [P, n]
    path: Path | None = None  # the .npy file holding ``values`` with execution.arrays: disk
    preview: np.ndarray | None = None  # the first points' values, kept whatever the storage

    def to_dict(self) -> dict[str, Any]:
        d = {
            "status": self.status,
            "reason": self.reason,
            "outputs": self.outputs,
            "strategy": self.strategy,
            "dtype": self.dtype,
            "seconds": self.seconds,
            "first_call_seconds": self.first_call_seconds,
            "model_calls": self.calls,
            "points_per_call": self.chunk_points,
            "notes": self.notes,
        }
        if self.step is not None:
            d["step"] = {"min": float(self.step.min()), "max": float(self.step.max()),
                         "per_input_median": [float(v) for v in np.median(self.step, axis=0)]}
        d["array"] = ("arrays.npz" if self.values is not None and self.path is None
                      else self.path.name if self.path is not None else None)
        return d


@dataclass
class RunResult:
    """Everything a run found; :meth:`to_dict` and :meth:`arrays` are what gets written."""

    title: str
    description: str
    model: dict[str, Any]  # kind, source, sha256, summary
    input_names: list[str]
    output_names: list[str]
    input_shape: list[int]
    output_shape: list[int]
    points: np.ndarray  # [P, n]
    outputs: np.ndarray  # [P, m]
    methods: dict[str, MethodResult]
    measure_source: str | None  # which method the measures come from
    measure_outputs: list[int]  # output index of each measure row
    measures: dict[str, np.ndarray]  # name -> [k, n]
    overall: dict[str, np.ndarray]  # name -> [n]
    shown_measures: list[str]
    agreement: dict[str, Any] | None
    nonfinite: dict[str, dict]
    dead_inputs: list[int]
    warnings: list[str]
    timings: dict[str, float]
    memory: dict[str, Any]
    provenance: dict[str, Any]
    spec_text: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)  # see sensreport.checks
    baseline: dict[str, Any] | None = None  # comparison with a previous run, if any
    #: how the run went, for information (engine choices and fallbacks, array storage);
    #: ``warnings`` are what may make the numbers differ from the truth
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None  # where the outputs were written

    @property
    def status(self) -> str:
        """``ok``, or ``incomplete`` when a method failed or results are non-finite."""
        failed = any(m.status != "ok" for m in self.methods.values())
        bad = any(v["count"] for v in self.nonfinite.values())
        return "incomplete" if failed or bad else "ok"

    @property
    def check_status(self) -> str:
        """The worst check status: ``fail``, ``error``, ``warn`` or ``pass``."""
        from .checks import STATUSES

        return next((s for s in STATUSES if any(c["status"] == s for c in self.checks)), "pass")

    def problems(self) -> list[str]:
        """One sentence per failed method or non-finite array, for the CLI's summary."""
        out = [f"{name} failed: {m.reason}" for name, m in self.methods.items() if m.status != "ok"]
        out += [f"{v['count']} non-finite value(s) in {k}" for k, v in self.nonfinite.items() if v["count"]]
        return out

    def rankings(self, top: int | None = RANKING_TOP) -> dict[str, dict[str, list[str]]]:
        """For each measure: input names from most to least sensitive, overall and per output.

        At most ``top`` names per list (the full order follows from the measures).
        """
        from .measures import ranking

        out: dict[str, dict[str, Any]] = {}
        for name, values in self.measures.items():
            per_output = {self.output_names[o]: [self.input_names[j] for j in ranking(values[k])[:top]]
                          for k, o in enumerate(self.measure_outputs)}
            out[name] = {"overall": [self.input_names[j] for j in ranking(self.overall[name])[:top]],
                         "per_output": per_output}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written as results.json."""
        measures = {
            name: {
                "per_output": {self.output_names[o]: dict(zip(self.input_names, _floats(values[k])))
                               for k, o in enumerate(self.measure_outputs)},
                "overall": dict(zip(self.input_names, _floats(self.overall[name]))),
            }
            for name, values in self.measures.items()
        }
        return {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "status": self.status,
            "check_status": self.check_status,
            "problems": self.problems(),
            "checks": self.checks,
            "title": self.title,
            "model": self.model,
            "inputs": {"names": self.input_names, "shape": self.input_shape},
            "outputs": {"names": self.output_names, "shape": self.output_shape},
            "points": int(len(self.points)),
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            "measures": {"source": self.measure_source, "shown": self.shown_measures, "values": measures},
            "rankings": self.rankings(),
            "agreement": self.agreement["summary"] if self.agreement else None,
            "nonfinite": self.nonfinite,
            "dead_inputs": [self.input_names[j] for j in self.dead_inputs],
            "baseline": self.baseline,
            "warnings": self.warnings,
            "notes": self.notes,
            "timings": self.timings,
            "memory": self.memory,
            "provenance": self.provenance,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The raw arrays written as arrays.npz."""
        out = {"points": self.points, "outputs": self.outputs}
        for name, m in self.methods.items():
            if m.status != "ok":
                continue
            if m.values is not None and m.path is None:
                out[name] = m.values
            if name == "rows":
                out["rows_outputs"] = np.asarray(m.outputs, dtype=np.int64)
            if m.step is not None:
                out["finite_difference_step"] = m.step
        return out


def _floats(values) -> list[float | None]:
    """JSON has no NaN: map non-finite numbers to null."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values).ravel()]
