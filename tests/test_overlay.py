"""Overlay pictures that read at a glance: label colours against the grey under them, rows, scale bars."""

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from scipy import ndimage

from medseg.bundles import find_bundle
from medseg.io.contrast import MIN_CONTRAST, edge_pixels, label_colours, luminance
from medseg.io.overlay import Row, View, _scale_bar, radiological_views, window, write_overlay

from .shapes import grid_affine, sphere

CENTRE = np.array([0.0, -18.0, 20.0])


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


def test_one_row_per_lesion_with_slice_numbers_and_scale_bars(tmp_path):
    scan, mask, affine = _brain()
    labels = find_bundle("mri_brain_tissue_3d").labels
    kwargs = {"labels": labels, "modality": "MR", "title": "brain"}
    one = write_overlay(tmp_path / "one.png", scan, mask, affine, rows=[Row("", (24, 28, 22))], **kwargs)
    rows = [Row(f"lesion {n}", (24, 28, 22 + n)) for n in range(3)]
    three = write_overlay(tmp_path / "three.png", scan, mask, affine, rows=rows, **kwargs)
    heights = [Image.open(png).size[1] for png in (one, three)]
    assert heights[1] > 2.5 * heights[0]
    view = radiological_views(scan, mask, affine, (24, 28, 22))[0]
    assert view.slice_number == 22
    axes = Figure().subplots()
    _scale_bar(axes, view)  # 48 voxels of 2 mm: a quarter is 24 mm
    [text] = axes.texts
    assert text.get_text() == "20 mm"
    [bar] = axes.lines
    assert np.ptp(bar.get_xdata()) == pytest.approx(10), "20 mm over pixels of 2 mm"


def test_no_scale_bar_on_a_view_too_narrow_for_one():
    view = View("sagittal", np.zeros((4, 1)), np.zeros((4, 1)), (3.0, 3.0), ("A", "P"), 0)
    axes = Figure().subplots()
    _scale_bar(axes, view)
    assert not axes.texts and not axes.lines


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
