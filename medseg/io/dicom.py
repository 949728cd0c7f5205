"""Read the image in a DICOM folder into a NIfTI file on the image's own voxel grid.

:func:`find_image` picks the one CT, MR or PET image out of whatever else an export put beside
it (:mod:`medseg.io.dicom_objects` says what each file is). For a series of slices SimpleITK
(GDCM) finds, sorts and reads the slices and applies the rescale slope and intercept, so CT values
come out in HU; an enhanced multi-frame image is read by :mod:`medseg.io.dicom_volume`.
SimpleITK and DICOM work in LPS physical space, SimpleITK in ``(Z, Y, X)`` arrays; NIfTI affines map
``(X, Y, Z)`` voxels to RAS. :func:`ras_affine` and :func:`image_to_nifti` do that translation, so the
NIfTI overlays the scan exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.errors import MedsegError
from medseg.io.dicom_objects import DicomObject, describe, folder_objects, read_object
from medseg.io.dicom_volume import read_volume
from medseg.io.nifti import write_nifti
from medseg.memory import available_memory, readable_size
from medseg.stderr import c_output_silenced

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
IMAGE_POSITION_TAG = "0020|0032"  # ImagePositionPatient: where a slice's first voxel lies (LPS, mm)
# How far a slice may lie from where the series' grid puts it, as a fraction of the slice spacing.
SLICE_POSITION_TOLERANCE = 0.01
MAX_BYTES_PER_VALUE = 8  # the widest pixel type ITK reads a rescaled series into (float64)


@contextmanager
def _itk_warnings_off() -> Iterator[None]:
    """Keep ITK from printing warnings straight to stderr; medseg reports the problems itself.

    ITK's own warnings obey its global switch, which is turned off (and back) inside the silenced
    window, so that threads do not turn it on under each other; its numerics library (VNL, e.g. on
    a singular direction matrix from a damaged slice) writes to file descriptor 2 regardless
    (:func:`medseg.stderr.c_output_silenced`).
    """
    with c_output_silenced():
        shown = sitk.ProcessObject.GetGlobalWarningDisplay()
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalWarningDisplay(shown)


@dataclass(frozen=True)
class DicomImage:
    """The one image a DICOM folder (or multi-frame file) holds.

    Args:
        source: the folder or file given.
        files: the slice files sorted by position, or the one multi-frame file.
        first: the first file's header description (kind, modality).
    """

    source: Path
    files: tuple[str, ...]
    first: DicomObject

    @property
    def modality(self) -> str:
        """``CT``, ``MR`` or ``PT``, from the SOP class (the Modality element where it says more)."""
        return self.first.scan_modality or self.first.modality or "unknown"


def _gdcm_series(folder: Path) -> dict[str, tuple[str, ...]]:
    """Files of each series GDCM finds in ``folder`` (objects with pixel data), sorted by position."""
    with _itk_warnings_off():
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
        return {uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid) for uid in series_ids}


def find_image(source: Path) -> DicomImage:
    """The one CT, MR or PET image in a DICOM folder, or in a multi-frame DICOM file.

    Objects that are not images (RT dose, structure sets, reports, DICOM SEG...) beside one image
    series are ignored; alone, they are refused saying what they are.

    Raises:
        MedsegError: no image, several image series, or a single slice file given for a series.
    """
    if source.is_file():
        found = read_object(source)
        if found is None:
            raise MedsegError("not a NIfTI or DICOM file", source)
        if found.is_slice:
            raise MedsegError(f"is {found.kind}; pass the folder that holds its series", source)
        if not found.is_volume:
            raise MedsegError(f"is {found.kind}, not an image series", source)
        return DicomImage(source, (str(source),), found)
    series = {}
    for uid, files in _gdcm_series(source).items():
        first = read_object(Path(files[0]))
        if first is not None and (first.is_slice or first.is_volume):
            series[uid] = (files, first)
    if not series:
        objects = folder_objects(source)
        if not objects:
            raise MedsegError("no DICOM series found in this folder (it holds no DICOM files)", source)
        if any(found.is_slice or found.is_volume for found in objects):
            problem = f"holds {describe(objects)} whose pixel data cannot be read (truncated or damaged?)"
            raise MedsegError(f"cannot read the DICOM series: it {problem}", source)
        raise MedsegError(f"holds {describe(objects)}, not an image series", source)
    if len(series) > 1:
        listing = ", ".join(f"{uid} ({len(files)} files)" for uid, (files, _) in series.items())
        raise MedsegError(f"holds {len(series)} DICOM series: {listing}; pass one series per folder", source)
    files, first = next(iter(series.values()))
    if first.is_volume and len(files) > 1:
        raise MedsegError(f"holds {len(files)} multi-frame images of one series; pass one per folder", source)
    return DicomImage(source, files, first)


def series_files(folder: Path) -> tuple[str, ...]:
    """The slice files of the one DICOM image series in ``folder``, sorted by slice position.

    Raises:
        MedsegError: see :func:`find_image`; also for a multi-frame image, which has no slice files.
    """
    image = find_image(folder)
    if image.first.is_volume:
        raise MedsegError(f"holds {image.first.kind}, not a series of slices", folder)
    return image.files


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


def _read_slices(image: DicomImage) -> sitk.Image:
    """Read a series of single-frame slices as a 3D SimpleITK image (LPS, rescaled values).

    A single slice is read as a volume one slice thick (ITK's series reader would make it 2D and
    lose its orientation); its slice spacing is what SimpleITK reads for the file.
    """
    folder, files = image.source, image.files
    _check_fits(files, folder)
    reader: sitk.ImageSeriesReader | sitk.ImageFileReader
    if len(files) == 1:
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[0])
    else:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        reader.MetaDataDictionaryArrayUpdateOn()
    try:
        with _itk_warnings_off():
            volume = reader.Execute()
    except RuntimeError as error:
        raise MedsegError(f"cannot read the DICOM series ({_itk_reason(error)})", folder) from None
    if volume.GetNumberOfComponentsPerPixel() != 1:
        components = volume.GetNumberOfComponentsPerPixel()
        raise MedsegError(f"has {components} values per voxel (colour?); expected a grey-scale scan", folder)
    if isinstance(reader, sitk.ImageSeriesReader):
        _check_slice_positions(reader, volume, folder)
    return volume


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


def image_to_nifti(image: DicomImage, target: str | Path) -> Path:
    """Write a DICOM image found by :func:`find_image` as a NIfTI at ``target``, on exactly its grid.

    Returns:
        ``target``. Its data is ``(X, Y, Z)`` with rescaled values (HU for CT); its qform and sform
        map voxels to RAS: :func:`ras_affine` of a series, the frames' own grid for a multi-frame image.

    Raises:
        MedsegError: see :func:`find_image`; also unreadable or inconsistent slices, uneven slice
            positions, more than one value per voxel (colour), or a multi-frame image that
            :func:`medseg.io.dicom_volume.read_volume` refuses.
    """
    if image.first.is_volume:
        voxels, lps_affine = read_volume(image.first)
        return write_nifti(target, voxels, np.diag([*np.diag(LPS_TO_RAS), 1.0]) @ lps_affine)
    volume = _read_slices(image)
    voxels = sitk.GetArrayFromImage(volume).transpose(2, 1, 0)  # SimpleITK's (Z, Y, X) -> (X, Y, Z)
    return write_nifti(target, voxels, ras_affine(volume))


def series_to_nifti(folder: str | Path, target: str | Path) -> Path:
    """Write the image in a DICOM folder (or multi-frame file) as a NIfTI at ``target``: :func:`image_to_nifti`."""
    return image_to_nifti(find_image(Path(folder)), target)
