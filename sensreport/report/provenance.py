"""Provenance (how to reproduce the run, hashes, versions, timings, memory) and the measures' definitions."""

from __future__ import annotations

from pathlib import Path

from ..analysis.measures import DEFINITIONS
from ..results import RunResult
from ..sizes import format_bytes
from .context import Context
from .format import plain, shell_quote


def provenance_section(result: RunResult) -> dict:
    prov = result.provenance
    command = prov.get("command")
    if command:
        cmd = " ".join(shell_quote(c) for c in command)
        if prov.get("cwd"):
            cmd = f"cd {shell_quote(prov['cwd'])} && {cmd}"
    elif prov.get("spec_path"):
        cmd = f"sensreport run {shell_quote(str(prov['spec_path']))}"
    else:
        cmd = None
    rows = [("Model", result.model.get("source")), ("Model kind", result.model.get("kind")),
            ("Model sha256", result.model.get("sha256") or prov.get("model_sha256")),
            ("Spec file", prov.get("spec_path")), ("Spec sha256", prov.get("spec_sha256")),
            ("Points", prov.get("points_source")), ("Seed", prov.get("seed")), ("Created", prov.get("created")),
            ("Platform", prov.get("platform"))]
    memory = result.memory or {}
    return {
        "command": cmd,
        "rows": [{"key": k, "value": "—" if v is None else str(v)} for k, v in rows],
        "versions": [{"key": k, "value": v or "—"} for k, v in (prov.get("versions") or {}).items()],
        "timings": [{"key": k, "value": v} for k, v in result.timings.items()],
        "memory": [{"key": k.replace("_", " "), "value": format_bytes(v) if k.endswith(("bytes", "budget", "rss")) else
                    plain(v) if v is not None else None} for k, v in memory.items()],
        "spec_text": result.spec_text,
    }


def definitions(ctx: Context) -> list[dict]:
    keys = ctx.shown + [m for m in DEFINITIONS if m not in ctx.shown and m in ctx.result.measures]
    return [{"title": DEFINITIONS[m][0], "text": DEFINITIONS[m][1], "ref": DEFINITIONS[m][2]} for m in keys]


def spec_filename(result: RunResult) -> str:
    path = result.provenance.get("spec_path")
    name = Path(str(path)).name if path else "spec.yaml"
    return name if name.endswith((".yaml", ".yml")) else "spec.yaml"
