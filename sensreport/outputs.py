"""The writing stage: output folders (``{date}`` filled in, a ``latest`` link), and files
written atomically, so a failed or killed run never replaces a previous good report.

:class:`Outputs` is one run's output folder from start to end: it removes what killed
runs left behind (temporary files and folders, see :mod:`sensreport.files`), holds the
staging folder of ``execution.arrays: disk``, claims a folder of its own when the path
has ``{datetime}`` or ``{time}`` (``reports/2026-11-27T120000-2`` when another run
started in the same second), writes, and on failure removes what it created.
"""

from __future__ import annotations

import datetime as _dt
import io
import itertools
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from . import deadline
from .errors import InputError
from .files import NO_SPACE, make_dir, output_error, remove_stale, staged_file, staging_dir, temp_link
from .results import RunResult

PLACEHOLDERS = ("{date}", "{time}", "{datetime}")
#: Placeholders that make a folder per run: a second run in the same second gets ``-2``.
UNIQUE = ("{time}", "{datetime}")
#: An empty folder of a templated name is debris of a killed run after this many seconds.
EMPTY_AFTER = 600
_PATTERNS = {"date": r"\d{4}-\d{2}-\d{2}", "time": r"\d{6}", "datetime": r"\d{4}-\d{2}-\d{2}T\d{6}"}


def expand_out(path: Path, now: _dt.datetime) -> tuple[Path, Path | None]:
    """Fill ``{date}``, ``{time}``, ``{datetime}`` in ``path``; return it and where ``latest`` goes.

    ``latest`` is a link beside the first folder that holds a placeholder
    (``reports/{date}/credit`` -> ``reports/latest`` pointing at ``<date>``); None when
    the path has no placeholder.
    """
    values = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H%M%S"),
              "datetime": now.strftime("%Y-%m-%dT%H%M%S")}
    parts = path.parts
    first = _first(parts, PLACEHOLDERS)
    try:
        expanded = Path(*(part.format(**values) if any(p in part for p in PLACEHOLDERS) else part for part in parts))
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise InputError("report.dir", f"{path}: only {{date}}, {{time}} and {{datetime}} can be filled in ({exc})") from None
    if first is None:
        return expanded, None
    return expanded, Path(*parts[:first]) / "latest"


def _first(parts, placeholders) -> int | None:
    return next((i for i, part in enumerate(parts) if any(p in part for p in placeholders)), None)


def point_latest(latest: Path, out_dir: Path, key: str = "report.dir") -> None:
    """Atomically make ``latest`` a relative link to ``out_dir``'s folder at its level."""
    target = Path(os.path.relpath(out_dir, latest.parent)).parts[0]
    tmp = temp_link(latest.parent, "latest")
    try:
        os.symlink(target, tmp)
        os.replace(tmp, latest)
    except OSError as exc:
        raise output_error(exc, latest, key, "the report was written, but cannot point") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def dump_json(doc: dict, fh) -> None:
    """Stream ``doc`` into a binary file (no copy of the whole text in memory)."""
    text = io.TextIOWrapper(fh, encoding="utf-8")
    json.dump(doc, text, indent=1, allow_nan=False)
    text.flush()
    text.detach()


def write_outputs(result: RunResult, out_dir: Path, plotlyjs: str = "inline", *,
                  templates: Path | None = None, key: str = "report.dir") -> dict[str, Path]:
    """Write report.html, results.json and arrays.npz into ``out_dir``.

    ``templates`` is a folder of user templates (``report.templates``) that replace the
    built-in ones of the same name. ``key`` names the output folder in errors.

    Everything is rendered to temporary files in ``out_dir`` first; only then is each
    moved over its final name with an atomic rename (``report.html`` last), so a failure
    at any point before leaves the previous run's files untouched. An ``OSError`` (a
    folder that cannot be written, a full disk) is raised as the error
    :func:`~sensreport.files.output_error` gives.
    """
    html, doc = _render(result, plotlyjs, templates)
    out_dir = Path(out_dir)
    make_dir(out_dir, key)
    return _write(result, html, doc, out_dir, key)


def _render(result: RunResult, plotlyjs: str, templates: Path | None) -> tuple[str, dict]:
    from .report import render_report

    t0 = time.perf_counter()
    html = render_report(result, plotlyjs=plotlyjs, templates=templates)
    result.timings["render_report"] = time.perf_counter() - t0
    return html, result.to_dict()


def _write(result: RunResult, html: str, doc: dict, out_dir: Path, key: str) -> dict[str, Path]:
    staged: list[tuple[Path, Path]] = []
    current = out_dir
    try:
        for name, writer in (
            ("arrays.npz", lambda fh: np.savez_compressed(fh, **result.arrays())),
            ("results.json", lambda fh: dump_json(doc, fh)),
            ("report.html", lambda fh: fh.write(html.encode("utf-8"))),
        ):
            current = out_dir / name
            fd, tmp = staged_file(current)
            staged.append((Path(tmp), current))
            with os.fdopen(fd, "wb") as fh:
                writer(fh)
        with deadline.committing():
            # the .npy arrays first and report.html last: the report never names a file
            # that is not there yet
            for m in result.methods.values():
                if m.path is not None and m.path.exists() and m.path.parent != out_dir:
                    current = out_dir / m.path.name
                    os.replace(m.path, current)
                    m.path = current
            for tmp, final in staged:
                current = final
                os.replace(tmp, final)
    except OSError as exc:
        raise output_error(exc, current, key) from None
    finally:
        with deadline.shield():
            for tmp, _ in staged:
                if tmp.exists():
                    tmp.unlink()
    return {final.name: final for _, final in staged}


