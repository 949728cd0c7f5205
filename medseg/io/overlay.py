"""``<name>_overlay.png``: rows of axial, coronal and sagittal slices of the scan with the mask drawn on.

One row through each of the largest lesions (up to three), else one through the organs' centre. The
volumes are first turned to the closest RAS voxel order (axis flips and swaps only, no resampling), then
shown as a radiologist reads them: the patient's right on the image's left in axial and coronal views,
anterior on the left in the sagittal view, superior up, each pixel drawn with its physical aspect. CT
uses an abdominal window (level 40 HU, width 400 HU); MR the 1st to 99th percentile of the non-zero
voxels. Each label is filled, semi-transparent, and outlined, in its colour made to stand out from the
grey levels under its outline (:mod:`medseg.io.contrast`), with a legend. Each view is titled with its
slice number (the voxel index, from 0, along the scan's own axis it cuts across, as the file stores it)
and carries a scale bar. Each view is resampled (nearest neighbour) so that its longer side is
:data:`VIEW_PX` pixels and its millimetres are square.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from medseg.io.atomic import atomic_file
from medseg.io.contrast import edge_pixels, label_colours
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
# The picture is drawn with numpy and Pillow, not matplotlib, for speed: importing matplotlib costs each process
# that writes an overlay about 0.35 s of CPU, and drawing with it 0.25 s per row (an artist per image, contour and
# text, then a tight bounding box); numpy and Pillow draw the three rows of a 512 x 512 x 200 CT in under 0.1 s.
VIEW_PX = 300  # the longer side of each view, in pixels (small scans are enlarged, large ones reduced)
EDGE_PX = 20  # the margin on each side of a view, where its patient-direction letters go
PAD_PX = 8  # the space around captions, below each row, between a swatch and its name
TITLE_PX, TITLE_TEXT_PX = 36, 16  # the band on top, its text's size
VIEW_TITLE_PX, TEXT_PX, SMALL_PX = 24, 14, 12  # the band above each view; text sizes of titles, scale bars
BAR_PX, BAR_INSET = 2, 0.05  # the scale bar's thickness; its gap to the view's left and bottom (fraction of it)
LEGEND_PX, SWATCH_PX, LEGEND_GAP_PX = 36, 14, 24  # the band at the bottom; a colour's square; space between labels


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


def _scale_bar(view: View) -> int | None:
    """The scale bar's length (mm): the longest of :data:`SCALE_BARS_MM` at most a quarter of the view's width.

    None when none fits.
    """
    width_mm = view.image.shape[1] * view.pixel_mm[0]
    fitting = [length for length in SCALE_BARS_MM if length <= width_mm / 4]
    return fitting[-1] if fitting else None


def _display_shape(view: View) -> tuple[int, int]:
    """The ``(rows, columns)`` pixels that show ``view`` with square millimetres, its longer side :data:`VIEW_PX`."""
    rows_mm, columns_mm = view.image.shape[0] * view.pixel_mm[1], view.image.shape[1] * view.pixel_mm[0]
    scale = VIEW_PX / max(rows_mm, columns_mm)
    return max(1, round(rows_mm * scale)), max(1, round(columns_mm * scale))


def _nearest(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` ``(rows, columns)``, row 0 at the bottom, resized to ``shape`` by nearest neighbour, row 0 on top."""
    rows, columns = (
        ((np.arange(size) + 0.5) * (old / size)).astype(np.intp) for size, old in zip(shape, image.shape, strict=True)
    )
    return image[np.ix_(rows[::-1], columns)]


def _rgb255(colour: Sequence[float]) -> tuple[int, int, int]:
    """A ``(3,)`` red, green, blue colour in 0-1 as bytes."""
    red, green, blue = (round(255 * channel) for channel in colour)
    return red, green, blue


