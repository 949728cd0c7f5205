"""stderr shared by threads: silence what C and C++ libraries print there without losing medseg's own lines.

ITK's numerics library (VNL) writes to file descriptor 2 whatever its warning switch says, so a call
into it is silenced by pointing descriptor 2 at ``/dev/null`` for the call's duration. That
descriptor is the whole process's: in a pipelined run, an ``error:`` line that another thread wrote
meanwhile went to ``/dev/null`` too, and two threads silencing at once could restore each other's
``/dev/null``. So silencing and medseg's own writes to stderr take one lock: a line waits for a
silenced call to end, and silenced calls run one at a time.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()  # re-entrant: a silenced call may log, or nest another


@contextmanager
def c_output_silenced() -> Iterator[None]:
    """Point file descriptor 2 at ``/dev/null`` while the block runs; medseg's lines wait for it to end."""
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def write_line(line: str) -> None:
    """Write ``line`` and a newline to stderr at once, never while C output is silenced."""
    with _LOCK:
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()
