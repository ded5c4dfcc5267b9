"""Checks with thresholds and severities, and the comparison with a baseline run.

A check turns a finding of the run into ``{id, status, value, threshold, severity,
message}``. Status is ``pass``, ``warn`` (failed, severity warn), ``fail`` (failed,
severity fail) or ``error`` (could not be evaluated, e.g. a method it needs failed).
The CLI exits 1 when a check fails (or warns, with ``--fail-on warn``).

The baseline comparison reads a previous run's ``results.json`` and compares one
measure per output and input: relative change, rank change, top-k membership and
Spearman rank correlation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .measures import ranking

STATUSES = ("fail", "error", "warn", "pass")  # the order the report lists them in


@dataclass
class CheckResult:
    id: str
    status: str  # pass | warn | fail | error
    value: Any
    threshold: Any
    severity: str  # fail | warn
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _judge(id_: str, ok: bool, value, threshold, severity: str, message: str) -> CheckResult:
    status = "pass" if ok else ("fail" if severity == "fail" else "warn")
    return CheckResult(id_, status, value, threshold, severity, message)


def load_baseline(path: Path, key: str = "checks.baseline.path") -> dict[str, Any]:
    """A previous run's results.json, checked to be one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(key, f"baseline file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(key, f"cannot read {path} as a sensreport results.json: {exc}") from None
    if not isinstance(doc, dict) or "schema_version" not in doc or "measures" not in doc:
        raise InputError(key, f"{path} is not a sensreport results.json (no schema_version / measures)")
    if doc["schema_version"] != 1:
        raise InputError(key, f"{path} has results schema version {doc['schema_version']}; this sensreport reads 1")
    return doc


