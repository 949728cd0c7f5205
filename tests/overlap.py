"""Overlap between boolean masks, for tests that compare segmentations."""

from __future__ import annotations

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks of one shape, not both empty."""
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))
