"""``<name>_viewer.json``: a scan and its mask, made small enough to embed in ``report.html``'s slice viewer.

How the volumes are made small (a 512 x 512 x 600 CT becomes 256 x 256 x 200 voxels, a few MB):

- both are turned to the closest RAS voxel order (axis flips and swaps only, as the overlay does);
- each axis longer than :data:`MAX_SIDE` voxels is shrunk by the smallest whole factor that brings it to
  at most :data:`MAX_SIDE` (512 -> 2, 600 -> 3): intensities by the mean of each block of voxels, labels
  by the highest label value in the block, so that a lesion one voxel wide still shows;
- intensities are stored as uint8 over a fixed range (:func:`stored_range`: -1000 to 1000 HU for CT, the
  0.5th to 99.5th percentile of the non-zero voxels for MR), so the viewer's window can move within it;
- each volume is zlib-compressed and base64-encoded (the page inflates it with the browser's own
  ``DecompressionStream``).

The file also holds what the viewer needs to number slices as the scan's file stores them, the labels'
names and colours (made to stand out from the grey under them, as in the overlay), the default window and
the voxel the views start at.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import nibabel as nib
import numpy as np

from medseg.io.atomic import write_text
from medseg.io.contrast import label_colours
from medseg.io.fast_nifti import c_order
from medseg.io.overlay import to_ras, window
from medseg.labels import Label

fast_zlib: ModuleType
try:
    from isal import isal_zlib as fast_zlib  # zlib streams, 30 times as fast as zlib's level 6 on a CT
except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
    import zlib as fast_zlib

MAX_SIDE = 256
CT_RANGE = (-1000.0, 1000.0)  # HU
MR_PERCENTILES = (0.5, 99.5)
ZLIB_LEVEL = 2  # ISA-L's levels go 0-3; at 2 a CT's volume is 8 % larger than at zlib's default, 6


def stored_range(scan: np.ndarray, modality: str) -> tuple[float, float]:
    """The intensities that uint8 values 0 and 255 stand for."""
    if modality == "CT":
        return CT_RANGE
    values = scan[scan != 0] if np.any(scan) else scan
    low, high = np.percentile(values, MR_PERCENTILES)
    return float(low), float(max(high, low + 1e-6))


def shrink_factors(shape: Sequence[int]) -> tuple[int, ...]:
    """Per axis, the smallest whole factor that brings its length to at most :data:`MAX_SIDE`."""
    return tuple(-(-int(n) // MAX_SIDE) for n in shape)


def _blocks(volume: np.ndarray, factors: Sequence[int]) -> list[np.ndarray]:
    """Every voxel offset's subsampled grid: the block members, some one voxel short at the far edges."""
    return [
        volume[i :: factors[0], j :: factors[1], k :: factors[2]]
        for i in range(factors[0])
        for j in range(factors[1])
        for k in range(factors[2])
    ]


def _memory_order(volume: np.ndarray) -> Literal["C", "F"]:
    """``F`` when ``volume``'s first axis varies fastest in memory (a NIfTI's voxels, views of them), else ``C``."""
    strides = np.abs(volume.strides)
    return "F" if strides[0] < strides[-1] else "C"


