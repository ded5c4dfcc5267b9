"""sensreport's place in the ``logging`` tree, and TensorFlow kept quiet only during a run.

sensreport logs to the ``sensreport`` logger (and its children); as a library it adds
only a ``NullHandler``, so nothing is printed unless the application configures
logging (``logging.basicConfig(level=logging.INFO)`` shows a run's stages).

TensorFlow's Python logger (``tensorflow``) is set to ERROR while a run computes, so
retracing notices and AutoGraph chatter do not bury the run's own messages, and put
back as it was when the run ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger("sensreport")  # its NullHandler is added on `import sensreport`


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``sensreport`` logger, or its child ``sensreport.<name>``."""
    return logger.getChild(name) if name else logger


@contextlib.contextmanager
def quiet_tensorflow(level: int = logging.ERROR) -> Iterator[None]:
    """TensorFlow's Python logger at ``level`` inside the block, restored after it.

    The ``tensorflow`` logger is a plain ``logging`` logger that exists before TensorFlow
    is imported, so this works whether or not the run is the one that imports it.
    """
    tf_logger = logging.getLogger("tensorflow")
    saved = tf_logger.level
    if tf_logger.getEffectiveLevel() < level:
        tf_logger.setLevel(level)
    try:
        yield
    finally:
        tf_logger.setLevel(saved)
