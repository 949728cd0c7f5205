"""A 2D task for teaching: axial slices through the liver of synthetic CT phantoms.

Each phantom is rendered on a coarse grid (a 96 x 96 matrix, 5 mm slices) centred on the liver, put in
RAS voxel order, windowed to the abdomen and scaled to [0, 1]. Every axial slice that shows enough
liver becomes one example, labelled 0 background, 1 liver, 2 tumour.

The patients are the phantom's, with two changes that let a few minutes of CPU training learn the
tumours: each tumour is one uniform layer :data:`TUMOUR_CONTRAST_HU` darker than the liver (no rims,
necrosis or bright lesions), and the scanner noise is halved. The lesson the slices teach is about shape and
size, which stay as drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from medseg.samples.phantom import Anatomy, GridPreset, PhantomCase
from medseg.samples.phantom.anatomy import random_anatomy
from medseg.samples.phantom.grid import random_grid
from medseg.samples.phantom.render import render

SLICE_GRID = GridPreset("teaching", matrix=96, spacing_xy_mm=(3.0, 4.5), slice_mm=(8.0, 8.0), slices=12)
HU_WINDOW = (-150.0, 250.0)
MIN_LIVER_PIXELS = 50
TUMOUR_CONTRAST_HU = 100.0


@dataclass(frozen=True)
class SliceSet:
    """Axial slices and their labels.

    Args:
        images: ``(N, 1, H, W)`` float32 CT scaled from :data:`HU_WINDOW` to [0, 1].
        labels: ``(N, 1, H, W)`` int64, 0 background, 1 liver, 2 tumour.
        spacing: ``(N, 2)`` in-plane pixel size in mm.
        cases: ``(N,)`` index of the phantom each slice comes from.
    """

    images: np.ndarray
    labels: np.ndarray
    spacing: np.ndarray
    cases: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def _conspicuous(anatomy: Anatomy) -> Anatomy:
    """The same patient with uniform dark tumours (:data:`TUMOUR_CONTRAST_HU` below the liver) and half the noise."""
    lesion_hu = anatomy.hu.liver - TUMOUR_CONTRAST_HU
    tumours = tuple(replace(t, layers=((t.layers[0][0], lesion_hu),), kind="hypo") for t in anatomy.tumours)
    return replace(anatomy, tumours=tumours, noise_sd=anatomy.noise_sd / 2)


def _teaching_case(seed: int, index: int, grid: GridPreset) -> PhantomCase:
    """Like :func:`medseg.samples.phantom.make_case`, with the tumours made :func:`_conspicuous`."""
    rng = np.random.default_rng((seed, index))
    anatomy = _conspicuous(random_anatomy(rng))
    case_grid = random_grid(rng, anatomy, grid)
    image, label = render(anatomy, case_grid, rng)
    return PhantomCase(anatomy, case_grid, image, label)


def _case_slices(seed: int, index: int, grid: GridPreset) -> SliceSet:
    case = _teaching_case(seed, index, grid)
    image = case.grid.orient(case.image).astype(np.float32)  # orient() is its own inverse: back to RAS
    label = case.grid.orient(case.label).astype(np.int64)
    keep = np.flatnonzero((label > 0).sum(axis=(0, 1)) >= MIN_LIVER_PIXELS)
    low, high = HU_WINDOW
    images = (np.clip(image[..., keep], low, high) - low) / (high - low)
    return SliceSet(
        images=np.moveaxis(images, -1, 0)[:, None],
        labels=np.moveaxis(label[..., keep], -1, 0)[:, None],
        spacing=np.tile(case.grid.spacing[:2], (len(keep), 1)),
        cases=np.full(len(keep), index),
    )


def phantom_slices(seed: int, cases: range, grid: GridPreset = SLICE_GRID) -> SliceSet:
    """The liver slices of phantoms ``(seed, i)`` for ``i`` in ``cases``; disjoint ranges never share a patient.

    Args:
        seed: dataset seed.
        cases: phantom indices, e.g. ``range(0, 16)`` for training and ``range(16, 22)`` for testing.
        grid: how each phantom is sampled.
    """
    parts = [_case_slices(seed, index, grid) for index in cases]
    return SliceSet(*(np.concatenate([getattr(p, name) for p in parts]) for name in SliceSet.__dataclass_fields__))
