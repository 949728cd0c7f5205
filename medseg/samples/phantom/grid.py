"""The voxel grid of a synthetic CT: matrix, spacing, field of view, orientation and affine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.samples.phantom.anatomy import Anatomy


@dataclass(frozen=True)
class GridPreset:
    """How a scan is sampled.

    Args:
        name: preset name used on the command line.
        matrix: in-plane matrix size (both axes).
        spacing_xy_mm: range of in-plane spacing; the field of view follows the body's width.
        slice_mm: range of slice spacing (slices are contiguous, so this is also their thickness).
        slices: fixed number of slices centred on the liver, or None for a scan from the lung
            bases to below the kidneys.
    """

    name: str
    matrix: int
    spacing_xy_mm: tuple[float, float]
    slice_mm: tuple[float, float]
    slices: int | None = None


PRESETS: dict[str, GridPreset] = {
    "clinical": GridPreset("clinical", 512, (0.6, 0.9), (1.0, 5.0)),
    # Coarse volumes for tests and quick checks: the same anatomy on a 96 x 96 matrix.
    "small": GridPreset("small", 96, (3.2, 4.8), (4.0, 6.0)),
    # The benchmark scan of issue 6: 512 x 512 x 200 at 0.75 x 0.75 x 1.5 mm.
    "benchmark": GridPreset("benchmark", 512, (0.75, 0.75), (1.5, 1.5), slices=200),
}


@dataclass(frozen=True)
class CtGrid:
    """A scan's grid. Arrays are built in canonical RAS voxel order, then stored as ``orientation``.

    Args:
        shape: ``(X, Y, Z)`` voxels.
        spacing: ``(sx, sy, sz)`` mm.
        first: anatomy-frame position (mm) of the canonical voxel ``(0, 0, 0)``.
        offset: translation (mm) from the anatomy frame to the scanner's world frame.
        orientation: ``"RAS"`` or ``"LPS"``: the direction each stored voxel axis points to.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    first: tuple[float, float, float]
    offset: tuple[float, float, float]
    orientation: str

    def axes_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anatomy-frame coordinates (mm, float32) of the canonical voxel centres along x, y and z."""
        return tuple(  # type: ignore[return-value]
            (f + s * np.arange(n)).astype(np.float32)
            for f, s, n in zip(self.first, self.spacing, self.shape, strict=True)
        )

    def affine(self) -> np.ndarray:
        """``(4, 4)`` voxel-to-RAS-world affine of the stored (oriented) array."""
        start = np.asarray(self.first, float) + np.asarray(self.offset, float)
        step = np.asarray(self.spacing, float)
        if self.orientation == "LPS":  # first two axes run towards patient left and posterior
            start[:2] += step[:2] * (np.asarray(self.shape[:2]) - 1)
            step[:2] *= -1
        affine = np.diag([*step, 1.0])
        affine[:3, 3] = start
        return affine

    def orient(self, canonical: np.ndarray) -> np.ndarray:
        """Reorder a canonical ``(X, Y, Z)`` array into this grid's stored orientation."""
        return np.ascontiguousarray(canonical[::-1, ::-1] if self.orientation == "LPS" else canonical)


def random_grid(rng: np.random.Generator, anatomy: Anatomy, preset: GridPreset) -> CtGrid:
    """Place a scan around the anatomy: a field of view that fits the body and covers the liver."""
    body = anatomy.body
    fov = 2 * body.semi_lr + rng.uniform(10, 110)
    spacing_xy = float(np.clip(fov / preset.matrix, *preset.spacing_xy_mm))
    slice_mm = float(rng.uniform(*preset.slice_mm))
    top = anatomy.diaphragm.right_top
    if preset.slices is None:
        z_lo, z_hi = top - rng.uniform(170, 210), top + rng.uniform(15, 35)
        slices = round((z_hi - z_lo) / slice_mm)
    else:
        slices, z_lo = preset.slices, top - 70 - preset.slices * slice_mm / 2
    centre = rng.uniform(-15, 15, size=2) + np.array([0, (body.semi_anterior - body.semi_posterior) / 2])
    half = spacing_xy * (preset.matrix - 1) / 2
    return CtGrid(
        shape=(preset.matrix, preset.matrix, slices),
        spacing=(spacing_xy, spacing_xy, slice_mm),
        first=(centre[0] - half, centre[1] - half, z_lo),
        offset=(rng.uniform(-20, 20), rng.uniform(-200, -100), rng.uniform(-1400, -300)),
        orientation=str(rng.choice(["RAS", "LPS"])),
    )
