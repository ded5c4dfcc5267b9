"""Files written safely: folders created with a clear error, text written atomically
(a temporary file in the same folder, then a rename), so a failure never leaves half a file.

Every temporary file or folder sensreport creates is named
``.<name>.sensreport-<host>-<pid>-<random>.tmp`` (``<host>``: 8 hex digits of the host
name's sha1). A run that is killed cannot remove its own; the next run writing into the
same folder recognises them by that name and removes those whose process is gone
(:func:`remove_stale`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from .errors import ComputeError, InputError, SensreportError

#: The name of every temporary file and folder sensreport creates.
TEMP_NAME = re.compile(r"^\.(?P<label>.+)\.sensreport-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[^/]*\.tmp$")
#: Temporary entries of another host are stale after this many seconds (their process
#: cannot be asked whether it still runs).
STALE_AFTER = 24 * 3600
#: errno values that mean the disk (or the quota) is full.
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def make_dir(path: Path, key: str = "report.dir") -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, path, key, "cannot create the output folder") from None


def atomic_write_text(path: Path, text: str, key: str = "--out") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    make_dir(path.parent, key)
    tmp = None
    try:
        fd, tmp = staged_file(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8"))
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(exc, path, key) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def output_error(exc: OSError, path: Path, key: str, what: str = "cannot write") -> SensreportError:
    """The error to raise for an ``OSError`` while writing ``path``: a full disk is a
    :class:`ComputeError` (exit 3; the same input succeeds with space), anything else
    (permissions, a read-only file system, a file where a folder should be) an
    :class:`InputError` naming the output key (exit 2)."""
    reason = exc.strerror or str(exc)
    if exc.errno in NO_SPACE:
        return ComputeError(key, f"{what} {path}: {reason}. Nothing was written; the previous report is unchanged. "
                                 "Free some space and run again.")
    return InputError(key, f"{what} {path}: {reason}. Nothing was written; the previous report is unchanged.")


def temp_prefix(label: str) -> str:
    """The start of a temporary name for ``label`` (a file's final name, ``arrays``, ...)."""
    return f".{label}.sensreport-{host_tag()}-{os.getpid()}-"


def staged_file(final: Path) -> tuple[int, str]:
    """A temporary file beside ``final`` (descriptor, path), with the permissions of a new
    file (``mkstemp`` creates 0600; a report is meant to be shared)."""
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final.name), suffix=".tmp", dir=final.parent)
    os.chmod(tmp, 0o666 & ~umask())
    return fd, tmp


def staging_dir(parent: Path | None, label: str = "arrays") -> Path:
    """A temporary folder in ``parent`` (the system's temporary folder when None)."""
    return Path(tempfile.mkdtemp(prefix=temp_prefix(label), suffix=".tmp", dir=parent))


def temp_link(folder: Path, label: str) -> Path:
    """A name for a temporary symbolic link in ``folder`` (links cannot be made by mkstemp)."""
    return Path(folder) / f"{temp_prefix(label)}{os.urandom(4).hex()}.tmp"


def is_temp(name: str) -> bool:
    """Whether ``name`` is one of sensreport's temporary names."""
    return TEMP_NAME.match(name) is not None


def is_stale(path: Path) -> bool:
    """Whether ``path`` is a temporary entry left by a process that is gone: one of this
    host whose process no longer runs, or one of another host older than a day."""
    m = TEMP_NAME.match(Path(path).name)
    if m is None:
        return False
    if m["host"] == host_tag():
        return not pid_alive(int(m["pid"]))
    try:
        return time.time() - os.lstat(path).st_mtime > STALE_AFTER
    except OSError:
        return False


def remove_stale(folder: Path) -> list[Path]:
    """Remove the stale temporary files and folders directly in ``folder``; return them.

    Never fails: a folder that cannot be listed or an entry that cannot be removed is
    left as it is."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if not is_stale(path):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:
        return False
    return True


def host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
