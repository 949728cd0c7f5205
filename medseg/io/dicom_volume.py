"""Read an enhanced (multi-frame) CT, MR or PET image: one file holding a whole volume.

Such a file keeps each frame's position and orientation in its per-frame functional groups, not
in the top-level elements a series of slices uses. highdicom (the ``dicom`` extra) reads those
groups, sorts the frames into a volume and refuses frames that do not lie on one evenly spaced
grid; medseg only translates its result into NIfTI's ``(X, Y, Z)`` voxel order.
"""

from __future__ import annotations

import warnings
from importlib.util import find_spec

import numpy as np

from medseg.errors import MedsegError
from medseg.io.dicom_objects import DicomObject

# highdicom's volume axes are (slice, row, column); NIfTI's voxel axes (X, Y, Z) are (column, row, slice).
DICOM_TO_NIFTI_AXES = (2, 1, 0)


def read_volume(image: DicomObject) -> tuple[np.ndarray, np.ndarray]:
    """The voxels and grid of a multi-frame image file.

    Args:
        image: the file, as :func:`medseg.io.dicom_objects.read_object` described it.

    Returns:
        ``(voxels, affine)``: float32 ``(X, Y, Z)`` values after the modality rescale (HU for CT),
        and the ``(4, 4)`` affine from those voxel indices to the patient's LPS coordinates (mm).

    Raises:
        MedsegError: highdicom is not installed, the frames carry no positions, or they do not
            form one evenly spaced volume.
    """
    if find_spec("highdicom") is None:
        raise MedsegError(f"is {image.kind}; reading it needs highdicom: pip install 'medseg[dicom]'", image.path)
    import highdicom

    try:
        with warnings.catch_warnings():  # highdicom and pydicom warn about every oddity of the header
            warnings.simplefilter("ignore")
            volume = highdicom.imread(image.path).get_volume(dtype=np.float32)
    except (RuntimeError, ValueError, AttributeError, KeyError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise MedsegError(f"is {image.kind} that cannot be read as one volume ({reason})", image.path) from None
    voxels = np.ascontiguousarray(volume.array.transpose(DICOM_TO_NIFTI_AXES))
    affine = np.eye(4)
    affine[:3, :3] = volume.affine[:3, list(DICOM_TO_NIFTI_AXES)]
    affine[:3, 3] = volume.affine[:3, 3]
    return voxels, affine
