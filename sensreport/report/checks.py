"""The checks panel: one row per check, with the status the checks stage decided, and the
run's notes (how it went; no status of their own)."""

from __future__ import annotations

from ..results import CheckResult, RunResult
from .format import plain

#: How each status is labelled on the page.
LABELS = {"fail": "✗ FAIL", "error": "⚠ ERROR", "warn": "! WARN", "pass": "✓ PASS", "info": "ℹ INFO"}


def check_rows(result: RunResult) -> list[dict]:
    """The rows of the checks table, in the checks stage's order (failures first)."""
    return [_row(c) for c in result.checks]


def _row(c: CheckResult) -> dict:
    line = None
    if c.threshold is not None:
        line = f"{c.id}: threshold {plain(c.threshold)}, severity {c.severity} (spec key {c.key})"
    text = c.message[:1].upper() + c.message[1:] + ("" if c.message.endswith(".") else ".")
    return {"id": c.id, "status": c.status, "label": LABELS[c.status], "title": c.title or c.id, "text": text,
            "items": list(c.items), "threshold": line, "key": c.key}


def verdict_banner(result: RunResult) -> dict | None:
    """The banner at the top of the page: the verdict the exit code follows."""
    v = result.verdict
    if v is None:
        return None
    return {"status": v.status, "tone": v.tone, "headline": v.headline, "exit_code": v.exit_code,
            "fail_on": v.fail_on}
