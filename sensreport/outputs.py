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
import itertools
import json
import os
import re
import shutil
import threading
import time
import zipfile
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


#: Containers this deep or deeper are written on one line of results.json: the names and
#: small records stay one per line, each output's measures (one value per input) one line.
JSON_LINE_DEPTH = 4


def dump_json(doc: dict, fh) -> None:
    """Stream ``doc`` into a binary file as indented JSON (``json.load`` gives ``doc`` back).

    Containers at depth :data:`JSON_LINE_DEPTH` and deeper are encoded whole by the json
    module's C encoder, one line each; only the levels above are indented here. Python's
    indenting encoder is pure Python (about 10x slower on a run with thousands of
    measures).
    """
    encode = json.JSONEncoder(allow_nan=False).encode  # ASCII: \\u escapes, as json.dump writes
    for chunk in _json_chunks(doc, 0, encode):
        fh.write(chunk.encode("ascii"))
    fh.write(b"\n")


def _json_chunks(value, depth: int, encode):
    if depth >= JSON_LINE_DEPTH or not isinstance(value, (dict, list)) or not value:
        yield encode(value)
        return
    pad, inner = "\n" + " " * depth, "\n" + " " * (depth + 1)
    if isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            yield ("," if i else "") + inner + encode(str(k) if not isinstance(k, str) else k) + ": "
            yield from _json_chunks(v, depth + 1, encode)
        yield pad + "}"
    else:
        yield "["
        for i, v in enumerate(value):
            yield ("," if i else "") + inner
            yield from _json_chunks(v, depth + 1, encode)
        yield pad + "]"


def write_outputs(result: RunResult, out_dir: Path, plotlyjs: str = "inline", *,
                  templates: Path | None = None, key: str = "report.dir",
                  compress_arrays: bool = False) -> dict[str, Path]:
    """Write report.html, results.json and arrays.npz into ``out_dir``.

    ``templates`` is a folder of user templates (``report.templates``) that replace the
    built-in ones of the same name. ``key`` names the output folder in errors.
    ``compress_arrays`` writes arrays.npz through zlib (``execution.compress_arrays``).

    Everything is written to temporary files in ``out_dir`` first; only then is each
    moved over its final name with an atomic rename (``report.html`` last), so a failure
    at any point before leaves the previous run's files untouched. An ``OSError`` (a
    folder that cannot be written, a full disk) is raised as the error
    :func:`~sensreport.files.output_error` gives.
    """
    out_dir = Path(out_dir)
    make_dir(out_dir, key)
    return _write(result, out_dir, key, plotlyjs, templates, compress_arrays)


