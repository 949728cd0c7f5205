"""Defaults that the Python API, the command line and the library share.

This module imports nothing, so that ``import medseg`` and ``medseg --help`` can name these values
without loading numpy, scipy or MONAI.
"""

DEFAULT_MIN_LESION_ML = 0.1  # lesions smaller than this (mL) are counted, not listed
DEFAULT_PREFETCH = 2  # scans read ahead of the network, and as many waiting for the writer
