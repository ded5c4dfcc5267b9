"""The CLI's time limit: the run works in a child process that the CLI kills at the limit.

A TensorFlow op, a model that never returns or a callable file that sleeps on import
cannot be interrupted inside the process that runs them, but a child process can always
be killed. With ``--timeout`` (or ``execution.timeout``) ``sensreport run`` starts
``python -m sensreport.cli run ... --worker-fd N``, relays its output, and hears over a
socket which stage it is in and when it wants to put its files into place:

* ``stage <name>``: the stage the child enters (named in the timeout message);
* ``commit``: the child has written its temporary files and asks to rename them into
  place; the supervisor answers ``ok`` before the limit (and then lets the renames
  finish), after it kills the child instead, so a run past its limit writes nothing;
* ``committed``: the renames are done.

After a kill the supervisor removes the child's temporary files and folders (they are
stale once their process is gone, see :mod:`sensreport.files`). When the supervisor
itself goes away, the child notices the closed socket and exits.
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from . import deadline
from .errors import ComputeError, EXIT_COMPUTE_FAILED

#: Seconds a commit granted before the limit may take after it (renames take milliseconds).
COMMIT_GRACE = 30.0


class ParentLink(deadline.Watch):
    """The child's end: reports stages and asks before committing (``--worker-fd``)."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.replies: list[str] = []
        self.answered = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._listen, name="sensreport-supervisor-link", daemon=True).start()

    def _send(self, text: str) -> None:
        with self.lock:
            try:
                self.sock.sendall(text.encode("utf-8", "replace") + b"\n")
            except OSError:
                os._exit(EXIT_COMPUTE_FAILED)  # the supervisor is gone: so is the run

    def _listen(self) -> None:
        buf = b""
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                os._exit(EXIT_COMPUTE_FAILED)  # the supervisor is gone (killed): stop
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.replies.append(line.decode())
                self.answered.set()

    def stage(self, name: str) -> None:
        super().stage(name)
        self._send(f"stage {name}")

    def begin_commit(self) -> None:
        self._send("commit")
        self.answered.wait()  # "ok", or the supervisor kills this process

    def end_commit(self) -> None:
        self._send("committed")


def supervise(args: list[str], seconds: float, on_timeout: Callable[[str], ComputeError],
              cleanup: Callable[[], None], stdout=None, stderr=None) -> int:
    """Run ``sensreport <args>`` in a child process for at most ``seconds``.

    Returns the child's exit code. Past the limit (or when the child dies of a signal)
    the child's process group is killed, ``cleanup()`` runs and the error
    ``on_timeout(stage)`` (or one naming the signal) is raised.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    ours, theirs = socket.socketpair()
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent)  # the same sensreport in the child
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-m", "sensreport.cli", *args, "--worker-fd", str(theirs.fileno())]
    streams, relays = [], []
    for stream in (stdout, stderr):
        try:
            stream.flush()
            streams.append(stream.fileno())  # a real file: the child writes to it directly
        except (AttributeError, OSError, ValueError):
            streams.append(subprocess.PIPE)  # e.g. click's test runner: relay the text
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=streams[0], stderr=streams[1], env=env,
                            pass_fds=(theirs.fileno(),), start_new_session=True)
    theirs.close()
    for pipe, stream in ((proc.stdout, stdout), (proc.stderr, stderr)):
        if pipe is not None:
            t = threading.Thread(target=_relay, args=(pipe, stream), daemon=True)
            t.start()
            relays.append(t)
    previous = _on_sigterm()
    stage, granted, started, buf = "starting", False, time.monotonic(), b""
    try:
        while True:
            left = started + seconds - time.monotonic() + (COMMIT_GRACE if granted else 0.0)
            if left <= 0:
                _kill(proc, relays)
                cleanup()
                raise on_timeout(stage)
            ready, _, _ = select.select([ours], [], [], min(left, 1.0))
            if not ready:
                continue
            data = ours.recv(4096)
            if not data:  # the child has closed its end: it is exiting
                code = proc.wait()
                for t in relays:
                    t.join(5)
                if code < 0:
                    cleanup()
                    name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
                    raise ComputeError("", f"the run was killed by signal {name} while {stage}. Nothing was written; "
                                           "the previous report is unchanged.")
                return code
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                word, _, rest = line.decode("utf-8", "replace").partition(" ")
                if word == "stage":
                    stage = rest
                elif word == "commit":
                    if time.monotonic() - started < seconds:
                        granted = True
                        ours.sendall(b"ok\n")
                    else:
                        _kill(proc, relays)
                        cleanup()
                        raise on_timeout(stage)
    except BaseException:
        if proc.poll() is None:
            _kill(proc, relays)
            cleanup()
        raise
    finally:
        ours.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _kill(proc: subprocess.Popen, relays: list[threading.Thread]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for t in relays:
        t.join(5)


def _relay(pipe, stream) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in iter(lambda: pipe.read1(65536), b""):
        try:
            stream.write(decoder.decode(chunk))
            stream.flush()
        except (OSError, ValueError):
            pass
    pipe.close()


def _on_sigterm():
    """A SIGTERM to the supervisor (a scheduler stopping the job) stops the child too."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)
