"""Provenance (how to reproduce the run, hashes, versions, timings, memory) and the measures' definitions."""

from __future__ import annotations

from pathlib import Path

from ..analysis.measures import DEFINITIONS
from ..results import RunResult
from ..sizes import format_bytes
from .context import Context
from .environment import seconds_text
from .format import plain, shell_quote


def provenance_section(result: RunResult) -> dict:
    prov = result.provenance
    reproduce = prov.get("reproduce")
    if reproduce:  # from the spec's folder: no path of this machine in it
        cmd = " ".join(shell_quote(c) for c in reproduce)
    elif prov.get("command"):  # results written before the command was made relative
        cmd = " ".join(shell_quote(c) for c in prov["command"])
        if prov.get("cwd"):
            cmd = f"cd {shell_quote(prov['cwd'])} && {cmd}"
    else:
        cmd = None
    shape = prov.get("points_shape")
    m = prov.get("machine") or {}
    cores = (f", {m['cores']} cores" if m.get("cores") else "") + (
        f" ({m['usable_cores']} usable)" if m.get("usable_cores") not in (None, m.get("cores")) else "")
    rows = [("Model", result.model.get("source")), ("Model kind", result.model.get("kind")),
            ("Model sha256", result.model.get("sha256") or prov.get("model_sha256")),
            ("Spec file", prov.get("spec_path")), ("Spec sha256", prov.get("spec_sha256")),
            ("Points", prov.get("points_source")
             + (f" ({' × '.join(str(s) for s in shape)})" if shape and prov.get("points_source") else "")
             if prov.get("points_source") else None),
            ("Points sha256", prov.get("points_sha256")), ("Seed", prov.get("seed") if prov.get("design") in (None, "random")
                      else f"{prov.get('seed')} ({prov['design']} design)"), ("Created", prov.get("created")),
            ("Run time", seconds_text(prov["run_seconds"]) if prov.get("run_seconds") is not None else None),
            ("Machine", (m.get("cpu") or "") + cores if m else None),
            ("Platform", prov.get("platform"))]
    memory = result.memory or {}
    return {
        "command": cmd,
        "rows": [{"key": k, "value": "—" if v is None else str(v), "id": k.lower().replace(" ", "-")} for k, v in rows],
        "files": [dict(f) for f in prov.get("files") or []],
        "versions": [{"key": k, "value": v or "—"} for k, v in (prov.get("versions") or {}).items()],
        "timings": [{"key": k, "value": v} for k, v in result.timings.items()],
        "memory": [{"key": k.replace("_", " "), "value": format_bytes(v) if k.endswith(("bytes", "budget", "rss")) else
                    plain(v) if v is not None else None} for k, v in memory.items()],
        "spec": spec_shown(result.spec_text),
    }


SPEC_LINES = 200  # lines of the spec shown on the page; the whole text is downloadable


def spec_shown(text: str) -> dict:
    """The spec as the page shows it: its first :data:`SPEC_LINES` lines, and how many are left out."""
    lines = text.splitlines()
    shown = "\n".join(lines[:SPEC_LINES])
    cut = len(shown) > SPEC_SHOWN_CHARS
    shown = shown[:SPEC_SHOWN_CHARS] + (" …" if cut else "")
    return {"text": shown, "lines": len(lines), "more": max(0, len(lines) - SPEC_LINES), "cut": cut,
            "shown_lines": min(len(lines), SPEC_LINES), "max_chars": SPEC_SHOWN_CHARS,
            "bytes": len(text.encode("utf-8"))}


SPEC_SHOWN_CHARS = 50_000  # and at most this many characters of them (one line can hold every point)
SPEC_TEXT_BYTES = 256_000  # a spec up to this size downloads as text; a larger one compressed (gzip)
SPEC_GZIP_BYTES = 1_000_000  # a compressed spec beyond this is not embedded (the page stays under 10 MB)


def spec_download(result: RunResult) -> dict | None:
    """The spec as the page's download: text, gzip (base64) when large, or None when even
    compressed it would make the page too large (its sha256 and arrays.npz's points remain)."""
    import base64
    import gzip

    name = spec_filename(result)
    data = result.spec_text.encode("utf-8")
    if len(data) <= SPEC_TEXT_BYTES:
        return {"filename": name, "mime": "text/yaml", "text": result.spec_text, "bytes": len(data)}
    packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: the same spec gives the same page
    if len(packed) > SPEC_GZIP_BYTES:
        return None
    return {"filename": name + ".gz", "mime": "application/gzip", "base64": base64.b64encode(packed).decode("ascii"),
            "bytes": len(packed)}


def definitions(ctx: Context) -> list[dict]:
    keys = ctx.shown + [m for m in DEFINITIONS if m not in ctx.shown and m in ctx.result.measures]
    return [{"title": DEFINITIONS[m][0], "text": DEFINITIONS[m][1], "ref": DEFINITIONS[m][2]} for m in keys]


def spec_filename(result: RunResult) -> str:
    path = result.provenance.get("spec_path")
    name = Path(str(path)).name if path else "spec.yaml"
    return name if name.endswith((".yaml", ".yml")) else "spec.yaml"
