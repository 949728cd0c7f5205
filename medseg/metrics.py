"""Per-case overlap and surface metrics on a scan's own grid, computed with MONAI."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelScore:
    """One label's scores for one case.

    Args:
        dice: Dice coefficient; NaN when the reference has no such voxels.
        hd95_mm: 95th-percentile Hausdorff distance in mm; NaN when either mask is empty.
        predicted_ml: predicted volume in millilitres.
        reference_ml: reference volume in millilitres.
    """

    dice: float
    hd95_mm: float
    predicted_ml: float
    reference_ml: float

    @property
    def false_positive(self) -> bool:
        """True when the label was predicted although the reference has none of it."""
        return self.reference_ml == 0 and self.predicted_ml > 0


def score_label(prediction: np.ndarray, reference: np.ndarray, spacing: tuple[float, ...]) -> LabelScore:
    """Dice and HD95 of two binary ``(X, Y, Z)`` masks on the same grid with voxel ``spacing`` (mm)."""
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    voxel_ml = float(np.prod(spacing)) / 1000.0
    predicted, expected = int(prediction.sum()), int(reference.sum())
    pred = torch.from_numpy(np.ascontiguousarray(prediction, dtype=bool))[None, None]
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=bool))[None, None]
    dice = math.nan
    if expected:
        dice = float(compute_dice(pred, ref, include_background=True, ignore_empty=True)[0, 0])
    hd95 = math.nan
    if predicted and expected:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hd95 = float(
                compute_hausdorff_distance(pred, ref, include_background=True, percentile=95, spacing=list(spacing))[
                    0, 0
                ]
            )
    return LabelScore(dice, hd95, predicted * voxel_ml, expected * voxel_ml)


def score_case(
    prediction: np.ndarray, reference: np.ndarray, labels: dict[int, str], spacing: tuple[float, ...]
) -> dict[str, LabelScore]:
    """Scores of each foreground label (value > 0) of two label maps, keyed by label name."""
    return {
        name: score_label(prediction == value, reference == value, spacing) for value, name in labels.items() if value
    }
