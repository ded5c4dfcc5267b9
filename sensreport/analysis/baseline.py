"""Comparison with a previous run: read its results.json and compare one measure per
output and input (relative change, ranks, top-k membership, Spearman correlation)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .stats import ranking, relative_error, spearman


_NUMBER = {"type": ["number", "null"]}
_NAMES = {"type": "array", "items": {"type": "string"}}
#: The parts of a results.json that baselines, ``history`` and ``compare`` read, and
#: their types: a document that passes cannot make them fail half-way.
RESULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "inputs", "measures"],
    "properties": {
        "title": {"type": "string"},
        "status": {"type": "string"},
        "check_status": {"type": "string"},
        "points": {"type": ["integer", "null"]},
        "inputs": {"type": "object", "required": ["names"],
                   "properties": {"names": {**_NAMES, "minItems": 1, "uniqueItems": True}}},
        "measures": {
            "type": "object", "required": ["values"],
            "properties": {"values": {"type": "object", "additionalProperties": {
                "type": "object",
                "properties": {
                    "per_output": {"type": "object", "additionalProperties": {
                        "type": "object", "additionalProperties": _NUMBER}},
                    "overall": {"type": "object", "additionalProperties": _NUMBER},
                }}}},
        },
        "rankings": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"overall": {"type": ["array", "null"], "items": {"type": "string"}}}}},
        "provenance": {"type": "object", "properties": {"created": {"type": ["string", "null"]},
                                                        "model_sha256": {"type": ["string", "null"]}}},
        "verdict": {"type": ["object", "null"], "required": ["status", "failing", "failed_methods"],
                    "properties": {"status": {"type": "string"}, "failing": _NAMES, "failed_methods": _NAMES}},
        "checks": {"type": "array", "items": {"type": "object", "required": ["id", "status"],
                                              "properties": {"id": {"type": "string"}, "status": {"type": "string"}}}},
    },
}


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (sensreport writes none)")


def load_baseline(path: Path, key: str = "checks.baseline.path") -> dict[str, Any]:
    """A previous run's results.json, checked to be one: every part that a comparison or
    ``history`` reads has the structure sensreport writes (:data:`RESULTS_SCHEMA`), so a
    malformed file is refused here, before any work, never half-way through a run."""
    import jsonschema

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise InputError(key, f"baseline file not found: {path}") from None
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise InputError(key, f"cannot read {path} as a sensreport results.json: {reason}") from None
    if not isinstance(doc, dict) or "schema_version" not in doc or "measures" not in doc:
        raise InputError(key, f"{path} is not a sensreport results.json (no schema_version / measures)")
    if doc["schema_version"] != 1 or isinstance(doc["schema_version"], bool):
        raise InputError(key, f"{path} has results schema version {doc['schema_version']!r}; this sensreport reads 1")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(RESULTS_SCHEMA).iter_errors(doc))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        raise InputError(key, f"{path} is not a sensreport results.json: {where or 'the document'}: "
                              f"{_short(error.message)}")
    return doc


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class MeasureTable:
    """One measure per output and input of a run, with what identifies the run."""

    measure: str
    inputs: list[str]
    outputs: list[str]
    values: np.ndarray  # [outputs, inputs], NaN where not finite
    created: str | None = None
    model_sha256: str | None = None

    @classmethod
    def from_doc(cls, doc: dict, measure: str, outputs: list[str] | None = None) -> "MeasureTable | None":
        """The table of a results.json document; None when it has no such measure for ``outputs``."""
        per_output = doc["measures"]["values"].get(measure, {}).get("per_output", {})
        outputs = list(per_output) if outputs is None else outputs
        inputs = list(doc["inputs"]["names"])
        if not all(o in per_output for o in outputs):
            return None
        values = np.array([[np.nan if per_output[o].get(i) is None else per_output[o][i] for i in inputs]
                           for o in outputs], dtype=np.float64).reshape(len(outputs), len(inputs))
        prov = doc.get("provenance", {})
        return cls(measure, inputs, outputs, values, prov.get("created"), prov.get("model_sha256"))


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when there is no order to compare."""
    if len(a) < 2:
        return None
    rho = float(spearman(a, b))
    return rho if np.isfinite(rho) else None


