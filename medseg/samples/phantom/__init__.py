"""A synthetic abdominal CT with liver and liver-tumour labels, deterministic for a seed."""

from __future__ import annotations

import numpy as np

from medseg.samples.phantom.anatomy import Anatomy, random_anatomy
from medseg.samples.phantom.grid import PRESETS, CtGrid, GridPreset, random_grid
from medseg.samples.phantom.render import render as render_scan

__all__ = ["PRESETS", "Anatomy", "CtGrid", "GridPreset", "PhantomCase", "make_case"]


class PhantomCase:
    """One synthetic scan: ``image`` (int16 HU) and ``label`` (uint8), both ``grid.shape`` as stored.

    Args:
        anatomy: the patient that was drawn.
        grid: the scan's grid; ``grid.affine()`` is the voxel-to-RAS affine of both arrays.
        image: HU volume.
        label: 0 background, 1 liver, 2 tumour.
    """

    def __init__(self, anatomy: Anatomy, grid: CtGrid, image: np.ndarray, label: np.ndarray) -> None:
        self.anatomy, self.grid, self.image, self.label = anatomy, grid, image, label


def make_case(seed: int | tuple[int, ...], preset: str | GridPreset = "clinical") -> PhantomCase:
    """Draw and render one case; the same seed and preset always give the same voxels.

    Args:
        seed: integer or tuple of integers (for example ``(dataset_seed, case_index)``).
        preset: a name in :data:`PRESETS` or a :class:`GridPreset`.
    """
    grid_preset = PRESETS[preset] if isinstance(preset, str) else preset
    rng = np.random.default_rng(seed)
    anatomy = random_anatomy(rng)
    grid = random_grid(rng, anatomy, grid_preset)
    image, label = render_scan(anatomy, grid, rng)
    return PhantomCase(anatomy, grid, image, label)
