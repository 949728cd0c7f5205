"""Keep the engines' log lines out of a quiet run: medseg reports a failure in one line of its own.

An ignite engine that fails logs the exception, and MONAI's ``StatsHandler`` logs it again with its
traceback, before the engine raises it; medseg then reports the exception itself (``error: ...`` or
``interrupted``), so those lines only repeat it, at length (about a hundred of them after Ctrl-C).
They stay hidden unless medseg's logger is at DEBUG, as ``medseg --debug`` sets it; from Python::

    logging.getLogger("medseg").setLevel(logging.DEBUG)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

DEBUG_LOGGER = "medseg"  # at DEBUG, the engines' log lines are shown
DEBUG_VARIABLE = "MEDSEG_DEBUG"  # "1" in the environment of child processes of a run with --debug


@contextmanager
def engine_logs_silenced() -> Iterator[None]:
    """Drop every log record while the block runs, unless medseg's logger is at DEBUG."""
    if logging.getLogger(DEBUG_LOGGER).isEnabledFor(logging.DEBUG):
        yield
        return
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)


def debug_environment() -> dict[str, str]:
    """Environment variables that hand ``--debug`` on to child processes (see :func:`inherit_debug`)."""
    return {DEBUG_VARIABLE: "1"} if logging.getLogger(DEBUG_LOGGER).isEnabledFor(logging.DEBUG) else {}


def inherit_debug() -> bool:
    """In a child process, set medseg's logger to DEBUG when the parent ran with ``--debug``; whether it did."""
    debug = os.environ.get(DEBUG_VARIABLE) == "1"
    if debug:
        logging.getLogger(DEBUG_LOGGER).setLevel(logging.DEBUG)
    return debug
