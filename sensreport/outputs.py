"""The writing stage: output folders (``{date}`` filled in, a ``latest`` link), and files
written atomically, so a failed or killed run never replaces a previous good report."""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import make_dir, staged_file
from .results import RunResult


PLACEHOLDERS = ("{date}", "{time}", "{datetime}")


def expand_out(path: Path, now: _dt.datetime) -> tuple[Path, Path | None]:
    """Fill ``{date}``, ``{time}``, ``{datetime}`` in ``path``; return it and where ``latest`` goes.

    ``latest`` is a link beside the first folder that holds a placeholder
    (``reports/{date}/credit`` -> ``reports/latest`` pointing at ``<date>``); None when
    the path has no placeholder.
    """
    values = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H%M%S"),
              "datetime": now.strftime("%Y-%m-%dT%H%M%S")}
    parts = path.parts
    first = next((i for i, part in enumerate(parts) if any(p in part for p in PLACEHOLDERS)), None)
    try:
        expanded = Path(*(part.format(**values) if any(p in part for p in PLACEHOLDERS) else part for part in parts))
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError("report.dir", f"{path}: only {{date}}, {{time}} and {{datetime}} can be filled in ({exc})") from None
    if first is None:
        return expanded, None
    return expanded, Path(*parts[:first]) / "latest"


def point_latest(latest: Path, out_dir: Path) -> None:
    """Atomically make ``latest`` a relative link to ``out_dir``'s folder at its level."""
    target = Path(os.path.relpath(out_dir, latest.parent)).parts[0]
    tmp = latest.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, latest)


def dump_json(doc: dict, fh) -> None:
    """Stream ``doc`` into a binary file (no copy of the whole text in memory)."""
    text = io.TextIOWrapper(fh, encoding="utf-8")
    json.dump(doc, text, indent=1, allow_nan=False)
    text.flush()
    text.detach()


def write_outputs(result: RunResult, out_dir: Path, plotlyjs: str = "inline", *,
                  templates: Path | None = None) -> dict[str, Path]:
    """Write report.html, results.json and arrays.npz into ``out_dir``.

    ``templates`` is a folder of user templates (``report.templates``) that replace the
    built-in ones of the same name.

    Everything is rendered to temporary files in ``out_dir`` first; only then is each
    moved over its final name with an atomic rename, so a failure at any point before
    leaves the previous run's files untouched.
    """
    from .report import render_report

    out_dir = Path(out_dir)
    make_dir(out_dir)
    t0 = time.perf_counter()
    html = render_report(result, plotlyjs=plotlyjs, templates=templates)
    result.timings["render_report"] = time.perf_counter() - t0
    doc = result.to_dict()
    staged: list[tuple[Path, Path]] = []
    try:
        for name, writer in (
            ("arrays.npz", lambda fh: np.savez_compressed(fh, **result.arrays())),
            ("results.json", lambda fh: dump_json(doc, fh)),
            ("report.html", lambda fh: fh.write(html.encode("utf-8"))),
        ):
            fd, tmp = staged_file(out_dir / name)
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
            staged.append((Path(tmp), out_dir / name))
        for tmp, final in staged:
            os.replace(tmp, final)
        for m in result.methods.values():
            if m.path is not None and m.path.exists():
                final = out_dir / m.path.name
                os.replace(m.path, final)
                m.path = final
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
    return {final.name: final for _, final in staged}
