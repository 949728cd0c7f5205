"""``<name>_overlay.png``: axial, coronal and sagittal slices of the scan with the mask outlined.

The volumes are first turned to the closest RAS voxel order (axis flips and swaps only, no resampling),
then shown as a radiologist reads them: the patient's right on the image's left in axial and coronal
views, anterior on the left in the sagittal view, superior up, each pixel drawn with its physical aspect.
CT uses an abdominal window (level 40 HU, width 400 HU); MR the 1st to 99th percentile of the non-zero
voxels. Each label is outlined in its colour, with a legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from medseg.io.atomic import atomic_file
from medseg.labels import Label

CT_WINDOW = (40.0, 400.0)  # level, width (HU)
MR_PERCENTILES = (1.0, 99.0)
# For each view: the RAS axis it cuts across, the axes shown as (columns, rows), and the letters on the
# image's left and right edges.
VIEWS = (
    ("axial", 2, (0, 1), ("R", "L")),
    ("coronal", 1, (0, 2), ("R", "L")),
    ("sagittal", 0, (1, 2), ("A", "P")),
)


def window(scan: np.ndarray, modality: str) -> tuple[float, float]:
    """Grey-level range ``(low, high)`` to display ``scan`` with."""
    if modality == "CT":
        level, width = CT_WINDOW
        return level - width / 2, level + width / 2
    values = scan[scan != 0] if np.any(scan) else scan
    low, high = np.percentile(values, MR_PERCENTILES)
    return float(low), float(max(high, low + 1e-6))


def to_ras(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``volume`` ``(X, Y, Z)`` in the closest RAS voxel order, with its new ``(4, 4)`` affine."""
    orientation = nib.orientations.io_orientation(affine)
    turned = nib.orientations.apply_orientation(volume, orientation)
    return turned, affine @ nib.orientations.inv_ornt_aff(orientation, volume.shape)


@dataclass(frozen=True)
class View:
    """One slice as shown: ``image`` and ``labels`` are ``(rows, columns)``, row 0 at the bottom.

    Args:
        name: ``axial``, ``coronal`` or ``sagittal``.
        image: scan intensities.
        labels: label values.
        aspect: physical height over width of a pixel.
        edges: the patient directions on the image's left and right edges.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    aspect: float
    edges: tuple[str, str]


def _plane(volume: np.ndarray, across: int, position: int, shown: tuple[int, int]) -> np.ndarray:
    """The slice at ``position`` across axis ``across`` as an image ``(rows, columns)``, columns reversed."""
    section = np.take(volume, position, axis=across)
    columns, rows = (axis - (axis > across) for axis in shown)
    return np.moveaxis(section, (rows, columns), (0, 1))[:, ::-1]


def radiological_views(scan: np.ndarray, mask: np.ndarray, affine: np.ndarray, focus: Sequence[int]) -> list[View]:
    """Axial, coronal and sagittal slices through voxel ``focus``, oriented as a radiologist reads them.

    Args:
        scan: ``(X, Y, Z)`` intensities.
        mask: ``(X, Y, Z)`` label map on the same grid.
        affine: ``(4, 4)`` voxel-to-RAS affine of both.
        focus: ``(3,)`` voxel index the slices pass through.
    """
    scan_ras, ras_affine = to_ras(scan, affine)
    mask_ras, _ = to_ras(mask, affine)
    centre = np.linalg.solve(ras_affine, affine @ np.append(np.asarray(focus, float), 1.0))[:3]
    position = np.clip(np.rint(centre), 0, np.array(scan_ras.shape) - 1).astype(int)
    spacing = np.linalg.norm(ras_affine[:3, :3], axis=0)
    return [
        View(
            name,
            _plane(scan_ras, across, position[across], shown),
            _plane(mask_ras, across, position[across], shown),
            float(spacing[shown[1]] / spacing[shown[0]]),
            edges,
        )
        for name, across, shown, edges in VIEWS
    ]


def _draw(axes: Axes, view: View, grey: tuple[float, float], labels: Sequence[Label]) -> None:
    axes.imshow(view.image, cmap="gray", vmin=grey[0], vmax=grey[1], origin="lower", interpolation="nearest")
    for label in labels:
        inside = view.labels == label.value
        colour = np.array(label.rgb) / 255
        if not (label.value and inside.any()):
            continue
        if min(inside.shape) >= 2:
            axes.contour(inside.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
        else:  # a view one voxel thin (a single-slice scan) has no outline: fill the label's voxels
            filled = np.zeros((*inside.shape, 4))
            filled[inside] = (*colour, 0.6)
            axes.imshow(filled, origin="lower", interpolation="nearest")
    axes.set_aspect(view.aspect)
    axes.set_title(view.name, color="white", fontsize=10)
    for x, letter in zip((0.02, 0.98), view.edges, strict=True):
        axes.text(x, 0.5, letter, color="yellow", transform=axes.transAxes, ha="center", va="center", fontsize=9)
    axes.set_axis_off()


def write_overlay(
    path: str | Path,
    scan: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    *,
    focus: Sequence[int],
    labels: Sequence[Label],
    modality: str,
    title: str,
) -> Path:
    """Draw the three views through voxel ``focus`` and write them as a PNG, atomically.

    Args:
        path: the ``.png`` file.
        scan: ``(X, Y, Z)`` scan intensities (one channel).
        mask: ``(X, Y, Z)`` label map on the same grid.
        affine: ``(4, 4)`` voxel-to-RAS affine of both.
        focus: ``(3,)`` voxel index (of ``scan``'s grid) the three slices pass through.
        labels: the bundle's labels (names and colours for outlines and legend).
        modality: ``CT`` or ``MR`` (sets the grey-level window).
        title: text above the views.
    """
    figure = Figure(figsize=(12, 4.5), facecolor="black")
    FigureCanvasAgg(figure)
    grey = window(scan, modality)
    for axes, view in zip(figure.subplots(1, 3), radiological_views(scan, mask, affine, focus), strict=True):
        _draw(axes, view, grey, labels)
    handles = [Patch(facecolor=np.array(label.rgb) / 255, label=label.name) for label in labels if label.value]
    figure.legend(handles=handles, loc="lower center", ncol=max(1, len(handles)), frameon=False, labelcolor="white")
    figure.suptitle(title, color="white")
    with atomic_file(path) as partial:
        figure.savefig(partial, format="png", facecolor="black", dpi=90, bbox_inches="tight", pad_inches=0.15)
    return Path(path)