def _tile(view: View, grey: tuple[float, float], colours: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """``view`` as shown: an RGB ``(rows, columns, 3)`` uint8 picture of :func:`_display_shape`, row 0 at the top.

    The intensities in the ``grey`` window (``grey[0]`` black, ``grey[1]`` white), each label of ``colours``
    (value: red, green, blue in 0-1) filled semi-transparently over them, then outlined (2 pixels, straddling
    its border) unless the view is one voxel thin.
    """
    shape = _display_shape(view)
    low, high = grey
    levels = np.clip((_nearest(view.image, shape).astype(np.float32) - low) * (255 / (high - low)), 0, 255)
    rgb = np.repeat(levels[..., np.newaxis], 3, axis=2)
    values = _nearest(view.labels, shape)
    thin = min(view.labels.shape) < 2  # a view one voxel thin (a single-slice scan) has no outline to draw
    alpha = THIN_FILL_ALPHA if thin else FILL_ALPHA
    regions = [(values == value, np.array(_rgb255(colour), np.float32)) for value, colour in colours.items()]
    regions = [(inside, colour) for inside, colour in regions if inside.any()]
    for inside, colour in regions:
        rgb[inside] += alpha * (colour - rgb[inside])
    for inside, colour in [] if thin else regions:  # after every fill: no fill tints another label's outline
        rgb[edge_pixels(inside)] = colour
    return np.rint(rgb).astype(np.uint8)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own font (Aileron, through FreeType) at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def _annotate(draw: ImageDraw.ImageDraw, view: View, corner: tuple[int, int], shape: tuple[int, int]) -> None:
    """Title, patient directions and scale bar around the tile of ``view`` pasted at ``corner`` (x, y).

    Args:
        draw: the page.
        view: the view.
        corner: the tile's top-left pixel on the page.
        shape: the tile's ``(rows, columns)``.
    """
    (left, top), (rows, columns) = corner, shape
    name = f"{view.name}, slice {view.slice_number}"
    draw.text((left + columns / 2, top - 4), name, fill="white", font=_font(TEXT_PX), anchor="md")
    for x, letter in zip((left - EDGE_PX / 2, left + columns + EDGE_PX / 2), view.edges, strict=True):
        draw.text((x, top + rows / 2), letter, fill="yellow", font=_font(TEXT_PX), anchor="mm")
    length = _scale_bar(view)
    if length is None:
        return
    bar = round(length * columns / (view.image.shape[1] * view.pixel_mm[0]))
    x, y = left + round(columns * BAR_INSET), top + rows - round(rows * BAR_INSET) - BAR_PX
    draw.rectangle((x - 1, y - 1, x + bar, y + BAR_PX), fill="black")  # a black rim: the bar reads on bone too
    draw.rectangle((x, y, x + bar - 1, y + BAR_PX - 1), fill="white")
    text = f"{length} mm"
    draw.text((x, y - 3), text, fill="white", font=_font(SMALL_PX), anchor="ld", stroke_width=1, stroke_fill="black")


def _legend(
    draw: ImageDraw.ImageDraw, entries: Sequence[tuple[str, tuple[int, int, int]]], centre: tuple[int, int]
) -> None:
    """A line of colour swatches, each followed by its label's name, centred on pixel ``centre`` (x, y).

    Args:
        draw: the page.
        entries: ``(name, (red, green, blue))`` of each label, bytes.
        centre: the line's centre on the page.
    """
    font = _font(TEXT_PX)
    widths = [SWATCH_PX + PAD_PX + font.getlength(name) for name, _ in entries]
    x, y = centre[0] - (sum(widths) + LEGEND_GAP_PX * (len(entries) - 1)) / 2, centre[1]
    for (name, colour), width in zip(entries, widths, strict=True):
        draw.rectangle((x, y - SWATCH_PX / 2, x + SWATCH_PX, y + SWATCH_PX / 2), fill=colour)
        draw.text((x + SWATCH_PX + PAD_PX, y), name, fill="white", font=font, anchor="lm")
        x += width + LEGEND_GAP_PX


def _page(
    title: str,
    rows: Sequence[tuple[str, Sequence[tuple[View, np.ndarray]]]],
    legend: Sequence[tuple[str, tuple[int, int, int]]],
) -> Image.Image:
    """The picture: ``title`` on top, a row of views per ``rows`` entry, its caption on the left, then the legend.

    Args:
        title: the line on top.
        rows: each row's caption and its views with their :func:`_tile` ``(rows, columns, 3)``.
        legend: ``(name, (red, green, blue))`` of each label shown, bytes.
    """
    captions = [_font(TEXT_PX).getlength(caption) for caption, _ in rows]
    left = round(max(captions, default=0)) + 2 * PAD_PX
    cell_width, row_height = VIEW_PX + 2 * EDGE_PX, VIEW_TITLE_PX + VIEW_PX + PAD_PX
    width = left + 3 * cell_width + PAD_PX
    page = Image.new("RGB", (width, TITLE_PX + len(rows) * row_height + LEGEND_PX), "black")
    draw = ImageDraw.Draw(page)
    draw.text((width / 2, TITLE_PX / 2), title, fill="white", font=_font(TITLE_TEXT_PX), anchor="mm")
    for number, (caption, views) in enumerate(rows):
        top = TITLE_PX + number * row_height + VIEW_TITLE_PX
        draw.text((PAD_PX, top + VIEW_PX / 2), caption, fill="white", font=_font(TEXT_PX), anchor="lm")
        for column, (view, tile) in enumerate(views):
            shape = (tile.shape[0], tile.shape[1])
            corner = (left + column * cell_width + EDGE_PX + (VIEW_PX - shape[1]) // 2, top + (VIEW_PX - shape[0]) // 2)
            page.paste(Image.fromarray(tile), corner)
            _annotate(draw, view, corner, shape)
    _legend(draw, legend, (width // 2, page.height - LEGEND_PX // 2))
    return page


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
    grey = window(scan, modality)
    views = [radiological_views(scan, mask, affine, row.focus) for row in rows]
    colours = label_colours([(view.image, view.labels) for row in views for view in row], labels, grey)
    shown = [
        (row.caption, [(view, _tile(view, grey, colours)) for view in row_views])
        for row, row_views in zip(rows, views, strict=True)
    ]
    legend = [(label.name, _rgb255(colours[label.value])) for label in labels if label.value]
    with atomic_file(path) as partial:
        _page(title, shown, legend).save(partial, format="png", compress_level=PNG_LEVEL)
    return Path(path)
