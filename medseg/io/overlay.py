"""``<name>_overlay.png``: rows of axial, coronal and sagittal slices of the scan with the mask drawn on.

One row through each of the largest lesions (up to three), else one through the organs' centre. The
volumes are first turned to the closest RAS voxel order (axis flips and swaps only, no resampling), then
shown as a radiologist reads them: the patient's right on the image's left in axial and coronal views,
anterior on the left in the sagittal view, superior up, each pixel drawn with its physical aspect. CT
uses an abdominal window (level 40 HU, width 400 HU); MR the 1st to 99th percentile of the non-zero
voxels. Each label is filled, semi-transparent, and outlined, in its colour made to stand out from the
grey levels under its outline (:mod:`medseg.io.contrast`), with a legend. Each view is titled with its
slice number (the voxel index, from 0, along the scan's own axis it cuts across, as the file stores it)
and carries a scale bar.
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
from medseg.io.contrast import label_colours
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
FILL_ALPHA = 0.25
THIN_FILL_ALPHA = 0.6  # a view one voxel thin has no outline: its fill alone shows the label
SCALE_BARS_MM = (1, 2, 5, 10, 20, 50, 100, 200)
PNG_LEVEL = 1  # zlib level of the PNG: a third of the encoding time of Pillow's default, 6, same pixels


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
        pixel_mm: physical width and height of a pixel (mm).
        edges: the patient directions on the image's left and right edges.
        slice_number: the voxel index of the slice along the scan's own axis it cuts across.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    pixel_mm: tuple[float, float]
    edges: tuple[str, str]
    slice_number: int

    @property
    def aspect(self) -> float:
        """Physical height over width of a pixel."""
        return self.pixel_mm[1] / self.pixel_mm[0]


@dataclass(frozen=True)
class Row:
    """One row of the picture: the three views through voxel ``focus`` ``(3,)``, captioned ``caption``."""

    caption: str
    focus: tuple[int, int, int]


def _plane(volume: np.ndarray, across: int, position: int, shown: tuple[int, int]) -> np.ndarray:
    """The slice at ``position`` across axis ``across`` as an image ``(rows, columns)``, columns reversed."""
    section = volume[tuple(position if axis == across else slice(None) for axis in range(volume.ndim))]  # a view
    columns, rows = (axis - (axis > across) for axis in shown)
    return np.moveaxis(section, (rows, columns), (0, 1))[:, ::-1]


def stored_index(affine: np.ndarray, shape: Sequence[int], ras_axis: int, position: int) -> int:
    """The voxel index, along the scan's own axis, of slice ``position`` across RAS-ordered axis ``ras_axis``.

    Args:
        affine: ``(4, 4)`` voxel-to-RAS affine of the scan as stored.
        shape: the stored scan's ``(X, Y, Z)`` shape.
        ras_axis: an axis of the volume turned by :func:`to_ras`.
        position: an index along it.
    """
    orientation = nib.orientations.io_orientation(affine)
    axis = int(np.flatnonzero(orientation[:, 0] == ras_axis)[0])
    return position if orientation[axis, 1] > 0 else shape[axis] - 1 - position


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
            (float(spacing[shown[0]]), float(spacing[shown[1]])),
            edges,
            stored_index(affine, scan.shape, across, int(position[across])),
        )
        for name, across, shown, edges in VIEWS
    ]


def _scale_bar(axes: Axes, view: View) -> None:
    """A bar of a round length (at most a quarter of the image's width) at the image's bottom left."""
    width_mm = view.image.shape[1] * view.pixel_mm[0]
    fitting = [length for length in SCALE_BARS_MM if length <= width_mm / 4]
    if not fitting:
        return
    length, (rows, columns) = fitting[-1], view.image.shape
    x, y = columns * 0.05, rows * 0.05
    axes.plot([x, x + length / view.pixel_mm[0]], [y, y], color="white", linewidth=2, solid_capstyle="butt")
    axes.text(x, y + rows * 0.03, f"{length} mm", color="white", fontsize=7, va="bottom")


def _draw(axes: Axes, view: View, grey: tuple[float, float], colours: dict[int, tuple[float, float, float]]) -> None:
    axes.imshow(view.image, cmap="gray", vmin=grey[0], vmax=grey[1], origin="lower", interpolation="nearest")
    thin = min(view.labels.shape) < 2  # a view one voxel thin (a single-slice scan) has no outline to draw
    for value, colour in colours.items():
        inside = view.labels == value
        if not (value and inside.any()):
            continue
        filled = np.zeros((*inside.shape, 4))
        filled[inside] = (*colour, THIN_FILL_ALPHA if thin else FILL_ALPHA)
        axes.imshow(filled, origin="lower", interpolation="nearest")
        if not thin:
            axes.contour(inside.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
    axes.set_aspect(view.aspect)
    axes.set_title(f"{view.name}, slice {view.slice_number}", color="white", fontsize=10)
    for x, letter in zip((0.02, 0.98), view.edges, strict=True):
        axes.text(x, 0.5, letter, color="yellow", transform=axes.transAxes, ha="center", va="center", fontsize=9)
    _scale_bar(axes, view)
    axes.set_axis_off()


def write_overlay(
    path: str | Path,
    scan: np.ndarray,
    mask: np.ndarray,
    affine: np.ndarray,
    *,
    rows: Sequence[Row],
    labels: Sequence[Label],
    modality: str,
    title: str,
) -> Path:
    """Draw the three views through each row's focus, one row each, and write them as a PNG, atomically.

    Args:
        path: the ``.png`` file.
        scan: ``(X, Y, Z)`` scan intensities (one channel).
        mask: ``(X, Y, Z)`` label map on the same grid.
        affine: ``(4, 4)`` voxel-to-RAS affine of both.
        rows: the rows to draw, each through a voxel of ``scan``'s grid.
        labels: the bundle's labels (names and colours for outlines and legend).
        modality: ``CT`` or ``MR`` (sets the grey-level window).
        title: text above the views.
    """
    figure = Figure(figsize=(12, 0.9 + 3.6 * len(rows)), facecolor="black")
    FigureCanvasAgg(figure)
    grey = window(scan, modality)
    views = [radiological_views(scan, mask, affine, row.focus) for row in rows]
    colours = label_colours([(view.image, view.labels) for row in views for view in row], labels, grey)
    grid = figure.subplots(len(rows), 3, squeeze=False)
    for axes_row, row, row_views in zip(grid, rows, views, strict=True):
        for axes, view in zip(axes_row, row_views, strict=True):
            _draw(axes, view, grey, colours)
        axes_row[0].text(
            -0.04,
            0.5,
            row.caption,
            color="white",
            rotation=90,
            transform=axes_row[0].transAxes,
            ha="right",
            va="center",
            fontsize=10,
        )
    handles = [Patch(facecolor=colours[label.value], label=label.name) for label in labels if label.value]
    figure.legend(handles=handles, loc="lower center", ncol=max(1, len(handles)), frameon=False, labelcolor="white")
    figure.suptitle(title, color="white")
    with atomic_file(path) as partial:
        figure.savefig(
            partial,
            format="png",
            facecolor="black",
            dpi=90,
            bbox_inches="tight",
            pad_inches=0.15,
            pil_kwargs={"compress_level": PNG_LEVEL},
        )
    return Path(path)
