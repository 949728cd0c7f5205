"""Checks on a single scan before any work starts, each failing with one line that names the file."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.errors import MedsegError
from medseg.io.paths import is_nifti


@dataclass(frozen=True)
class ScanInfo:
    """What was learnt about a readable scan.

    Args:
        path: the file.
        shape: spatial shape ``(X, Y, Z)``.
        channels: number of channels (the 4th dimension, 1 for a plain 3D scan).
        affine: ``(4, 4)`` voxel-to-RAS affine.
    """

    path: Path
    shape: tuple[int, int, int]
    channels: int
    affine: np.ndarray


def check_scan(path: str | Path, *, channels: int = 1) -> ScanInfo:
    """Read a NIfTI scan completely and check that a bundle can use it.

    Args:
        path: the scan.
        channels: channels the bundle expects; 1 means a 3D scan (a 4th axis of length 1 is allowed).

    Returns:
        The scan's shape, channel count and affine.

    Raises:
        MedsegError: missing or unreadable file, truncated data, wrong number of dimensions or
            channels, or non-finite voxel values.
    """
    path = Path(path)
    if not path.exists():
        raise MedsegError("file not found", path)
    if not path.is_file():
        raise MedsegError("not a file", path)
    if not is_nifti(path):
        raise MedsegError("not a NIfTI file (expected .nii or .nii.gz)", path)
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as error:
        raise MedsegError(f"cannot read NIfTI ({error})", path) from None
    shape = data.shape
    found = 1 if data.ndim == 3 else (shape[3] if data.ndim == 4 else None)
    if found is None or data.ndim < 3:
        dims = " x ".join(map(str, shape))
        raise MedsegError(f"has {data.ndim} dimensions ({dims}); expected a 3D scan", path)
    if found != channels:
        expected = "a 3D scan" if channels == 1 else f"{channels} channels in the 4th dimension"
        dims = " x ".join(map(str, shape))
        raise MedsegError(f"has shape {dims}; this bundle expects {expected}", path)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise MedsegError("contains NaN or infinite voxel values", path)
    return ScanInfo(path, tuple(int(s) for s in shape[:3]), found, image.affine)  # type: ignore[arg-type]
