"""NIfTI writing with the geometry conventions Slicer and ITK expect."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.io.atomic import atomic_file
from medseg.io.fast_nifti import save_nifti

SCANNER_CODE = 1  # NIfTI xform code "scanner anatomical"
RAS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # turns RAS coordinates into LPS ones, and back


def lps_affine(affine: np.ndarray) -> np.ndarray:
    """The ``(4, 4)`` voxel-to-LPS affine (NRRD, DICOM, ITK) of a ``(4, 4)`` voxel-to-RAS one (NIfTI)."""
    return RAS_FLIP @ affine


def nifti_image(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image whose qform and sform are both ``affine`` with code "scanner", units mm.

    Args:
        array: ``(X, Y, Z)`` voxel data, stored with its own dtype.
        affine: ``(4, 4)`` voxel-to-RAS affine.
    """
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=SCANNER_CODE)
    image.set_sform(affine, code=SCANNER_CODE)
    image.header.set_xyzt_units("mm", "sec")
    return image


def write_nifti(path: str | Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` to ``path`` (``.nii`` or ``.nii.gz``, ISA-L level 1) atomically; see :func:`nifti_image`."""
    with atomic_file(path) as partial:
        save_nifti(nifti_image(array, affine), partial)
    return Path(path)
