"""Files written safely: folders created with a clear error, text written atomically
(a temporary file in the same folder, then a rename), so a failure never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def make_dir(path: Path, key: str = "report.dir") -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(key, f"cannot create the output folder {path}: {exc}") from None


def atomic_write_text(path: Path, text: str, key: str = "--out") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    make_dir(path.parent, key)
    fd, tmp = staged_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def staged_file(final: Path) -> tuple[int, str]:
    """A temporary file beside ``final`` (descriptor, path), with the permissions of a new
    file (``mkstemp`` creates 0600; a report is meant to be shared)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.chmod(tmp, 0o666 & ~umask())
    return fd, tmp


def umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
