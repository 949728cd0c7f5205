"""The real MNI152 T1 template and its tissue probability maps, as shipped inside nilearn.

nilearn carries the ICBM 2009a nonlinear symmetric template at 1 mm (197 x 233 x 189 voxels,
skull-stripped) with grey- and white-matter probability maps; they load from the installed package
with no download. :func:`resample` puts them on any grid, optionally moved by a rigid transform,
with the partial-volume blur a coarser scanner resolution would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import ndimage

from medseg.errors import MedsegError

# A voxel is labelled with a tissue when that tissue's probability is the larger and above this.
TISSUE_THRESHOLD = 0.5
BACKGROUND, GREY_MATTER, WHITE_MATTER = 0, 1, 2


@dataclass(frozen=True)
class Template:
    """The template volumes, all ``(X, Y, Z)`` float32 on one 1 mm RAS grid.

    Args:
        t1: T1-weighted intensities in [0, 1].
        grey: grey-matter probability.
        white: white-matter probability.
        affine: ``(4, 4)`` voxel-to-RAS affine.
    """

    t1: np.ndarray
    grey: np.ndarray
    white: np.ndarray
    affine: np.ndarray

    @property
    def csf(self) -> np.ndarray:
        """Cerebrospinal fluid probability: the rest of the brain (where T1 is non-zero)."""
        brain = (self.t1 > 0.02).astype(np.float32)
        return np.clip(brain - self.grey - self.white, 0, 1)


def require_nilearn() -> None:
    """Raise the one line that says how to install nilearn when it is missing.

    nilearn is an extra (``medseg[mri]``), not a dependency: it brings scikit-learn and pandas, which
    ``import monai`` imports whenever they are installed, slowing every command's start-up.

    Raises:
        MedsegError: nilearn is not installed.
    """
    try:
        import nilearn  # noqa: F401
    except ImportError as error:
        raise MedsegError(
            "the MNI152 brain ships inside nilearn, which is not installed: pip install 'medseg[mri]'"
        ) from error


@cache
def load_template() -> Template:
    """Load the 1 mm template and its grey/white-matter maps from nilearn (cached; see :func:`require_nilearn`)."""
    require_nilearn()
    from nilearn import datasets

    images = [
        datasets.load_mni152_template(resolution=1),
        datasets.load_mni152_gm_template(resolution=1),
        datasets.load_mni152_wm_template(resolution=1),
    ]
    t1, grey, white = (np.asarray(image.get_fdata(), np.float32) for image in images)
    return Template(t1, grey, white, np.asarray(images[0].affine, float))


def tissue_labels(grey: np.ndarray, white: np.ndarray) -> np.ndarray:
    """uint8 labels from probability maps: 1 grey matter, 2 white matter, 0 elsewhere."""
    labels = np.zeros(grey.shape, np.uint8)
    labels[(grey >= white) & (grey > TISSUE_THRESHOLD)] = GREY_MATTER
    labels[(white > grey) & (white > TISSUE_THRESHOLD)] = WHITE_MATTER
    return labels


def rotation_about(centre: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """``(4, 4)`` world transform turning by ``degrees`` about x, y and z through ``centre`` (mm)."""
    rx, ry, rz = np.deg2rad(degrees)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    turn = (
        np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    )
    transform = np.eye(4)
    transform[:3, :3] = turn
    transform[:3, 3] = centre - turn @ centre
    return transform


def resample(
    volume: np.ndarray,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    target_shape: tuple[int, int, int],
    *,
    moved_by: np.ndarray | None = None,
    order: int = 1,
) -> np.ndarray:
    """Sample ``volume`` on a target grid, the content moved by a world transform.

    Coarser target voxels are first blurred (a Gaussian whose FWHM makes up the difference in
    voxel size), so downsampling behaves like a scanner acquiring at that resolution.

    Args:
        volume: ``(X, Y, Z)`` source voxels.
        source_affine: ``(4, 4)`` voxel-to-world affine of ``volume``.
        target_affine: ``(4, 4)`` voxel-to-world affine of the result.
        target_shape: ``(X', Y', Z')`` of the result.
        moved_by: ``(4, 4)`` world transform applied to the content (None: no motion).
        order: spline order (1 linear, 0 nearest).

    Returns:
        ``target_shape`` float32 array; outside the source it is 0.
    """
    source_spacing = np.linalg.norm(source_affine[:3, :3], axis=0)
    target_spacing = np.linalg.norm(target_affine[:3, :3], axis=0)
    extra = np.sqrt(np.clip(target_spacing**2 - source_spacing**2, 0, None))
    if order > 0 and extra.max() > 0:
        volume = ndimage.gaussian_filter(volume, extra / 2.355 / source_spacing)
    motion = np.eye(4) if moved_by is None else moved_by
    target_to_source = np.linalg.inv(source_affine) @ np.linalg.inv(motion) @ target_affine
    return ndimage.affine_transform(
        volume.astype(np.float32),
        target_to_source[:3, :3],
        offset=target_to_source[:3, 3],
        output_shape=target_shape,
        order=order,
        mode="constant",
        cval=0.0,
    )
