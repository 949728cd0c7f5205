"""Cheap checks that a scan and its mask are what the bundle expects: refuse the impossible, warn the odd.

A scan's grid is refused before any work when its voxels are of a size no CT or MR scanner makes.
Everything else is a warning, because unusual is not wrong: a scan whose intensities do not look
like the bundle's modality (a label map given as a CT, an MR given to a CT model), a mask with
nothing in it, or a label whose volume lies far outside the range the bundle's training data had
(``outputs.pred.volume_range_ml`` in its metadata). Warnings are printed and recorded in the case's
statistics, the run's table and its report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from medseg.errors import MedsegError
from medseg.labels import Label

# Voxel sides (mm) outside this range are refused: from micro-CT (about 0.01 mm) to the thickest
# slices clinical scanners write (well under 50 mm).
POSSIBLE_SPACING_MM = (0.01, 50.0)
# An integer scan with this many distinct values or fewer looks like a label map, not a scan.
LABEL_MAP_VALUES = 16
# Every CT of a body holds air (-1000 HU); a CT whose 1st percentile is above this is not in HU.
CT_AIR_HU = -500.0
# MR magnitude images are not negative; an MR whose 1st percentile is below this looks like a CT.
MR_NEGATIVE = -100.0
# A label volume this many times outside its training range is reported.
VOLUME_FACTOR = 2.0
# Every SAMPLE_STEP-th voxel along each axis is enough for percentiles and value counts.
SAMPLE_STEP = 4


def check_spacing(affine: np.ndarray, path: str | Path) -> None:
    """Refuse a grid whose voxel sides no scanner makes.

    Args:
        affine: ``(4, 4)`` voxel-to-world affine of the scan.
        path: the scan, named in the error.

    Raises:
        MedsegError: a voxel side below 0.01 mm or above 50 mm.
    """
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    low, high = POSSIBLE_SPACING_MM
    if not ((spacing >= low) & (spacing <= high)).all():
        sides = " x ".join(f"{side:g}" for side in spacing)
        raise MedsegError(f"voxel size {sides} mm is not a scan's (each side must lie in {low}-{high} mm)", path)


def scan_warnings(scan: np.ndarray, modality: str, *, three_d: bool) -> list[str]:
    """Warnings about a scan whose content does not look like the bundle's input.

    Args:
        scan: ``(X, Y, Z)`` intensities as the bundle reads them (HU for CT).
        modality: the bundle's modality, ``CT`` or ``MR``.
        three_d: the bundle is a 3D model (a single slice gives it no context).
    """
    found = []
    if three_d and min(scan.shape) == 1:
        found.append(f"has a single slice ({' x '.join(map(str, scan.shape))}): a 3D model sees no context")
    sample = np.asarray(scan[::SAMPLE_STEP, ::SAMPLE_STEP, ::SAMPLE_STEP]).ravel()
    values = np.unique(sample)
    if len(values) <= LABEL_MAP_VALUES and np.array_equal(values, np.round(values)):
        shown = ", ".join(f"{value:g}" for value in values[:8]) + (", ..." if len(values) > 8 else "")
        found.append(f"holds only {len(values)} distinct values ({shown}): a label map rather than a {modality} scan?")
        return found
    low, high = np.percentile(sample, [1, 99])
    if modality == "CT" and low > CT_AIR_HU:
        found.append(
            f"intensities ({low:g} to {high:g} at the 1st and 99th percentiles) are not a CT's in HU, "
            "which has air at -1000"
        )
    elif modality == "MR" and low < MR_NEGATIVE:
        found.append(f"1st percentile of the intensities is {low:g}: negative like a CT's in HU, not an MR's")
    return found


def mask_warnings(
    volumes_ml: Mapping[int, float], labels: Sequence[Label], ranges: Mapping[int, tuple[float, float]]
) -> list[str]:
    """Warnings about a mask: empty, or a label volume far outside the bundle's training range.

    Args:
        volumes_ml: volume (mL) of each foreground label value.
        labels: the bundle's labels (for names).
        ranges: ``(min, max)`` mL each label had in the training data; labels without one are not checked.
    """
    if not any(volumes_ml.values()):
        return ["the mask is empty: no label was found in this scan"]
    names = {label.value: label.name for label in labels}
    found = []
    for value, (low, high) in ranges.items():
        volume = volumes_ml.get(value, 0.0)
        if volume > VOLUME_FACTOR * high or (low > 0 and 0 < volume < low / VOLUME_FACTOR):
            found.append(
                f"{names.get(value, value)} volume {volume:.0f} mL is far outside the {low:.0f}-{high:.0f} mL "
                "seen in training: is this the scan the model is for?"
            )
    return found
