"""A dataset's fingerprint, and the bundle settings derived from it.

The fingerprint holds spacings, sizes, foreground intensities and class volumes; from it come the
target spacing, the patch size and the CT intensity normalisation.

The rules follow nnU-Net's: the target spacing is the median spacing, except that a much coarser
axis takes its 10th percentile; CT is clipped to the foreground's 0.5 and 99.5 percentiles and then
z-scored with the foreground's mean and standard deviation. MRI is z-scored per image over its
non-zero region by the bundle itself, so it needs no dataset-wide numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medseg.data.validate import CaseStats
from medseg.errors import MedsegError

ANISOTROPY_RATIO = 3.0
PATCH_MULTIPLE = 16


@dataclass(frozen=True)
class Fingerprint:
    """Summary statistics of a dataset's labelled training cases.

    Args:
        cases: number of cases summarised.
        channels: image channels.
        spacing_median: median voxel size (mm) per axis.
        spacing_p10: 10th percentile of the voxel size per axis.
        spacing_p90: 90th percentile of the voxel size per axis.
        shape_median: median image size (voxels) per axis.
        target_spacing: spacing to resample to (mm).
        shape_at_target: median image size after resampling to ``target_spacing``.
        foreground: per channel, the foreground intensity ``p00_5``, ``p99_5``, ``mean``, ``std``
            (mean and std of the clipped values) and ``median``; empty when no case has foreground.
        label_volume_ml: per label value, ``cases`` containing it and the ``median``, ``min`` and
            ``max`` volume in mL.
    """

    cases: int
    channels: int
    spacing_median: list[float]
    spacing_p10: list[float]
    spacing_p90: list[float]
    shape_median: list[float]
    target_spacing: list[float]
    shape_at_target: list[int]
    foreground: list[dict[str, float]]
    label_volume_ml: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def target_spacing(spacings: np.ndarray) -> np.ndarray:
    """Median spacing; an axis at least 3x coarser than the finest takes its 10th percentile instead."""
    target = np.median(spacings, axis=0)
    coarse = int(np.argmax(target))
    if target[coarse] >= ANISOTROPY_RATIO * target.min():
        target[coarse] = np.percentile(spacings[:, coarse], 10)
    return target


def _intensity(samples: np.ndarray) -> dict[str, float]:
    low, high = np.percentile(samples, [0.5, 99.5])
    clipped = np.clip(samples, low, high)
    return {
        "p00_5": float(low),
        "p99_5": float(high),
        "mean": float(clipped.mean()),
        "std": float(max(clipped.std(), 1e-6)),
        "median": float(np.median(samples)),
    }


def fingerprint(stats: list[CaseStats]) -> Fingerprint:
    """Summarise the statistics of readable labelled cases, as gathered by ``check_dataset``."""
    if not stats:
        raise MedsegError("no readable labelled cases to fingerprint")
    spacings = np.array([s.spacing for s in stats])
    shapes = np.array([s.shape for s in stats], float)
    target = target_spacing(spacings)
    resampled = np.median(shapes * spacings / target, axis=0)
    samples = np.concatenate([s.foreground for s in stats], axis=0)  # (N, C); N is 0 when every label is empty
    volumes: dict[str, dict[str, float]] = {}
    for value in sorted({v for s in stats for v in s.label_ml}):
        found = [s.label_ml[value] for s in stats if value in s.label_ml]
        volumes[str(value)] = {
            "cases": len(found),
            "median": float(np.median(found)),
            "min": float(np.min(found)),
            "max": float(np.max(found)),
        }
    return Fingerprint(
        cases=len(stats),
        channels=int(samples.shape[1]),
        spacing_median=np.round(np.median(spacings, axis=0), 4).tolist(),
        spacing_p10=np.round(np.percentile(spacings, 10, axis=0), 4).tolist(),
        spacing_p90=np.round(np.percentile(spacings, 90, axis=0), 4).tolist(),
        shape_median=np.median(shapes, axis=0).tolist(),
        target_spacing=np.round(target, 3).tolist(),
        shape_at_target=[round(float(v)) for v in resampled],
        foreground=[_intensity(samples[:, c]) for c in range(samples.shape[1])] if len(samples) else [],
        label_volume_ml=volumes,
    )


def bundle_presets(fp: Fingerprint, defaults: dict[str, Any], modality: str) -> dict[str, Any]:
    """Config values for a bundle from a fingerprint.

    Args:
        fp: the dataset's fingerprint.
        defaults: the bundle's own top-level values (``spacing``, ``patch_size``, ``intensity``);
            only keys present there are set.
        modality: the bundle's input modality (``CT`` enables the HU normalisation).

    Returns:
        Top-level config overrides: ``spacing`` (the target spacing), ``patch_size`` (the bundle's,
        shrunk to the data where the data are smaller, in multiples of 16) and, for CT with some
        foreground, ``intensity`` (``clip`` to the foreground percentiles, ``mean`` and ``std``).
    """
    presets: dict[str, Any] = {}
    if "spacing" in defaults:
        presets["spacing"] = fp.target_spacing
    if "patch_size" in defaults:
        patch = defaults["patch_size"]
        sizes = fp.shape_at_target[: len(patch)]  # a 2D bundle's patch covers the first two axes
        presets["patch_size"] = [
            int(min(p, max(PATCH_MULTIPLE, size // PATCH_MULTIPLE * PATCH_MULTIPLE)))
            for p, size in zip(patch, sizes, strict=True)
        ]
    if "intensity" in defaults and modality.upper() == "CT" and fp.channels == 1 and fp.foreground:
        hu = fp.foreground[0]
        presets["intensity"] = {
            "clip": [round(hu["p00_5"], 1), round(hu["p99_5"], 1)],
            "mean": round(hu["mean"], 2),
            "std": round(hu["std"], 2),
        }
    return presets
