"""Quieting what native libraries write straight to standard error (file descriptor 2).

TensorFlow prints start-up notices at import, and LiteRT an INFO line on its first run, whatever
TF_CPP_MIN_LOG_LEVEL says. The predict command's standard error must hold only its sentences about the
files, so those moments run with the descriptor sent to /dev/null. Python exceptions still show: they are
printed after the descriptor is restored. Process-wide: another thread's stderr output in those
milliseconds is lost too, so use it only around start-up steps.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Send what is written to file descriptor 2 to /dev/null until the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
