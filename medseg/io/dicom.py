"""Read a DICOM series folder into a NIfTI file on the series' own voxel grid.

SimpleITK (GDCM) finds, sorts and reads the slices and applies the rescale slope and intercept,
so CT values come out in HU. SimpleITK works in LPS physical space and ``(Z, Y, X)`` arrays;
NIfTI affines map ``(X, Y, Z)`` voxels to RAS. :func:`ras_affine` and :func:`series_to_nifti`
do that translation, so the NIfTI overlays the series exactly.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.errors import MedsegError
from medseg.io.nifti import write_nifti
from medseg.memory import available_memory, readable_size

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
IMAGE_POSITION_TAG = "0020|0032"  # ImagePositionPatient: where a slice's first voxel lies (LPS, mm)
# How far a slice may lie from where the series' grid puts it, as a fraction of the slice spacing.
SLICE_POSITION_TOLERANCE = 0.01
MAX_BYTES_PER_VALUE = 8  # the widest pixel type ITK reads a rescaled series into (float64)


@contextmanager
def _itk_warnings_off() -> Iterator[None]:
    """Keep ITK from printing warnings straight to stderr; medseg reports the problems itself.

    ITK's own warnings obey its global switch; its numerics library (VNL, e.g. on a singular
    direction matrix from a damaged slice) writes to file descriptor 2 regardless, so that is
    pointed at ``/dev/null`` meanwhile.
    """
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def series_files(folder: Path) -> tuple[str, ...]:
    """The files of the one DICOM series in ``folder``, sorted by slice position.

    Raises:
        MedsegError: the folder holds no DICOM series, or more than one.
    """
    with _itk_warnings_off():
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        files = {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series_ids}
    if not files:
        raise MedsegError("no DICOM series found in this folder", folder)
    if len(files) > 1:
        listing = ", ".join(f"{uid} ({len(names)} files)" for uid, names in files.items())
        raise MedsegError(f"holds {len(files)} DICOM series: {listing}; pass one series per folder", folder)
    return next(iter(files.values()))


def _itk_reason(error: RuntimeError) -> str:
    """The first sentence of a SimpleITK exception's message (its first line names ITK's source file)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[1] if len(lines) > 1 else str(error).strip()
    return message.split(". ")[0].rstrip(".")


def _position(value: str) -> np.ndarray | None:
    r"""An ImagePositionPatient value (``x\y\z``, mm) as three finite numbers, or None."""
    try:
        position = np.array(value.split("\\"), dtype=float).reshape(3)
    except ValueError:
        return None
    return position if np.isfinite(position).all() else None


def _check_slice_positions(reader: sitk.ImageSeriesReader, image: sitk.Image, folder: Path) -> None:
    """Check that every slice lies where the image's evenly spaced grid puts it.

    ITK builds the grid from the slice positions and only warns when they are uneven, which is
    what a missing or unreadable slice (GDCM skips it) or a tilted-gantry series looks like.
    """
    files = reader.GetFileNames()
    tolerance = SLICE_POSITION_TOLERANCE * image.GetSpacing()[2]
    for index, name in enumerate(files):
        if not reader.HasMetaDataKey(index, IMAGE_POSITION_TAG):
            raise MedsegError(f"slice {Path(name).name} has no ImagePositionPatient", folder)
        found = _position(reader.GetMetaData(index, IMAGE_POSITION_TAG))
        if found is None:
            raise MedsegError(f"slice {Path(name).name} has an unreadable ImagePositionPatient", folder)
        expected = np.array(image.TransformIndexToPhysicalPoint((0, 0, index)))
        if np.abs(found - expected).max() > tolerance:
            raise MedsegError(
                f"slice {Path(name).name} is off the series' evenly spaced grid "
                f"({len(files)} slices found: is a slice missing or unreadable?)",
                folder,
            )


def _slice_bytes(name: str, folder: Path) -> int:
    """Bytes one slice file's header says its voxels take (at most), read without its pixel data."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    try:
        with _itk_warnings_off():
            reader.ReadImageInformation()
    except RuntimeError as error:
        raise MedsegError(f"cannot read the DICOM series ({_itk_reason(error)})", folder) from None
    return math.prod(reader.GetSize()) * reader.GetNumberOfComponents() * MAX_BYTES_PER_VALUE


def _check_fits(files: Sequence[str], folder: Path) -> None:
    """Refuse a series whose slice headers claim more voxels than memory holds, before any is read."""
    size = sum(_slice_bytes(name, folder) for name in files)
    if size > (budget := available_memory()):
        available = f"only {readable_size(budget)} of memory available"
        raise MedsegError(f"series would take {readable_size(size)}; {available}", folder)


def read_series(folder: Path) -> sitk.Image:
    """Read the one DICOM series in ``folder`` as a 3D grey-scale SimpleITK image (LPS, rescaled values).

    Raises:
        MedsegError: no series or several, unreadable or inconsistent slices, uneven slice
            positions, or more than one value per voxel (colour).
    """
    files = series_files(folder)
    _check_fits(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        with _itk_warnings_off():
            image = reader.Execute()
    except RuntimeError as error:
        raise MedsegError(f"cannot read the DICOM series ({_itk_reason(error)})", folder) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        components = image.GetNumberOfComponentsPerPixel()
        raise MedsegError(f"has {components} values per voxel (colour?); expected a grey-scale scan", folder)
    _check_slice_positions(reader, image, folder)
    return image


def ras_affine(image: sitk.Image) -> np.ndarray:
    """The ``(4, 4)`` voxel-to-RAS affine of a 3D SimpleITK image, for its ``(X, Y, Z)`` voxel indices.

    SimpleITK maps index ``i`` to the LPS point ``origin + direction @ (spacing * i)``; flipping the
    first two physical axes turns that into RAS.
    """
    direction = np.reshape(image.GetDirection(), (3, 3))
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = LPS_TO_RAS @ np.asarray(image.GetOrigin())
    return affine


def series_to_nifti(folder: str | Path, target: str | Path) -> Path:
    """Write the DICOM series in ``folder`` as a NIfTI at ``target`` on exactly the series' grid.

    Args:
        folder: a folder holding one DICOM series (other files in it are ignored).
        target: the ``.nii`` or ``.nii.gz`` file to write (atomically).

    Returns:
        ``target``. Its data is ``(X, Y, Z)`` with the series' pixel type and rescaled values
        (HU for CT); its qform and sform are :func:`ras_affine` of the series.

    Raises:
        MedsegError: see :func:`read_series`.
    """
    image = read_series(Path(folder))
    voxels = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # SimpleITK's (Z, Y, X) -> (X, Y, Z)
    return write_nifti(target, voxels, ras_affine(image))
