"""Versions of the real MNI152 T1 as other scanners and sessions would show it.

One real subject cannot teach a network what varies between scans, so each variant resamples the
template to another resolution and orientation, turns the head, and adds a bias field, Rician
noise and a contrast (gamma) change. The tissue labels follow the same geometry, from the
probability maps, so they stay exact at every resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.samples.mni import Template, resample, rotation_about, tissue_labels
from medseg.samples.phantom.shapes import SmoothField

INTENSITY_SCALE = 1000.0  # stored MR values span about 0 to 1000
BRAIN_THRESHOLD = 0.01  # template T1 (0 to 1) inside the brain; below it only interpolation fringe is left


@dataclass(frozen=True)
class MriVariant:
    """How one variant differs from the template.

    Args:
        name: case name.
        spacing: voxel size (mm).
        rotation_deg: head rotation about x, y and z (degrees).
        bias: log-amplitude of the smooth multiplicative bias field.
        noise: Rician noise standard deviation, relative to the brightest tissue.
        gamma: contrast change, intensity ``** gamma``.
        orientation: ``"RAS"`` or ``"LPS"`` storage.
    """

    name: str
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bias: float = 0.0
    noise: float = 0.0
    gamma: float = 1.0
    orientation: str = "RAS"

    @classmethod
    def random(cls, rng: np.random.Generator, name: str) -> MriVariant:
        """A random variant: 1 to 2 mm voxels (sometimes 3 mm slices), up to 15 degrees of turn."""
        spacing = [1.0, 1.2, 1.5, 2.0][rng.integers(4)]
        voxel = [spacing] * 3
        if rng.random() < 0.3:  # thick slices along one axis, as in a 2D acquisition
            voxel[rng.integers(3)] = 3.0
        return cls(
            name=name,
            spacing=tuple(voxel),  # type: ignore[arg-type]
            rotation_deg=tuple(rng.uniform(-15, 15, 3)),
            bias=float(rng.uniform(0, 0.5)),
            noise=float(rng.uniform(0.01, 0.05)),
            gamma=float(rng.uniform(0.7, 1.4)),
            orientation=str(rng.choice(["RAS", "LPS"])),
        )


# The held-out checks of the brain tissue bundle: each changes one thing.
HELD_OUT = (
    MriVariant("resampled_1p5mm", spacing=(1.5, 1.5, 1.5)),
    MriVariant("resampled_3mm", spacing=(3.0, 3.0, 3.0)),
    MriVariant("bias_field", bias=0.6),
    MriVariant("rotated_15deg", rotation_deg=(0.0, 0.0, 15.0)),
)


def variant_grid(template: Template, variant: MriVariant) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine and shape of a variant: the template's field of view at the variant's spacing and storage."""
    extent = np.asarray(template.t1.shape) * np.linalg.norm(template.affine[:3, :3], axis=0)
    spacing = np.asarray(variant.spacing)
    shape = tuple(int(n) for n in np.ceil(extent / spacing))
    first = template.affine[:3, 3].copy()
    step = spacing.copy()
    if variant.orientation == "LPS":
        first[:2] += spacing[:2] * (np.asarray(shape[:2]) - 1)
        step[:2] *= -1
    affine = np.diag([*step, 1.0])
    affine[:3, 3] = first
    return affine, shape  # type: ignore[return-value]


def head_motion(template: Template, rotation_deg: tuple[float, float, float]) -> np.ndarray:
    """``(4, 4)`` world transform that turns the head by ``rotation_deg`` about the template's centre."""
    centre = template.affine @ np.append(np.asarray(template.t1.shape) / 2, 1)
    return rotation_about(centre[:3], np.asarray(rotation_deg))


def bias_field(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, float, float], strength: float
) -> np.ndarray:
    """A smooth multiplicative bias field ``exp(strength * field / 2)``: ``shape`` float32, waves of 150-400 mm."""
    field = SmoothField.random(rng, terms=3, wavelength_mm=(150, 400))
    x, y, z = (np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing, strict=True))
    return np.exp(strength * field(x[:, None, None], y[None, :, None], z[None, None, :]) / 2)


def add_rician_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """The magnitude of ``image`` plus complex Gaussian noise of standard deviation ``sigma`` (Rician)."""
    real, imaginary = (rng.normal(0, sigma, image.shape).astype(np.float32) for _ in range(2))
    return np.sqrt((image + real) ** 2 + imaginary**2)


def to_stored(image: np.ndarray) -> np.ndarray:
    """int16 voxels: relative intensities times :data:`INTENSITY_SCALE`, clipped to the int16 range from 0."""
    return np.clip(np.rint(image * INTENSITY_SCALE), 0, np.iinfo(np.int16).max).astype(np.int16)


def render_variant(template: Template, variant: MriVariant, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Render one variant.

    Returns:
        ``(image, label, affine)``: int16 T1 intensities ``(X, Y, Z)``, uint8 labels (1 grey, 2 white
        matter) on the same grid, and the ``(4, 4)`` voxel-to-RAS affine.
    """
    affine, shape = variant_grid(template, variant)
    motion = head_motion(template, variant.rotation_deg)
    t1, grey, white = (
        resample(volume, template.affine, affine, shape, moved_by=motion)
        for volume in (template.t1, template.grey, template.white)
    )
    image = np.clip(t1, 0, None) ** variant.gamma
    if variant.bias:
        image *= bias_field(rng, shape, variant.spacing, variant.bias)
    if variant.noise:  # skull stripping comes after acquisition: outside the brain stays exactly 0
        image = np.where(t1 >= BRAIN_THRESHOLD, add_rician_noise(image, rng, variant.noise), 0)
    return to_stored(image), tissue_labels(grey, white), affine
