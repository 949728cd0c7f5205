"""Keep the engines' error lines out of a training process's output: the failure is reported in one line."""

from __future__ import annotations

import logging

from ignite.engine import Engine

QUIET_FAILURES = {"_target_": "medseg.training.quiet.QuietFailures"}


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


class QuietFailures:
    """A trainer handler that drops every log record at ERROR or above, from every handler there is.

    When a process fails, ignite logs the exception, MONAI's ``StatsHandler`` logs it again with its
    traceback, and the other ranks log the broken connection to it; the agent reports the failure
    in one line instead (:mod:`medseg.training.agent`). It attaches after the trainer's own
    handlers, so that the log handlers they made are covered. Meant for ``torchrun``'s processes,
    which run nothing else.
    """

    def attach(self, engine: Engine) -> None:
        """Add the filter to the handlers of the root logger and of every logger made so far."""
        loggers = [logging.root, *logging.root.manager.loggerDict.values()]
        below_error = _BelowError()
        for logger in loggers:
            for handler in getattr(logger, "handlers", []):
                handler.addFilter(below_error)