def _reduced_shape(volume: np.ndarray, factors: Sequence[int]) -> tuple[int, ...]:
    return tuple(-(-n // f) for n, f in zip(volume.shape, factors, strict=True))


def block_mean(volume: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """``(X, Y, Z)`` -> ``(ceil(X / fx), ...)`` float32: each block's mean (blocks at the edges may be short).

    The sums are laid out in ``volume``'s memory order, so that each pass walks both arrays in step.
    """
    shape = _reduced_shape(volume, factors)
    total = np.zeros(shape, np.float32, order=_memory_order(volume))
    for part in _blocks(volume, factors):
        total[tuple(slice(0, n) for n in part.shape)] += part
    total /= np.prod(factors)
    for axis, (length, factor) in enumerate(zip(volume.shape, factors, strict=True)):
        if length % factor:  # the last block along this axis holds only length % factor of its layers
            edge = tuple(-1 if other == axis else slice(None) for other in range(total.ndim))
            total[edge] *= factor / (length % factor)
    return total


def block_max(volume: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """``(X, Y, Z)`` -> ``(ceil(X / fx), ...)``: each block's highest value (laid out as :func:`block_mean`'s)."""
    highest = np.zeros(_reduced_shape(volume, factors), volume.dtype, order=_memory_order(volume))
    for part in _blocks(volume, factors):
        region = tuple(slice(0, n) for n in part.shape)
        np.maximum(highest[region], part, out=highest[region])
    return highest


def _packed(volume: np.ndarray) -> str:
    """A uint8 volume's bytes (C order), zlib-compressed and base64-encoded.

    The volumes are laid out as NIfTI voxels are (first axis fastest); :func:`c_order` turns them in slabs,
    a fifth of the time ``np.ascontiguousarray`` takes.
    """
    packed = fast_zlib.compress(c_order(volume.astype(np.uint8, copy=False)), ZLIB_LEVEL)
    return base64.b64encode(packed).decode("ascii")


def _stored_axes(affine: np.ndarray, shape: Sequence[int]) -> list[dict[str, Any]]:
    """For each RAS-ordered axis: the length of the scan's own axis it comes from, and whether it runs backwards."""
    orientation = nib.orientations.io_orientation(affine)
    axes: list[dict[str, Any]] = [{}, {}, {}]
    for axis, (ras_axis, direction) in enumerate(orientation):
        axes[int(ras_axis)] = {"length": int(shape[axis]), "reversed": bool(direction < 0)}
    return axes


def viewer_volume(
    scan: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    *,
    labels: Sequence[Label],
    modality: str,
    focus: Sequence[int],
) -> dict[str, Any]:
    """The JSON-ready data of one case's slice viewer (see the module's docstring for how it is made small).

    Args:
        scan: ``(X, Y, Z)`` intensities (one channel).
        mask: ``(X, Y, Z)`` label map on the same grid.
        affine: ``(4, 4)`` voxel-to-RAS affine of both.
        labels: the bundle's labels.
        modality: ``CT`` or ``MR`` (sets the stored range and the default window).
        focus: ``(3,)`` voxel index of ``scan``'s grid the views start at.

    Returns:
        ``shape`` and ``spacing`` (mm) of the small RAS-ordered grid, ``factors`` it was shrunk by,
        ``stored`` (per RAS axis, the scan's own axis length and direction), ``range`` that uint8 0-255
        stands for, ``window`` (level, width), ``labels``, ``start`` (voxel of the small grid), and
        ``image`` and ``mask`` (packed uint8 volumes, C order).
    """
    scan_ras, ras_affine = to_ras(scan, affine)
    mask_ras, _ = to_ras(mask, affine)
    factors = shrink_factors(scan_ras.shape)
    low, high = stored_range(scan, modality)
    small = block_mean(scan_ras, factors)
    image = np.rint(np.clip((small - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    small_mask = block_max(mask_ras, factors).astype(np.uint8)
    grey = window(scan, modality)
    names = {label.value: label.name for label in labels}
    start = np.linalg.solve(ras_affine, affine @ np.append(np.asarray(focus, float), 1.0))[:3] // factors
    return {
        "shape": list(image.shape),
        "spacing": [float(s * f) for s, f in zip(np.linalg.norm(ras_affine[:3, :3], axis=0), factors, strict=True)],
        "factors": list(factors),
        "stored": _stored_axes(affine, scan.shape),
        "range": [low, high],
        "window": [(grey[0] + grey[1]) / 2, grey[1] - grey[0]],
        "labels": [
            {"value": value, "name": names[value], "rgb": [round(255 * c) for c in colour]}
            for value, colour in label_colours([(small, small_mask)], labels, grey).items()
        ],
        "start": [int(np.clip(v, 0, n - 1)) for v, n in zip(start, image.shape, strict=True)],
        "image": _packed(image),
        "mask": _packed(small_mask),
    }


def write_viewer_volume(path: str | Path, data: dict[str, Any]) -> Path:
    """Write :func:`viewer_volume`'s data as JSON, atomically."""
    write_text(path, json.dumps(data) + "\n")
    return Path(path)
