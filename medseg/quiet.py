"""Keep libraries' warnings off the terminal: medseg reports each problem itself, in one line.

pydicom, highdicom, nibabel, torchvision and optional GPU codecs warn about every oddity of a
real-world file or install, often several lines each. The command line calls :func:`quiet_libraries`
unless ``--debug`` asks for everything.
"""

from __future__ import annotations

import logging
import warnings

# Loggers of libraries that log (rather than warn) about the files they read.
NOISY_LOGGERS = ("pydicom", "highdicom")


def quiet_libraries() -> None:
    """Drop Python warnings, and log lines below ERROR of :data:`NOISY_LOGGERS`, for the rest of the process."""
    warnings.simplefilter("ignore")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