class ArraysFile:
    """arrays.npz under its temporary name, written in a thread of its own.

    :meth:`start` writes arrays in the background (a run starts with the derivatives as
    soon as they are computed, while the analysis runs and the report renders: numpy's
    and zlib's writes release the GIL, so the work overlaps on two cores); :meth:`finish`
    waits, adds the arrays not written yet, closes the file and returns the seconds spent
    writing. The entries are those of ``np.savez`` (``np.savez_compressed`` with ``compress``).
    """

    def __init__(self, path: Path, compress: bool = False):
        self.path = path
        self.fh = open(path, "wb")
        self.zip = zipfile.ZipFile(self.fh, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                                   allowZip64=True)
        self.written: set[str] = set()
        self.seconds = 0.0
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.finished = False

    def _add(self, arrays: dict[str, np.ndarray]) -> None:
        t0 = time.perf_counter()
        try:
            for name, a in arrays.items():
                with self.zip.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asanyarray(a))
                self.written.add(name)
        finally:
            self.seconds += time.perf_counter() - t0

    def start(self, arrays: dict[str, np.ndarray]) -> None:
        def work():
            try:
                self._add(arrays)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread by finish()
                self.error = exc

        self.thread = threading.Thread(target=work, name="sensreport-write-arrays", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def finish(self, arrays: dict[str, np.ndarray]) -> float:
        self.join()
        if self.error is not None:
            raise self.error
        self._add({name: a for name, a in arrays.items() if name not in self.written})
        self.zip.close()
        self.fh.close()
        self.finished = True
        return self.seconds

    def discard(self) -> None:
        """After a failure: wait for the thread (never unlink a file another thread still
        writes), close and remove the file; nothing once finished. Never fails."""
        self.join()
        if self.finished:
            return
        try:
            self.zip.close()  # after an error it may fail: the file goes anyway
        except (OSError, ValueError):
            pass
        self.fh.close()
        try:
            self.path.unlink()
        except OSError:
            pass


def _write_file(path: str, writer, *args) -> None:
    with open(path, "wb") as fh:
        writer(fh, *args)


def _write(result: RunResult, out_dir: Path, key: str, plotlyjs: str, templates: Path | None,
           compress: bool, arrays: ArraysFile | None = None) -> dict[str, Path]:
    """Stage every file under a temporary name, then rename them into place (report.html last).

    arrays.npz is written in a thread while the report renders and is written (``arrays``:
    the run started it earlier, when the derivatives were ready; the arrays it has not
    written yet are added); the timings of each step go into ``result.timings``
    (``render_report``, ``write_report``, ``write_arrays``) before results.json is
    encoded, so the file holds them; ``write_results`` is added afterwards
    (``RunResult.timings`` only).
    """
    from .report import render_report

    staged: dict[str, tuple[Path, Path]] = {}
    current = out_dir

    def stage_file(name: str) -> str:
        nonlocal current
        current = out_dir / name
        fd, tmp = staged_file(current)
        os.close(fd)
        staged[name] = (Path(tmp), current)
        return tmp

    timings = result.timings
    try:
        everything = result.arrays()
        if arrays is None:  # not started by the run: the arrays are written while the report renders
            current = out_dir / "arrays.npz"
            arrays = start_arrays(out_dir, everything, compress)
        staged["arrays.npz"] = (arrays.path, out_dir / "arrays.npz")
        t0 = time.perf_counter()
        html = render_report(result, plotlyjs=plotlyjs, templates=templates)
        timings["render_report"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _write_file(stage_file("report.html"), lambda fh: fh.write(html.encode("utf-8")))
        del html
        timings["write_report"] = time.perf_counter() - t0
        current = out_dir / "arrays.npz"
        timings["write_arrays"] = arrays.finish(everything)
        t0 = time.perf_counter()
        doc = result.to_dict()
        _write_file(stage_file("results.json"), lambda fh: dump_json(doc, fh))
        write_results = time.perf_counter() - t0
        with deadline.committing():
            # the .npy arrays first and report.html last: the report never names a file
            # that is not there yet
            for m in result.methods.values():
                if m.path is not None and m.path.exists() and m.path.parent != out_dir:
                    current = out_dir / m.path.name
                    os.replace(m.path, current)
                    m.path = current
            for name in ("arrays.npz", "results.json", "report.html"):
                tmp_path, current = staged[name]
                os.replace(tmp_path, current)
        timings["write_results"] = write_results
    except OSError as exc:
        raise output_error(exc, current, key) from None
    finally:
        with deadline.shield():
            if arrays is not None:
                arrays.discard()  # waits for its thread: never unlink a file another thread still writes
            for tmp_path, _ in staged.values():
                if tmp_path.exists():
                    tmp_path.unlink()
    return {final.name: final for _, final in staged.values()}


def start_arrays(out_dir: Path, arrays: dict[str, np.ndarray], compress: bool = False) -> ArraysFile:
    """Start writing ``arrays`` into a temporary arrays.npz in ``out_dir`` (see :class:`ArraysFile`)."""
    fd, tmp = staged_file(out_dir / "arrays.npz")
    os.close(fd)
    try:
        file = ArraysFile(Path(tmp), compress)
    except BaseException:
        os.unlink(tmp)
        raise
    file.start(arrays)
    return file


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
        self.claimed: Path | None = None  # the folder being written (claimed once)
        self.arrays: ArraysFile | None = None  # arrays.npz, started before the report is written

    # ---------------------------------------------------------------- folders
    def __enter__(self) -> "Outputs":
        if self.writes:
            self.clean()
        return self

    def __exit__(self, exc_type, exc, tb):
        with deadline.shield():
            if self.arrays is not None:
                self.arrays.discard()  # a run that failed before writing: its arrays.npz goes
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
    def _claim_once(self) -> Path:
        """The folder this run writes: claimed (created) on first use; after a failure the
        folders this created are removed again when empty."""
        if self.claimed is None:
            fresh = _first_missing(self.out_dir)
            self.claimed = self.claim()
            if self.created is None and fresh is not None:
                self.created = fresh
        return self.claimed

    def begin_arrays(self, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
        """Start writing ``arrays`` (the computed ones, see
        :func:`~sensreport.results.computed_arrays`) as arrays.npz under a temporary name,
        in a thread, while the run goes on; :meth:`write` finishes it. Nothing is written
        when this run writes no files."""
        if not self.writes:
            return
        out_dir = self._claim_once()
        try:
            self.arrays = start_arrays(out_dir, arrays, compress)
        except OSError as exc:
            raise output_error(exc, out_dir / "arrays.npz", self.key) from None

    def write(self, result: RunResult, plotlyjs: str = "inline", *, templates: Path | None = None,
              compress_arrays: bool = False) -> Path:
        """Render, write atomically, move ``latest``; return the folder written.

        The folder is created first (arrays.npz is written while the report renders, or
        since :meth:`begin_arrays`); after a failure the folders this created are removed
        again when empty.
        """
        deadline.stage("writing the report")
        out_dir = self._claim_once()
        arrays, self.arrays = self.arrays, None  # _write finishes it, or removes it on failure
        _write(result, out_dir, self.key, plotlyjs, templates, compress_arrays, arrays)
        self.created = None  # written: it stays, whatever happens next
        if self.latest is not None:
            point_latest(self.latest, out_dir, self.key)
        return out_dir


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None: all do)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


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
