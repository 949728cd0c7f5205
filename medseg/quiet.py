"""Keep libraries' warnings off the terminal: medseg reports each problem itself, in one line.

pydicom, highdicom, nibabel, torchvision and optional GPU codecs warn about every oddity of a
real-world file or install, often several lines each. The command line calls :func:`quiet_libraries`
unless ``--debug`` asks for everything, and so does each process of a training run on several.
"""

from __future__ import annotations

import logging
import warnings

# Loggers of libraries that log (rather than warn) about the files they read, or about optional
# packages they find missing: torch's ONNX exporter (torchvision), MONAI's DICOM plugin (nvImageCodec).
NOISY_LOGGERS = (
    "pydicom",
    "highdicom",
    "torch.onnx._internal.exporter._registration",  # its own level: torch resets the level of "torch.onnx"
    "monai.data.nvimgcodec_pydicom_plugin",
)


def quiet_libraries() -> None:
    """Drop Python warnings, and log lines below ERROR of :data:`NOISY_LOGGERS`, for the rest of the process."""
    warnings.simplefilter("ignore")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