class Outputs:
    """One run's output folder (``report.dir`` or ``--out``, named by ``key`` in errors).

    Use as a context manager around the run: entering removes stale debris of killed
    runs (when ``write``); leaving removes the staging folder, and after a failure the
    folder this run created, when nothing else is in it.
    """

    def __init__(self, path: Path, now: _dt.datetime, *, write: bool = True, key: str = "report.dir"):
        self.template = Path(path)
        self.key = key
        self.writes = write
        self.out_dir, self.latest = expand_out(self.template, now)
        parts = self.template.parts
        self.level = _first(parts, PLACEHOLDERS)  # the first templated folder (beside it: latest)
        self.unique = _first(parts, UNIQUE)  # the folder claimed per run
        self.staging: Path | None = None
        self.created: Path | None = None

    # ---------------------------------------------------------------- folders
    def __enter__(self) -> "Outputs":
        if self.writes:
            self.clean()
        return self

    def __exit__(self, exc_type, exc, tb):
        with deadline.shield():
            if self.staging is not None and self.writes:
                shutil.rmtree(self.staging, ignore_errors=True)
            if exc_type is not None and self.created is not None:
                _remove_empty(self.created)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            # a full disk while the arrays were written chunk by chunk
            raise output_error(exc, Path(exc.filename or self.staging or self.out_dir), "execution.arrays") from None
        return False

    def clean(self) -> None:
        """Remove stale temporary files and folders of killed runs: in the output folder
        and, for a templated path, beside it (with the empty folders such runs left)."""
        remove_stale(self.out_dir)
        if self.level is None:
            return
        parts = self.template.parts
        base = Path(*parts[: self.level])
        remove_stale(base)
        pattern = _pattern(parts[self.level])
        rest = parts[self.level + 1:]
        if pattern is None or any(p in part for part in rest for p in PLACEHOLDERS):
            return
        try:
            siblings = [e for e in os.scandir(base) if e.is_dir(follow_symlinks=False) and pattern.fullmatch(e.name)]
        except OSError:
            return
        for entry in siblings:
            folder = Path(entry.path)
            chain = [folder.joinpath(*rest[:i]) for i in range(len(rest), -1, -1)]
            removed = False
            for sub in chain:
                removed |= bool(remove_stale(sub))
            for sub in chain:
                if removed or _older_than(sub, EMPTY_AFTER):
                    _remove_empty(sub, recursive=False)

    def array_dir(self) -> Path:
        """A staging folder for ``execution.arrays: disk`` (on the output folder's disk,
        so the arrays are renamed into place, not copied)."""
        if not self.writes:
            self.staging = staging_dir(None)  # the caller reads the arrays from there
            return self.staging
        where = self.out_dir if self.unique is None else Path(*self.out_dir.parts[: self.unique])
        make_dir(where, self.key)
        try:
            self.staging = staging_dir(where)
        except OSError as exc:
            raise output_error(exc, where, self.key) from None
        return self.staging

    def claim(self) -> Path:
        """Create the output folder; with ``{datetime}``/``{time}`` one no other run has."""
        if self.unique is None:
            make_dir(self.out_dir, self.key)
            return self.out_dir
        parts = self.out_dir.parts
        parent, name = Path(*parts[: self.unique]), parts[self.unique]
        make_dir(parent, self.key)
        for k in itertools.count(1):
            folder = parent / (name if k == 1 else f"{name}-{k}")
            try:
                folder.mkdir()
            except FileExistsError:
                if k < 1000:
                    continue
                raise InputError(self.key, f"{parent} holds 1000 runs named {name}[-k]; cannot make another") from None
            except OSError as exc:
                raise output_error(exc, folder, self.key, "cannot create the output folder") from None
            break
        self.created = folder
        self.out_dir = folder.joinpath(*parts[self.unique + 1:])
        make_dir(self.out_dir, self.key)
        return self.out_dir

    # ---------------------------------------------------------------- writing
    def write(self, result: RunResult, plotlyjs: str = "inline", *, templates: Path | None = None) -> Path:
        """Render, write atomically, move ``latest``; return the folder written."""
        deadline.stage("writing the report")
        html, doc = _render(result, plotlyjs, templates)
        out_dir = self.claim()
        _write(result, html, doc, out_dir, self.key)
        self.created = None  # written: it stays, whatever happens next
        if self.latest is not None:
            point_latest(self.latest, out_dir, self.key)
        return out_dir


def _pattern(part: str) -> re.Pattern | None:
    """A regular expression for the folder names a templated part expands to."""
    out, pos = "", 0
    for m in re.finditer(r"\{(date|time|datetime)\}", part):
        out += re.escape(part[pos:m.start()]) + _PATTERNS[m.group(1)]
        pos = m.end()
    if not out:
        return None
    return re.compile(out + re.escape(part[pos:]) + r"(-[0-9]+)?")


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - os.lstat(path).st_mtime > seconds
    except OSError:
        return False


def _remove_empty(folder: Path, recursive: bool = True) -> None:
    """Remove ``folder`` if it is empty (``recursive``: after its empty subfolders). Never fails."""
    try:
        if recursive:
            for sub in sorted((p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()),
                              key=lambda p: -len(p.parts)):
                _remove_empty(sub, recursive=False)
        folder.rmdir()
    except OSError:
        pass