def _matrix(doc: dict, measure: str, outputs: list[str], inputs: list[str]) -> np.ndarray | None:
    per_output = doc["measures"]["values"].get(measure, {}).get("per_output", {})
    if not all(o in per_output for o in outputs):
        return None
    return np.array([[np.nan if per_output[o].get(i) is None else per_output[o][i] for i in inputs] for o in outputs],
                    dtype=np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation of two score vectors (ties ranked by position)."""
    if len(a) < 2:
        return None
    ra = np.empty(len(a))
    rb = np.empty(len(b))
    ra[ranking(a)] = np.arange(len(a))
    rb[ranking(b)] = np.arange(len(b))
    if np.std(ra) == 0 or np.std(rb) == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def compare(current: dict, baseline: dict, measure: str, top_k: int = 5) -> dict[str, Any]:
    """Per output and input: the measure now and in the baseline, relative change, ranks.

    ``rel_change = |new - old| / max(|old|, 1e-3 * max_j |old[i, j]|)`` (the same floor
    idea as the FD-vs-AD agreement: an input that was negligible for an output is
    judged against 0.1% of that output's largest value). Both arguments are
    results.json documents.
    """
    inputs = current["inputs"]["names"]
    outputs = list(current["measures"]["values"].get(measure, {}).get("per_output", {}))
    if baseline["inputs"]["names"] != inputs:
        return {"error": "the baseline has different inputs: "
                         f"{', '.join(baseline['inputs']['names'][:8])} vs {', '.join(inputs[:8])}"}
    new = _matrix(current, measure, outputs, inputs)
    old = _matrix(baseline, measure, outputs, inputs)
    if new is None or old is None:
        return {"error": f"the baseline has no '{measure}' values for outputs {', '.join(outputs)}"}
    scale = np.nanmax(np.abs(old), axis=1, initial=0.0, keepdims=True)
    floor = np.where(scale > 0, 1e-3 * scale, 1.0)
    rel = np.abs(new - old) / np.maximum(np.abs(old), floor)
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
            "rank_correlation": spearman(new[i], old[i]),
        }
    return {
        "measure": measure,
        "top_k": top_k,
        "baseline_created": baseline.get("provenance", {}).get("created"),
        "baseline_model_sha256": baseline.get("provenance", {}).get("model_sha256"),
        "model_changed": baseline.get("provenance", {}).get("model_sha256") != current["provenance"].get("model_sha256"),
        "per_output": rows,
    }


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def evaluate(config: dict[str, Any], doc: dict[str, Any], comparison: dict | None) -> list[CheckResult]:
    """Run the configured checks on a results document (see :meth:`RunResult.to_dict`).

    ``config`` is the spec's ``checks`` mapping with defaults applied (see
    :func:`sensreport.spec.default_checks`).
    """
    out: list[CheckResult] = []
    for name, m in doc["methods"].items():
        if m["status"] != "ok":
            out.append(CheckResult(f"method.{name}", "error", None, None, "fail", f"{name} failed: {m['reason']}"))

    cfg = config.get("nonfinite")
    if cfg:
        counts = {k: v["count"] for k, v in doc["nonfinite"].items()}
        bad = {k: c for k, c in counts.items() if c}
        where = "; ".join(f"{c} in {k} (first at {doc['nonfinite'][k]['locations'][:1]})" for k, c in bad.items())
        out.append(_judge("nonfinite", not bad, sum(bad.values()), 0, cfg["severity"],
                          f"NaN/Inf values: {where}" if bad else "all outputs and derivatives are finite"))

    cfg = config.get("fd_vs_ad")
    if cfg:
        a = doc.get("agreement")
        threshold = {"max_rel_error": (a or {}).get("rtol", cfg.get("max_rel_error")), "min_share": cfg["min_share"]}
        if a is None:
            out.append(CheckResult("fd_vs_ad", "error", None, threshold, cfg["severity"],
                                   "needs finite differences and automatic derivatives that both succeeded"))
        else:
            share = a["share_within_tolerance"]
            out.append(_judge("fd_vs_ad", share >= cfg["min_share"], share, threshold, cfg["severity"],
                              f"{share:.2%} of {a['entries']} entries agree within a relative error of {a['rtol']:g} "
                              f"(need {cfg['min_share']:.0%}); largest relative error "
                              + (f"{a['max_rel_error']:.3g}" if a["max_rel_error"] is not None else "n/a")))

    cfg = config.get("dead_inputs")
    if cfg:
        dead = doc.get("dead_inputs", [])
        out.append(_judge("dead_inputs", len(dead) <= cfg["max_count"], len(dead), cfg["max_count"], cfg["severity"],
                          f"zero derivative everywhere: {', '.join(dead[:10])}" if dead else "every input moves some output"))

    cfg = config.get("baseline")
    if cfg and cfg.get("path"):
        if comparison is None or "error" in comparison:
            reason = (comparison or {}).get("error", "no measures to compare")
            out.append(CheckResult("baseline", "error", None, None, cfg["severity"], reason))
        else:
            rows = comparison["per_output"]
            drift = max((r["max_rel_change"] or 0.0) for r in rows.values()) if rows else 0.0
            worst = max(rows, key=lambda o: rows[o]["max_rel_change"] or 0.0) if rows else None
            out.append(_judge("baseline.drift", drift <= cfg["max_rel_change"], drift, cfg["max_rel_change"],
                              cfg["severity"], f"largest relative change of {comparison['measure']}: {drift:.3g}"
                              + (f" (output {worst})" if worst else "")))
            changes = max((r["top_k_changes"] for r in rows.values()), default=0)
            out.append(_judge("baseline.top_k", changes <= cfg["max_top_k_changes"], changes,
                              cfg["max_top_k_changes"], cfg["severity"],
                              f"inputs entering the top {comparison['top_k']} of an output: {changes}"))
            if cfg.get("min_rank_correlation") is not None:
                corr = [r["rank_correlation"] for r in rows.values() if r["rank_correlation"] is not None]
                value = min(corr) if corr else None
                out.append(_judge("baseline.rank_correlation", value is None or value >= cfg["min_rank_correlation"],
                                  value, cfg["min_rank_correlation"], cfg["severity"],
                                  f"lowest Spearman rank correlation with the baseline: {value:.3f}"
                                  if value is not None else "too few inputs to correlate"))
    return sorted(out, key=lambda c: STATUSES.index(c.status))
