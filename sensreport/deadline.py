"""Time limits (``--timeout``, ``execution.timeout``) and the stage a run is in.

The stages say where they are with :func:`stage`; the writing stage renames its files
into place inside :func:`committing`. Whoever watches the run hears both:

* :class:`Deadline`, the Python API's limit (``sensreport.run(timeout=...)``): every
  :func:`stage` checks the time, and in the main thread (when nothing else uses
  ``SIGALRM``) an alarm interrupts Python code that runs past the limit: a model traced
  in an endless Python loop, a callable file that sleeps on import. It cannot interrupt
  a TensorFlow op or other native code that never returns (Python runs signal handlers
  only between bytecodes of the main thread), nor anything in another thread; the run
  then stops at the next stage boundary, if it reaches one.
* the CLI's supervisor (:mod:`sensreport.supervisor`), which runs the work in a child
  process and kills it at the limit, whatever it is doing.

Either way, a run past its limit writes nothing: a commit starts only before the limit,
and once it has started it is allowed to finish (renames take milliseconds).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

from .errors import ComputeError

_watches: list["Watch"] = []
_shielded = 0


def stage(name: str) -> None:
    """Say that the run now enters stage ``name`` (``loading the model``, ...)."""
    for w in list(_watches):
        w.stage(name)


@contextlib.contextmanager
def committing():
    """Around the renames that put a run's files into place: every watch may refuse to
    start (the limit has passed), none interrupts it once it has started."""
    entered = []
    with shield():
        try:
            for w in list(_watches):
                w.begin_commit()
                entered.append(w)
            yield
        finally:
            for w in reversed(entered):
                w.end_commit()


@contextlib.contextmanager
def shield():
    """No alarm interrupts the code inside (clean-up, renames); the time is still checked
    at the next :func:`stage`."""
    global _shielded
    _shielded += 1
    try:
        yield
    finally:
        _shielded -= 1


class Watch:
    """Something that hears a run's stages and commit (a context manager while it listens)."""

    current = "starting"

    def stage(self, name: str) -> None:
        self.current = name

    def begin_commit(self) -> None:
        pass

    def end_commit(self) -> None:
        pass

    def __enter__(self):
        _watches.append(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self in _watches:
            _watches.remove(self)
        return False


class Expired(BaseException):
    """Raised by a :class:`Deadline`'s alarm. A BaseException, so that the ``except
    Exception`` of model code and fallbacks do not swallow it; :class:`Deadline` turns
    it into a :class:`~sensreport.errors.ComputeError`."""


def timeout_message(seconds: float, where: str) -> str:
    return (f"the run did not finish within {seconds:g} s and was stopped while {where}. Nothing was "
            "written; the previous report is unchanged. Give it more time, or fewer points or methods.")


class Deadline(Watch):
    """The Python API's time limit of ``seconds``, named by ``key`` in its error."""

    def __init__(self, seconds: float, key: str = "execution.timeout"):
        self.seconds = float(seconds)
        self.key = key
        self.start = time.monotonic()
        self.committed = False
        self._previous = None
        self._armed = False

    def expired(self) -> bool:
        return time.monotonic() - self.start >= self.seconds

    def error(self) -> ComputeError:
        return ComputeError(self.key, timeout_message(self.seconds, self.current))

    def check(self) -> None:
        if not self.committed and self.expired():
            raise self.error()

    def stage(self, name: str) -> None:
        super().stage(name)
        self.check()

    def begin_commit(self) -> None:
        self.check()
        self.committed = True  # from here on the run finishes

    def _alarm(self, signum, frame) -> None:
        if _shielded or self.committed:
            return  # the next stage checks the time
        raise Expired()

    def __enter__(self):
        super().__enter__()
        self.start = time.monotonic()
        if (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)):
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 1e-3))
            self._armed = True
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._armed = False
        super().__exit__(exc_type, exc, tb)
        if exc_type is not None and issubclass(exc_type, Expired):
            raise self.error() from None
        return False
