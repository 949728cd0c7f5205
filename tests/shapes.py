"""Grids and shapes of known size in world coordinates, for tests of geometry and measurements."""

from __future__ import annotations

import numpy as np

from medseg.samples.mni import rotation_about


def grid_affine(spacing, shape, centre, *, degrees=(0.0, 0.0, 0.0), flip=(1, 1, 1), order=(0, 1, 2)):
    """A voxel-to-RAS affine whose grid of ``shape`` is centred on ``centre`` (mm).

    ``order`` permutes which world axis each voxel axis runs along, ``flip`` reverses some (LPS storage
    is ``flip=(-1, -1, 1)``), ``degrees`` turns the whole grid (oblique direction cosines).
    """
    directions = np.eye(3)[:, list(order)] * np.asarray(flip, float)
    turn = rotation_about(np.zeros(3), np.asarray(degrees, float))[:3, :3]
    affine = np.eye(4)
    affine[:3, :3] = turn @ directions @ np.diag(spacing)
    affine[:3, 3] = np.asarray(centre, float) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def world_points(affine, shape):
    """``(X, Y, Z, 3)`` world (RAS, mm) position of every voxel centre."""
    index = np.moveaxis(np.indices(shape, dtype=float), 0, -1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def sphere(affine, shape, centre, radius):
    """Voxels whose centres lie within ``radius`` mm of ``centre``."""
    return np.linalg.norm(world_points(affine, shape) - np.asarray(centre, float), axis=-1) <= radius


def vertical_cylinder(affine, shape, centre, radius, height):
    """Voxels within a cylinder along the superior axis: ``radius`` mm across, ``height`` mm tall."""
    offset = world_points(affine, shape) - np.asarray(centre, float)
    return (np.linalg.norm(offset[..., :2], axis=-1) <= radius) & (np.abs(offset[..., 2]) <= height / 2)
