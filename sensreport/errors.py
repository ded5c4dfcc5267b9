"""The exceptions sensreport raises, and the exit code each maps to.

::

    SensreportError            any failure sensreport explains itself      (exit 4)
    ├── SpecError              the YAML spec is malformed or invalid       (exit 2)
    ├── InputError             a model file, point file or array is unusable,
    │                          an output folder cannot be written           (exit 2)
    └── ComputeError           a computation could not produce its result:
                               memory, timeout, no space left on the disk   (exit 3)

The CLI prints ``str(error)`` (one paragraph, no traceback) and exits with
``error.exit_code``. Errors raised after the spec was read name its key; the CLI adds
the spec file and the key's line (:meth:`SensreportError.at`). A run whose derivatives
came out but contain a failed method or non-finite values is not an exception: it
writes its report (exit 3 for a failed method, 1 for the failing ``nonfinite`` check).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_COMPUTE_FAILED = 3
EXIT_INTERNAL = 4


class SensreportError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code = EXIT_INTERNAL
    key: str = ""
    message: str = ""
    line: int | None = None

    def at(self, line: int | None, path: str | None = None) -> "SensreportError":
        """Say where in the spec file the error's key is (``spec.yaml:7: inputs.points.csv: ...``);
        returns the error itself. Errors that already have a line, or no key, are unchanged."""
        if self.key and self.line is None and (line is not None or path):
            self.line = line
            self.args = (Problem(self.key, self.message, line).format(path),)
        return self


@dataclass(frozen=True)
class Problem:
    """One problem found in a spec: where it is and what is wrong."""

    key: str
    message: str
    line: int | None = None

    def format(self, path: str | None = None) -> str:
        where = ""
        if path:
            where = f"{path}:{self.line}: " if self.line else f"{path}: "
        elif self.line:
            where = f"line {self.line}: "
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"


class SpecError(SensreportError):
    """Raised by :mod:`sensreport.spec` when a spec cannot be used; lists every problem."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problems: list[Problem], path: str | None = None):
        self.problems = list(problems)
        self.path = path
        lines = [p.format(path) for p in self.problems]
        head = f"The spec has {len(lines)} problem{'s' if len(lines) != 1 else ''}:"
        super().__init__(head + "\n  " + "\n  ".join(lines))


class InputError(SensreportError):
    """Raised when a model or point file named by a spec key (or an output folder, a
    baseline) cannot be used."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class ComputeError(SensreportError):
    """Raised when a computation cannot run at all or cannot finish: it would not fit in
    memory, ran past its timeout, or its outputs found no space on the disk."""

    exit_code = EXIT_COMPUTE_FAILED

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)