def compare(new_table: MeasureTable, baseline: dict, top_k: int = 5) -> dict[str, Any]:
    """Per output and input: the measure now (``new``) and in the ``baseline`` results.json,
    relative change, ranks.

    ``rel_change = |new - old| / max(|old|, 1e-3 * max_j |old[i, j]|)``
    (:func:`~.stats.relative_error`, as for the FD-vs-AD agreement: an input that was
    negligible for an output is judged against 0.1% of that output's largest value).
    """
    inputs, outputs, measure = new_table.inputs, new_table.outputs, new_table.measure
    if list(baseline["inputs"]["names"]) != list(inputs):
        return {"error": "the baseline has different inputs: "
                         f"{', '.join(baseline['inputs']['names'][:8])} vs {', '.join(inputs[:8])}"}
    old_table = MeasureTable.from_doc(baseline, measure, outputs)
    if old_table is None:
        return {"error": f"the baseline has no '{measure}' values for outputs {', '.join(outputs)}"}
    old = old_table.values
    new_sha, new = new_table.model_sha256, new_table.values
    rel = relative_error(new, old, axis=1)
    rows = {}
    for i, out in enumerate(outputs):
        r_new, r_old = ranking(new[i]), ranking(old[i])
        rank_new = {j: k + 1 for k, j in enumerate(r_new)}
        rank_old = {j: k + 1 for k, j in enumerate(r_old)}
        k = min(top_k, len(inputs))
        rows[out] = {
            "inputs": [
                {"input": inputs[j], "old": _f(old[i, j]), "new": _f(new[i, j]), "rel_change": _f(rel[i, j]),
                 "old_rank": rank_old[j], "new_rank": rank_new[j]}
                for j in r_new
            ],
            "max_rel_change": _f(np.nanmax(rel[i])) if np.isfinite(rel[i]).any() else None,
            "top_k_changes": len({inputs[j] for j in r_new[:k]} - {inputs[j] for j in r_old[:k]}),
            "rank_correlation": _spearman(new[i], old[i]),
        }
    return {
        "measure": measure,
        "top_k": top_k,
        "baseline_created": old_table.created,
        "baseline_model_sha256": old_table.model_sha256,
        "model_changed": old_table.model_sha256 != new_sha,
        "per_output": rows,
    }


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


#: Leading directions whose |cosine| falls below this differ: the model now varies mostly
#: along another combination of inputs.
DIRECTION_COSINE = 0.9


def direction_changes(old: dict, new: dict) -> dict[str, dict[str, Any]]:
    """Per output present in both documents' ``global.active_subspace``: the |cosine| between
    the two runs' leading eigenvectors (``cosine``) and whether they differ (``changed``,
    below ``DIRECTION_COSINE``); inputs matched by name (missing ones weigh 0). Empty when
    either run has no active subspaces."""
    def per_output(doc):
        sub = (doc.get("global") or {}).get("active_subspace") or {}
        return sub.get("per_output") or {}, list((doc.get("inputs") or {}).get("names") or [])

    (a, names_a), (b, names_b) = per_output(old), per_output(new)
    names = list(dict.fromkeys(names_b + names_a))
    out = {}
    for output, entry in b.items():
        if output not in a or not entry.get("eigenvectors") or not a[output].get("eigenvectors"):
            continue
        va = dict(zip(names_a, a[output]["eigenvectors"][0]))
        vb = dict(zip(names_b, entry["eigenvectors"][0]))
        x = np.array([va.get(n) or 0.0 for n in names], dtype=np.float64)
        y = np.array([vb.get(n) or 0.0 for n in names], dtype=np.float64)
        norm = np.linalg.norm(x) * np.linalg.norm(y)
        if norm == 0:
            continue
        cosine = float(abs(x @ y) / norm)
        out[output] = {"cosine": cosine, "changed": cosine < DIRECTION_COSINE}
    return out
