"""Checks on a NIfTI header, made before any voxel is read.

A header is a few hundred bytes that say how to read everything after them. A corrupt or hostile
one can claim terabytes of voxels, a grid with zero, negative or non-finite spacing, a singular or
sheared direction matrix, or an intensity scaling that overflows. nibabel quietly repairs some of
these as it loads (a zero spacing becomes 1, a negative one its absolute value, an infinite slope no
scaling at all), which would put a mask on a grid the scan does not have; medseg refuses them.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.openers import ImageOpener

from medseg.errors import MedsegError
from medseg.memory import readable_size

# Largest deviation of DᵀD from the identity for a direction matrix D to count as orthonormal
# (float32 headers of rotated grids reach about 1e-7).
ORTHONORMAL_TOLERANCE = 1e-3
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _stored_header(image: nib.Nifti1Image, path: Path) -> nib.Nifti1Header:
    """The header as the file stores it, before nibabel's repairs."""
    with ImageOpener(str(path)) as handle:
        return type(image.header).from_fileobj(handle, check=False)


def data_bytes(image: nib.Nifti1Image) -> int:
    """Bytes the voxels take in memory as stored, from the header alone (exact, no overflow)."""
    return int(np.prod(image.shape, dtype=object)) * image.header.get_data_dtype().itemsize


def check_fits(image: nib.Nifti1Image, path: Path, budget: int) -> None:
    """Refuse a scan whose voxels alone would not fit ``budget`` bytes, before they are allocated."""
    if (size := data_bytes(image)) > budget:
        dims = " x ".join(map(str, image.shape))
        claim = f"header claims {dims} voxels ({readable_size(size)})"
        raise MedsegError(f"{claim}; only {readable_size(budget)} of memory available", path)


def _check_spacing(header: nib.Nifti1Header, path: Path) -> None:
    spatial = min(3, int(header["dim"][0]))
    spacing = np.asarray(header["pixdim"][1 : 1 + spatial], dtype=float)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise MedsegError(f"voxel spacing {spacing.tolist()} in the header is not positive and finite", path)


def _check_direction(affine: np.ndarray, path: Path) -> None:
    if not np.isfinite(affine).all():
        raise MedsegError("affine holds NaN or infinite values", path)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if not (spacing > 0).all():
        raise MedsegError("direction matrix is singular (an axis has zero length)", path)
    direction = affine[:3, :3] / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > ORTHONORMAL_TOLERANCE:
        raise MedsegError("direction matrix is not orthonormal (a sheared or degenerate affine)", path)


def _check_scaling(header: nib.Nifti1Header, path: Path) -> None:
    """Slope 0 or NaN means unscaled (NIfTI); otherwise the scaled range of an integer type must fit float32."""
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if slope == 0 or np.isnan(slope):
        return
    if not (np.isfinite(slope) and np.isfinite(inter)):
        raise MedsegError(f"intensity scaling is not finite (scl_slope {slope}, scl_inter {inter})", path)
    dtype = header.get_data_dtype()
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        largest = max(abs(slope * info.min + inter), abs(slope * info.max + inter))
        if largest > FLOAT32_MAX:
            raise MedsegError(f"intensity scaling overflows float32 (scl_slope {slope}, scl_inter {inter})", path)


def check_header(image: nib.Nifti1Image, path: Path) -> None:
    """Refuse a header with a bad grid or scaling: spacing, direction matrix, slope and intercept.

    Raises:
        MedsegError: zero, negative or non-finite spacing; a non-finite, singular or non-orthonormal
            affine; a non-finite intensity scaling, or one that overflows float32.
    """
    stored = _stored_header(image, path)
    _check_spacing(stored, path)
    _check_direction(image.affine, path)
    _check_scaling(stored, path)
