"""What every engine module needs from its surroundings: TensorFlow (imported on first
use), the memory available, zero-copy views of results, and readable error lines."""

from __future__ import annotations

import gc
import os
import sys
import time

import numpy as np

from ..errors import InputError

#: Default share of the machine's available memory one computation may use.
DEFAULT_MEMORY_FRACTION = 0.25

#: What to install when TensorFlow is missing (the distribution is the user's choice).
TENSORFLOW_HINT = (
    "TensorFlow is not installed in this environment. Install the build you want beside sensreport: "
    "pip install 'sensreport[cpu]' (tensorflow-cpu), pip install 'sensreport[tf]' (tensorflow, which "
    "serves GPUs with its own [and-cuda] extra), or your own TensorFlow 2 build."
)


class NotDifferentiableError(Exception):
    """Raised while tracing when TensorFlow finds no gradient path to the inputs."""


_TF = None

#: TensorFlow's switch to its BFC allocator for CPU memory (see :func:`tensorflow`).
ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"


def tensorflow(threads: int = 0):
    """TensorFlow, imported on first use (``sensreport --help`` must stay instant).

    ``threads > 0`` sets the sizes of TensorFlow's intra- and inter-op thread pools; on
    the first call that happens before its first tensor is made (TensorFlow refuses
    later; a Ray worker passes its share of the cores here).

    Importing it changes nothing a caller can see: ``TF_CPP_MIN_LOG_LEVEL`` and
    ``TF_CPU_ALLOCATOR_USE_BFC`` are set (when unset) only while TensorFlow is imported and
    put back after, and TensorFlow's Python logger is left alone (a run quiets it while it
    runs: :func:`sensreport.logs.quiet_tensorflow`).

    The CPU allocator: TensorFlow's default one takes every large tensor from the system
    and gives it back when freed, so each chunk's Jacobian (tens of MB) is faulted into
    memory page by page again; its BFC allocator keeps the freed memory for the next chunk
    (:data:`ALLOCATOR_ENV`). TensorFlow reads the variable once, when its first tensor is
    made, so that is done before the variable is put back. A process that imported
    TensorFlow itself, or set the variable, keeps its own allocator.
    """
    global _TF
    if _TF is None and "tensorflow" not in sys.modules:  # every engine call asks: the set-up runs once
        # TensorFlow's C++ logging reads TF_CPP_MIN_LOG_LEVEL once, while it is imported: set
        # it for the import only (its INFO lines stay off for the process, the environment
        # is as the caller left it). The C++ start-up banner ignores the variable and would
        # land in a scheduler's captured output: silence stderr while importing. Import
        # errors still surface as Python exceptions after stderr is restored.
        unset = [name for name in ("TF_CPP_MIN_LOG_LEVEL", ALLOCATOR_ENV) if name not in os.environ]
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault(ALLOCATOR_ENV, "true")
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        # The import makes some 300,000 objects that stay alive as long as the process: the
        # cyclic garbage collector's passes over them while it runs found nothing and took
        # 0.4 s of its 2-3 s. It is paused during the import. When the objects alive before
        # are frozen (gc.freeze: a run freezes them while it runs, the CLI for good),
        # TensorFlow's join them, instead of being walked again as young objects (0.2 s).
        collecting = gc.isenabled()
        gc.disable()
        try:
            import tensorflow

            if threads > 0:
                _set_threads(tensorflow, threads)
            tensorflow.zeros([1])  # the first tensor: TensorFlow makes its CPU allocator now
            if gc.get_freeze_count():
                gc.freeze()
        except ImportError:
            raise InputError("model", TENSORFLOW_HINT) from None
        finally:
            if collecting:
                gc.enable()
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)
            for name in unset:
                os.environ.pop(name, None)
    if _TF is None:
        import tensorflow as tf

        _TF = tf
    if threads > 0 and not _threads_set(_TF, threads):
        _set_threads(_TF, threads)  # later than the first tensor (imported by the caller): TensorFlow may refuse
    return _TF


def _threads_set(tf, threads: int) -> bool:
    return (tf.config.threading.get_intra_op_parallelism_threads() == threads
            and tf.config.threading.get_inter_op_parallelism_threads() == threads)


def _set_threads(tf, threads: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


#: The largest block glibc's malloc lets raise its thresholds (32 MiB on 64-bit), less
#: a page for its header: see :func:`keep_freed_memory`.
_KEEP_FREED_BYTES = (32 << 20) - (8 << 10)


def keep_freed_memory() -> None:
    """Let this process's memory allocator keep memory it frees for the next request.

    glibc's malloc serves a request of 128 KiB or more with pages fresh from the system
    and gives them back when freed, and past a small threshold it trims what the heap
    has free too. Every block of the reductions (a few MiB of float64 temporaries) then
    lands in pages the kernel must map and zero again: 0.4 ms per MiB here, a third of
    the per-point statistics' time at 4,096 points (95,000 page faults). glibc raises
    both thresholds itself once the program frees a block it took from the system, of
    up to 32 MiB (to that size, and to twice it for the trim): taking and freeing one such
    block does that at the start of a run, so later temporaries of up to 32 MiB reuse
    memory already mapped (at most 64 MiB of it kept free per arena). Nothing is
    touched; with another allocator, it changes nothing.
    """
    np.empty(_KEEP_FREED_BYTES, dtype=np.uint8)


#: (time.monotonic(), bytes) of the last reading of available memory.
_AVAILABLE: tuple[float, int] | None = None
#: How long a reading of available memory is reused: a run asks once per engine call,
#: and reading /proc/meminfo costs ~20 us each time.
AVAILABLE_MEMORY_TTL = 1.0


def available_memory() -> int:
    """Bytes of memory available to this process now (read at most once a second)."""
    global _AVAILABLE
    now = time.monotonic()
    if _AVAILABLE is not None and now - _AVAILABLE[0] < AVAILABLE_MEMORY_TTL:
        return _AVAILABLE[1]
    try:
        import psutil

        value = int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a dependency; be safe anyway
        value = 8 << 30
    _AVAILABLE = (now, value)
    return value


def default_memory_budget() -> int:
    """The default memory budget: a quarter of the memory available now."""
    return int(available_memory() * DEFAULT_MEMORY_FRACTION)


def first_line(exc: BaseException) -> str:
    """The line of an exception's text that says what went wrong.

    TensorFlow wraps errors raised while tracing in an "in user code:" preamble with
    a stack; the cause is on the last non-empty line.
    """
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text[:300]


def as_numpy(tensor) -> np.ndarray:
    """A read-only numpy view of an eager CPU tensor, without ``Tensor.numpy()``'s copy.

    ``np.asarray(memoryview(t))`` is TensorFlow's documented zero-copy route; the view
    keeps the tensor alive. Copying a large Jacobian costs up to a quarter of the
    kernel's own time (measured on the 1024 -> 10 MLP), and the fresh pages of every
    copy add page faults. Other devices or dtypes without a buffer protocol are copied.
    """
    try:
        return np.asarray(memoryview(tensor))
    except (TypeError, ValueError, NotImplementedError):
        return tensor.numpy()
