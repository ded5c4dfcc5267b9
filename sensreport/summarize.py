"""``sensreport summary``: a run's results.json as a few lines of text or Markdown.

For CI job summaries and chat messages: the verdict, the top inputs of each output
under the leading measure, and the checks that did not pass. It only displays what
results.json says (``verdict``, ``checks``, ``measures``, ``rankings``); nothing is
judged again. Names come from users: in Markdown they are escaped (no links, no HTML,
no table breaks).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import InputError

#: Check statuses listed, worst first (``pass`` and ``info`` are not).
LISTED = ("fail", "error", "warn")
#: Outputs listed by default (a note says how many more).
MAX_OUTPUTS = 20

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")  # < > & become entities


def read_results(path: str | Path) -> dict[str, Any]:
    """A run's results.json (or the one in a run folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("RESULTS", f"not found: {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("RESULTS", f"cannot read {p} as results.json: {exc}") from None
    if not isinstance(doc, dict) or "schema_version" not in doc or "verdict" not in doc:
        raise InputError("RESULTS", f"{p} is not a sensreport results.json (no schema_version and verdict)")
    return doc


def md(text: Any) -> str:
    """``text`` as literal Markdown inline text: one line, punctuation escaped, no HTML."""
    s = " ".join(str(text).split())
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _top(doc: dict, top: int) -> tuple[str | None, list[tuple[str, list[tuple[str, float | None]]]]]:
    measures = doc.get("measures") or {}
    leading = measures.get("leading")
    if not leading:
        return None, []
    ranked = (doc.get("rankings") or {}).get(leading, {}).get("per_output", {})
    values = (measures.get("values") or {}).get(leading, {}).get("per_output", {})
    out = []
    for output, names in ranked.items():
        row = values.get(output, {})
        finite = [v for v in row.values() if isinstance(v, (int, float))]
        total = sum(finite) if finite else 0.0
        out.append((output, [(n, (row.get(n) / total) if total > 0 and isinstance(row.get(n), (int, float)) else None)
                             for n in names[:top]]))
    return leading, out


def summarize(doc: dict[str, Any], *, markdown: bool = False, top: int = 3, max_outputs: int = MAX_OUTPUTS) -> str:
    """The summary of a results.json document, as plain text or Markdown."""
    verdict = doc.get("verdict") or {}
    headline = verdict.get("headline") or "no verdict (the checks were not applied)"
    code = verdict.get("exit_code")
    status = verdict.get("status", "unknown")
    title = doc.get("title") or "sensreport run"
    leading, rows = _top(doc, top)
    checks = [c for c in doc.get("checks") or [] if c.get("status") in LISTED]
    checks.sort(key=lambda c: LISTED.index(c["status"]))
    points = doc.get("points")
    n_in = len((doc.get("inputs") or {}).get("names") or [])
    n_out = len((doc.get("outputs") or {}).get("names") or [])
    shown, more = rows[:max_outputs], max(0, len(rows) - max_outputs)

    def pct(share: float | None) -> str:
        return f" ({share:.0%})" if share is not None else ""

    if not markdown:
        lines = [f"{title}: {headline}" + (f" (exit {code})" if code is not None else ""),
                 f"{points} points, {n_in} inputs, {n_out} outputs"]
        if leading:
            lines.append(f"top inputs by {leading}:")
            lines += [f"  {o}: " + ", ".join(f"{n}{pct(s)}" for n, s in names) for o, names in shown]
            lines += [f"  ... and {more} more outputs"] if more else []
        if checks:
            lines.append("checks that did not pass:")
            lines += [f"  {c['status'].upper()} {c['id']}: {c.get('message', '')}" for c in checks]
        return "\n".join(lines) + "\n"

    icon = {"passed": "✅", "passed_with_warnings": "⚠️", "failed": "❌", "incomplete": "❌"}.get(status, "ℹ️")
    lines = [f"### {icon} {md(title)}: {md(headline)}", ""]
    facts = f"{points} points, {n_in} inputs, {n_out} outputs"
    lines.append(f"Verdict `{status}`" + (f", exit code {code}" if code is not None else "") + f"; {facts}.")
    if leading:
        lines += ["", f"**Top inputs by `{leading}`** (share of the output's total)", "",
                  "| output | " + " | ".join(f"#{i + 1}" for i in range(top)) + " |",
                  "|---|" + "---|" * top]
        for o, names in shown:
            cells = [f"{md(n)}{pct(s)}" for n, s in names] + [""] * (top - len(names))
            lines.append(f"| {md(o)} | " + " | ".join(cells) + " |")
        if more:
            lines += ["", f"… and {more} more outputs (see the report)."]
    lines.append("")
    if checks:
        lines += ["**Checks that did not pass**", ""]
        lines += [f"- **{c['status'].upper()}** `{c['id']}`: {md(c.get('message', ''))}" for c in checks]
    else:
        lines.append("Every check passed." if doc.get("checks") else "No checks were run.")
    return "\n".join(lines) + "\n"
