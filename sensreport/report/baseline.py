"""The comparison with a baseline run, as tables."""

from __future__ import annotations

from ..analysis.measures import DEFINITIONS
from ..results import RunResult
from .format import date_text


def baseline_section(result: RunResult) -> dict | None:
    """The comparison with a previous run (``checks.baseline``) as tables, if the run made one."""
    c = getattr(result, "baseline", None)
    if not c:
        return None
    if "error" in c:
        return {"error": c["error"]}
    measure = c.get("measure", "mean_abs")
    outputs = []
    for name, row in (c.get("per_output") or {}).items():
        outputs.append({
            "output": name, "max_rel_change": row.get("max_rel_change"), "top_k_changes": row.get("top_k_changes"),
            "rank_correlation": row.get("rank_correlation"),
            "inputs": [dict(i) for i in (row.get("inputs") or [])[:10]], "more": max(0, len(row.get("inputs") or []) - 10),
        })
    return {
        "error": None, "measure": DEFINITIONS.get(measure, (measure,))[0], "top_k": c.get("top_k"),
        "created": date_text(c.get("baseline_created")), "model_sha256": c.get("baseline_model_sha256") or "—",
        "model_changed": c.get("model_changed"), "outputs": outputs,
    }
