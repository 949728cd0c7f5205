"""Labels taken back to the scan's grid by nearest neighbour, against SimpleITK and a case worked by hand.

:func:`~medseg.inference.resample.nearest_to_source_grid` gives each source voxel the label of the
nearest network voxel, and beyond the network grid the label at its edge (``Spacingd``'s border
padding). SimpleITK's nearest-neighbour resampling does the same inside the grid; outside it gives a
default value, so the reference resamples a copy of the labels padded with their own edge. The source
grids reach past the network grid on every side, so the clamping is checked too.
"""

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medseg.inference.resample import nearest_to_source_grid

from .shapes import grid_affine
from .test_resample_exact import SOURCES, sitk_image, source_grid

NETWORK_SHAPE = (17, 13, 11)
NETWORK = grid_affine((2.3, 2.7, 3.1), NETWORK_SHAPE, (0.71, -0.29, 0.53))  # smaller than every source grid
PAD = 12  # network voxels of edge padding: more than any source grid reaches past the network grid


def network_labels(seed):
    """Random labels 0..5, voxel by voxel: any index taken from the wrong voxel or axis shows."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 6, NETWORK_SHAPE)).to(torch.uint8)


def continuous_index(source_affine, source_shape):
    """``(X, Y, Z, 3)`` network voxel coordinates of every source voxel centre."""
    index = np.moveaxis(np.indices(source_shape, dtype=float), 0, -1)
    transform = np.linalg.inv(NETWORK) @ source_affine
    return index @ transform[:3, :3].T + transform[:3, 3]


def sitk_nearest(labels, source_affine, source_shape):
    """SimpleITK's nearest-neighbour resampling of ``labels`` padded with their edge (255 if still outside)."""
    padded = np.pad(labels.numpy(), PAD, mode="edge")
    shift = np.eye(4)
    shift[:3, 3] = -PAD
    moving = sitk_image(NETWORK @ shift, padded.shape, padded.astype(np.float64))
    target = sitk_image(source_affine, source_shape)
    resampled = sitk.Resample(moving, target, sitk.Transform(), sitk.sitkNearestNeighbor, 255.0, sitk.sitkFloat64)
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).round().astype(np.uint8)


@pytest.mark.parametrize("slab_voxels", [4_000_000, 7_000], ids=["one-slab", "slabs"])
@pytest.mark.parametrize("grid", sorted(SOURCES))
def test_labels_equal_simpleitks_nearest_resampling(grid, slab_voxels):
    labels = network_labels(seed=len(grid))
    source_affine, source_shape = source_grid(grid)
    ours = nearest_to_source_grid(labels, NETWORK, source_affine, source_shape, slab_voxels=slab_voxels)
    reference = sitk_nearest(labels, source_affine, source_shape)
    position = continuous_index(source_affine, source_shape)
    # no source voxel half-way between two network voxels, where rounding conventions differ (torch
    # rounds to even, ITK up); the nearest to a tie is 3.7e-6 voxels away, far beyond float64 rounding
    assert (np.abs(np.abs(position - np.floor(position)) - 0.5) > 1e-9).all()
    # the grid reaches past both ends of every network axis, but not past the padding
    assert (position.min((0, 1, 2)) < -0.5).all() and (position.max((0, 1, 2)) > np.array(NETWORK_SHAPE) - 0.5).all()
    assert 255 not in reference and len(np.unique(reference)) == 6
    assert ours.shape == source_shape and ours.dtype == np.uint8 and ours.flags.f_contiguous
    np.testing.assert_array_equal(ours, reference)


def test_nearest_by_hand():
    """Network voxels 2 mm wide at x, y = 0, 2 (one z slice at 0); source voxels 1 mm wide from (-1.2, 0.3, 5).

    Network x index of the source columns: -0.6, -0.1, 0.4, 0.9, 1.4, 1.9, 2.4 -> 0, 0, 0, 1, 1, 1, 1
    (the last three beyond the grid's centre take its edge); y: 0.15, 0.65, 1.15 -> 0, 1, 1; z: 2.5 and
    3.0, past the only slice -> 0.
    """
    labels = torch.tensor([[1, 3], [2, 4]], dtype=torch.uint8)[..., None]  # labels[x, y, 0]
    network = np.diag([2.0, 2.0, 2.0, 1.0])
    source = np.diag([1.0, 1.0, 1.0, 1.0])
    source[:3, 3] = (-1.2, 0.3, 5.0)
    column = np.array([[1, 3, 3], [1, 3, 3], [1, 3, 3], [2, 4, 4], [2, 4, 4], [2, 4, 4], [2, 4, 4]], np.uint8)
    for slab_voxels in (1, 100):
        result = nearest_to_source_grid(labels, network, source, (7, 3, 2), slab_voxels=slab_voxels)
        np.testing.assert_array_equal(result, np.stack([column, column], axis=-1))
