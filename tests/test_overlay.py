"""Overlay pictures that read at a glance: label colours against the grey under them, rows, scale bars."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medseg.bundles import find_bundle
from medseg.io.contrast import MIN_CONTRAST, edge_pixels, label_colours, luminance
from medseg.io.overlay import FILL_ALPHA, VIEW_PX, Row, View, _scale_bar, radiological_views, window, write_overlay

from .shapes import grid_affine, sphere, world_points

CENTRE = np.array([0.0, -18.0, 20.0])
WATER, MARKER = 102, 204  # the grey of 0 HU and 160 HU in the CT window, -160 to 240 HU


def _brain():
    """An MRI-like T1 brain: grey matter (650) around white matter (850), in CSF (300), with noise."""
    shape = (48, 56, 44)
    affine = grid_affine((2.0, 2.0, 2.0), shape, CENTRE, flip=(-1, -1, 1))
    head, brain, white = (sphere(affine, shape, CENTRE, radius) for radius in (43, 36, 26))
    scan = np.select([white, brain, head], [850.0, 650.0, 300.0], 0.0)
    scan += np.random.default_rng(0).normal(0, 15, shape) * head
    mask = np.zeros(shape, np.uint8)
    mask[brain], mask[white] = 1, 2
    return scan.astype(np.float32), mask, affine


def _background(views, value, grey):
    under = np.concatenate([view.image[edge_pixels(view.labels == value)] for view in views])
    return float(np.clip((np.median(under) - grey[0]) / (grey[1] - grey[0]), 0, 1))


def test_grey_and_white_matter_outlines_stand_out_from_the_tissue_under_them():
    scan, mask, affine = _brain()
    labels = find_bundle("mri_brain_tissue_3d").labels
    grey = window(scan, "MR")
    views = radiological_views(scan, mask, affine, (24, 28, 22))
    colours = label_colours([(view.image, view.labels) for view in views], labels, grey)
    for label in labels[1:]:
        background = _background(views, label.value, grey)
        assert abs(luminance(np.array(label.rgb) / 255) - background) < MIN_CONTRAST, "the bundle's own would vanish"
        assert abs(luminance(colours[label.value]) - background) >= MIN_CONTRAST - 1e-9, label.name
    assert np.abs(np.subtract(colours[1], colours[2])).max() > 0.3, "grey and white matter stay apart"


def test_colours_that_stand_out_are_kept():
    scan, mask, affine = _brain()
    tumour_labels = find_bundle("mri_brain_tumour_3d").labels  # red, green, yellow
    views = radiological_views(scan, np.where(mask == 2, 4, 0).astype(np.uint8), affine, (24, 28, 22))
    pictures = [(view.image, view.labels) for view in views]
    black = label_colours(pictures, tumour_labels, (1000.0, 2000.0))  # a window that shows every voxel black
    assert black[4] == pytest.approx(np.array(tumour_labels[3].rgb) / 255), "yellow on black is kept"


def test_one_row_per_lesion_with_slice_numbers(tmp_path):
    scan, mask, affine = _brain()
    labels = find_bundle("mri_brain_tissue_3d").labels
    kwargs = {"labels": labels, "modality": "MR", "title": "brain"}
    one = write_overlay(tmp_path / "one.png", scan, mask, affine, rows=[Row("", (24, 28, 22))], **kwargs)
    rows = [Row(f"lesion {n}", (24, 28, 22 + n)) for n in range(3)]
    three = write_overlay(tmp_path / "three.png", scan, mask, affine, rows=rows, **kwargs)
    heights = [Image.open(png).size[1] for png in (one, three)]
    assert heights[1] > 2.5 * heights[0]
    assert radiological_views(scan, mask, affine, (24, 28, 22))[0].slice_number == 22


def _scene(shape, spacing=(1.0, 1.0, 1.0), flip=(1, 1, 1)):
    """A CT of water (0 HU) on a grid centred on the world's origin, an empty mask and the grid's affine."""
    return np.zeros(shape, np.float32), np.zeros(shape, np.uint8), grid_affine(spacing, shape, (0, 0, 0), flip=flip)


def _views_drawn(tmp_path, scan, mask, affine, focus, labels=()):
    """The axial, coronal and sagittal views of a one-row overlay, ``(rows, columns, 3)`` each, as the PNG has them.

    Each is found as one of the three largest regions of water's grey on the page: labels, markers and scale
    bars lie inside the views, text outside them.
    """
    png = write_overlay(
        tmp_path / "o.png", scan, mask, affine, rows=[Row("", focus)], labels=labels, modality="CT", title="t"
    )
    page = np.asarray(Image.open(png).convert("RGB")).astype(int)
    regions, _ = ndimage.label((page == WATER).all(-1))
    largest = np.argsort(np.bincount(regions.ravel())[1:])[::-1][:3]
    boxes = ndimage.find_objects(regions)
    return [page[boxes[index]] for index in sorted(largest, key=lambda index: boxes[index][1].start)]


def _where(picture, found):
    """The mean ``(row, column)`` of the pixels ``found`` as fractions of the ``(rows, columns)`` picture."""
    return np.argwhere(found).mean(0) / found.shape


def test_views_are_drawn_as_a_radiologist_reads_them(tmp_path):
    scan, mask, affine = _scene((40, 40, 40), flip=(-1, -1, 1))  # stored LPS
    world = world_points(affine, scan.shape)
    marker = np.all((world >= (8, 6, 10)) & (world <= (16, 14, 18)), axis=-1)  # right, anterior, superior
    scan[marker] = 160.0
    focus = tuple(int(i) for i in np.argwhere(marker).mean(0).round())
    axial, coronal, sagittal = (
        _where(view, (view == MARKER).all(-1)) for view in _views_drawn(tmp_path, scan, mask, affine, focus)
    )
    # The marker's centre, (12, 10, 14) mm, in a field from -20 to 20 mm: the patient's right, anterior and superior
    # on the picture's left (sagittal: anterior), top (axial: anterior) and top.
    assert axial == pytest.approx([0.25, 0.2], abs=0.04), "axial: anterior on top, the patient's right on the left"
    assert coronal == pytest.approx([0.15, 0.2], abs=0.04), "coronal: superior on top, the patient's right on the left"
    assert sagittal == pytest.approx([0.15, 0.25], abs=0.04), "sagittal: superior on top, anterior on the left"


def test_views_are_drawn_with_square_millimetres(tmp_path):
    scan, mask, affine = _scene((40, 30, 10), spacing=(1.0, 1.0, 4.0))
    axial, coronal, sagittal = (view.shape[:2] for view in _views_drawn(tmp_path, scan, mask, affine, (20, 15, 5)))
    assert axial[0] / axial[1] == pytest.approx(30 / 40, rel=0.02)
    assert (coronal[0] / 10) / (coronal[1] / 40) == pytest.approx(4, rel=0.02), "a voxel 4 mm tall, 1 mm wide"
    assert (sagittal[0] / 10) / (sagittal[1] / 30) == pytest.approx(4, rel=0.02)
    assert max(coronal) == VIEW_PX and coronal[0] == pytest.approx(coronal[1], abs=1), "40 mm by 40 mm"


def _longest_white_run(picture):
    """The most pixels of pure white one after another along a row of the ``(rows, columns, 3)`` picture."""
    white = np.pad((picture == 255).all(-1), ((0, 0), (1, 1)))
    starts, stops = (np.argwhere(np.diff(white.astype(int), axis=1) == step)[:, 1] for step in (1, -1))
    return int((stops - starts).max(initial=0))


def test_scale_bars_are_round_lengths_at_the_views_scale(tmp_path):
    scan, mask, affine = _scene((48, 3, 40), spacing=(2.0, 1.0, 1.0))  # 96 mm wide, 3 mm deep, 40 mm tall
    views = radiological_views(scan, mask, affine, (24, 1, 20))
    assert [_scale_bar(view) for view in views] == [20, 20, None], "a quarter of 96 mm fits 20 mm; of 3 mm, nothing"
    axial, coronal, sagittal = _views_drawn(tmp_path, scan, mask, affine, (24, 1, 20))
    for view in (axial, coronal):
        assert _longest_white_run(view) == round(20 * view.shape[1] / 96), "20 mm at the view's pixels per mm"
        assert (view[-view.shape[0] // 4 :, : view.shape[1] // 4] == 255).all(-1).any(), "at the bottom left"
    assert not (sagittal == 255).any(), "no bar, no length on a view too narrow for one"
    assert _scale_bar(View("sagittal", np.zeros((4, 1)), np.zeros((4, 1)), (3.0, 3.0), ("A", "P"), 0)) is None


def test_labels_are_filled_and_outlined_in_their_colour_where_they_are(tmp_path):
    scan, mask, affine = _scene((40, 40, 40))
    mask[24:34, 24:34, 10:20] = 1  # the patient's right, anterior, inferior
    labels = find_bundle("ct_liver_tumour_3d").labels
    focus = (29, 10, 15)  # the axial and sagittal slices cross the label, the coronal one misses it
    colours = label_colours(
        [(v.image, v.labels) for v in radiological_views(scan, mask, affine, focus)], labels, window(scan, "CT")
    )
    colour = np.round(np.array(colours[1]) * 255)
    fill = np.round(WATER + FILL_ALPHA * (colour - WATER))
    axial, coronal, sagittal = _views_drawn(tmp_path, scan, mask, affine, focus, labels)
    assert not np.ptp(coronal, axis=-1).any(), "no colour where no label is"
    # In the axial view the label spans columns 6 to 16 of 40 (the patient's right on the left), rows 6 to 16
    # (anterior on top); in the sagittal view columns 6 to 16 (anterior on the left), rows 20 to 30 (superior on top).
    for view, (rows, columns) in ((axial, (6, 6)), (sagittal, (20, 6))):
        tinted = np.ptp(view, axis=-1) > 0
        box = np.argwhere(tinted)
        expected = np.array([rows, columns]) * view.shape[:2] / 40
        assert box.min(0) == pytest.approx(expected - 1, abs=1.5), "the outline starts one pixel outside the label"
        assert box.max(0) == pytest.approx(expected + np.array(view.shape[:2]) / 4, abs=1.5)
        assert (np.abs(view[tinted] - colour).max(-1) <= 1).sum() > view.shape[0] / 2, "outlined in the label's colour"
        middle = tuple(np.round(expected + np.array(view.shape[:2]) / 8).astype(int))
        assert view[middle] == pytest.approx(fill, abs=1), "filled with it, semi-transparent"


@pytest.mark.parametrize("shape", [(31, 27), (14, 12, 11)])
def test_edges_found_in_the_regions_box_are_the_whole_arrays(shape):
    rng = np.random.default_rng(len(shape))
    for density in (0.0, 0.02, 0.3):
        inside = np.zeros(shape, bool)
        core = tuple(slice(2, n - 3) for n in shape)
        inside[core] = rng.random(inside[core].shape) < density
        inside[(0,) * len(shape)] = density > 0  # a pixel on the array's corner: the box meets the array there
        whole = ndimage.binary_dilation(inside) & ~ndimage.binary_erosion(inside)
        np.testing.assert_array_equal(edge_pixels(inside), whole)
        np.testing.assert_array_equal(edge_pixels(np.asfortranarray(inside)[::-1]), whole[::-1])
