"""DICOM series folders: conversion to NIfTI on the series' grid, errors, and `segment` on a folder."""

import locale
import math
import tempfile

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.bundles import find_bundle
from medseg.errors import MedsegError
from medseg.inference import predict
from medseg.inference.cohort_inputs import ScanRequest
from medseg.inference.manifest import MANIFEST
from medseg.inference.predict import segment
from medseg.io.dicom import series_to_nifti

from .conftest import TINY

SPACING = (0.8, 1.1, 3.0)  # (x, y, z) mm; x and y differ so a swapped axis shows
ORIGIN = (10.5, -20.25, 30.0)  # LPS mm
SHAPE_ZYX = (12, 24, 32)
INTERCEPT = -1024  # stored value = HU - INTERCEPT, so negative HU come back only if rescale is applied
FLIPPED = np.diag([-1.0, -1.0, 1.0])  # columns are the voxel axes in LPS: stored right-to-left, front-to-back


def _rotation(about_x: float, about_z: float) -> np.ndarray:
    cx, sx, cz, sz = math.cos(about_x), math.sin(about_x), math.cos(about_z), math.sin(about_z)
    return np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])


OBLIQUE = _rotation(0.3, 0.5)


def ct_volume(direction: np.ndarray, seed: int = 0) -> sitk.Image:
    """Random HU values, ``SHAPE_ZYX`` as a NumPy array, on a grid with the given direction."""
    hu = np.random.default_rng(seed).integers(-1000, 1500, size=SHAPE_ZYX, dtype=np.int16)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(tuple(direction.flatten()))
    return image


CT_TAGS = {
    "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # SOPClassUID: CT Image Storage
    "0008|0060": "CT",  # Modality
    "0028|1052": str(INTERCEPT),  # RescaleIntercept
    "0028|1053": "1",  # RescaleSlope
}


def slice_tags(slab: sitk.Image, series_uid: str, number: int) -> dict[str, str]:
    """The identity and geometry tags of one ``(X, Y, 1)`` slab of a series, taken from the slab."""
    direction = slab.GetDirection()
    return {
        "0008|0018": f"{series_uid}.{number}",  # SOPInstanceUID
        "0020|000d": "1.2.826.0.1.3680043.8.498.1",  # StudyInstanceUID
        "0020|000e": series_uid,  # SeriesInstanceUID
        "0020|0013": str(number),  # InstanceNumber
        "0020|0032": "\\".join(map(str, slab.GetOrigin())),  # ImagePositionPatient
        "0020|0037": "\\".join(map(str, direction[0:9:3] + direction[1:9:3])),  # ImageOrientationPatient
        "0028|0030": f"{slab.GetSpacing()[1]}\\{slab.GetSpacing()[0]}",  # PixelSpacing: rows, columns
        "0018|0050": str(slab.GetSpacing()[2]),  # SliceThickness
    }


def write_slice(path, slab: sitk.Image, series_uid: str, number: int, *, ct: bool = True) -> None:
    """Write one slab as a DICOM file; a CT slice stores ``HU - INTERCEPT``.

    ITK's DICOM writer sets the process locale to "C" when it formats these tags (SimpleITK 2.5),
    which would make later subprocess output decode as ASCII in other tests; it is restored here.
    """
    for tag, value in {**slice_tags(slab, series_uid, number), **(CT_TAGS if ct else {})}.items():
        slab.SetMetaData(tag, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        writer.Execute(slab)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)


def slice_file(folder, index: int):
    """Slice ``index``'s file; the names are shuffled so that the reader must sort by position."""
    return folder / f"slice_{(7 * index) % SHAPE_ZYX[0]:03d}.dcm"


def write_series(folder, image: sitk.Image, series_uid: str = "1.2.826.0.1.3680043.8.498.2"):
    """Write ``image`` as a DICOM series, one file per slice, into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(image.GetDepth()):
        write_slice(slice_file(folder, index), image[:, :, index : index + 1], series_uid, index + 1)
    return folder


def assert_same_grid(image: sitk.Image, reference: sitk.Image) -> None:
    """Same size, spacing, origin and direction, up to the float32 precision of a NIfTI header."""
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)


def simpleitk_series(folder) -> sitk.Image:
    """The series as SimpleITK reads it on its own."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.mark.parametrize("direction", [FLIPPED, OBLIQUE], ids=["flipped", "oblique"])
def test_nifti_has_the_series_grid(tmp_path, direction):
    volume = ct_volume(direction)
    folder = write_series(tmp_path / "series", volume)
    nifti = series_to_nifti(folder, tmp_path / "series.nii.gz")
    converted = sitk.ReadImage(str(nifti))
    assert_same_grid(converted, volume)
    assert_same_grid(converted, simpleitk_series(folder))
    header = nib.load(nifti).header
    assert header["qform_code"] == header["sform_code"] == 1


def test_nifti_keeps_the_ct_values(tmp_path):
    volume = ct_volume(OBLIQUE)
    folder = write_series(tmp_path / "series", volume)
    voxels = np.asarray(nib.load(series_to_nifti(folder, tmp_path / "series.nii.gz")).dataobj)
    hu = sitk.GetArrayFromImage(volume)  # (Z, Y, X)
    assert voxels.shape == SHAPE_ZYX[::-1]
    assert voxels.min() < 0, "rescale intercept not applied"
    np.testing.assert_array_equal(voxels, hu.transpose(2, 1, 0))


def test_nifti_affine_maps_voxels_where_simpleitk_does(tmp_path):
    volume = ct_volume(OBLIQUE)
    folder = write_series(tmp_path / "series", volume)
    affine = nib.load(series_to_nifti(folder, tmp_path / "series.nii.gz")).affine
    voxel = (31, 5, 11)
    lps = np.array(volume.TransformIndexToPhysicalPoint(voxel))
    ras = affine @ np.array([*voxel, 1.0])
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-4)


def assert_one_line_error(error: pytest.ExceptionInfo, folder, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{folder}: ")
    for fragment in fragments:
        assert fragment in message


def test_empty_folder(tmp_path, capfd):
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(MedsegError) as error:
        series_to_nifti(tmp_path, tmp_path / "out.nii.gz")
    assert_one_line_error(error, tmp_path, "no DICOM series")
    assert capfd.readouterr().err == "", "ITK printed to stderr"
    assert not (tmp_path / "out.nii.gz").exists()


def test_two_series_in_one_folder(tmp_path):
    volume = ct_volume(FLIPPED)
    write_series(tmp_path, volume, series_uid="1.2.3.1")
    for index in range(3):
        write_slice(tmp_path / f"other_{index}.dcm", volume[:, :, index : index + 1], "1.2.3.2", index + 1)
    with pytest.raises(MedsegError) as error:
        series_to_nifti(tmp_path, tmp_path / "out.nii.gz")
    assert_one_line_error(error, tmp_path, "1.2.3.1 (12 files)", "1.2.3.2 (3 files)", "one series per folder")


def test_unreadable_slice_in_the_middle(tmp_path, capfd):
    folder = write_series(tmp_path / "series", ct_volume(FLIPPED))
    middle = slice_file(folder, 5)
    middle.write_bytes(middle.read_bytes()[:-400])  # GDCM skips it, leaving a gap
    with pytest.raises(MedsegError) as error:
        series_to_nifti(folder, tmp_path / "out.nii.gz")
    assert_one_line_error(error, folder, "11 slices", "missing or unreadable")
    assert capfd.readouterr().err == "", "ITK printed to stderr"


def test_slice_of_another_size(tmp_path):
    volume = ct_volume(FLIPPED)
    folder = write_series(tmp_path / "series", volume)
    write_slice(slice_file(folder, 5), volume[:, :10, 5:6], "1.2.826.0.1.3680043.8.498.2", 6)
    with pytest.raises(MedsegError) as error:
        series_to_nifti(folder, tmp_path / "out.nii.gz")
    assert_one_line_error(error, folder, "cannot read the DICOM series")


def test_colour_pictures_are_refused_as_secondary_capture(tmp_path):
    rgb = np.zeros((3, 8, 10, 3), np.uint8)
    image = sitk.GetImageFromArray(rgb, isVector=True)
    for index in range(3):
        write_slice(tmp_path / f"{index}.dcm", image[:, :, index : index + 1], "1.2.3.4", index + 1, ct=False)
    with pytest.raises(MedsegError) as error:
        series_to_nifti(tmp_path, tmp_path / "out.nii.gz")
    assert_one_line_error(error, tmp_path, "holds a secondary capture (a picture, not a scan) (3 files)")


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    """The temporary folder `segment` converts series into; checked to be left empty."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert not any(folder.iterdir()), "converted series left behind"


def test_segment_series_folders(tmp_path, scratch, ct_bundle, random_weights):
    # Names with dots: a folder's whole name is the mask's name (Path.stem would make these collide).
    volumes = {"patient.7": ct_volume(FLIPPED), "patient.8": ct_volume(OBLIQUE, seed=1)}
    folders = [write_series(tmp_path / name, volume) for name, volume in volumes.items()]
    out = tmp_path / "masks"
    masks = segment(ct_bundle, folders, out, weights=random_weights, device="cpu", overrides=TINY, extras=False)
    names = ["patient.7_seg.nii.gz", "patient.8_seg.nii.gz"]
    assert masks == [out / name for name in names]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, *names]
    for mask_path, volume in zip(masks, volumes.values(), strict=True):
        mask = nib.load(mask_path)
        assert mask.get_data_dtype() == np.uint8
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2}
        assert_same_grid(sitk.ReadImage(str(mask_path)), volume)


def test_a_failing_input_is_reported_and_the_others_finished(tmp_path, scratch, ct_bundle, random_weights):
    folder = write_series(tmp_path / "series", ct_volume(FLIPPED))
    missing = tmp_path / "missing.nii.gz"
    out = tmp_path / "masks"
    with pytest.raises(MedsegError, match="1 of 2 scans failed") as error:
        segment(ct_bundle, [folder, missing], out, weights=random_weights, device="cpu", overrides=TINY, extras=False)
    assert f"{missing}: file not found" in str(error.value)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "series_seg.nii.gz"]


def test_two_folders_with_the_same_name(tmp_path, scratch, ct_bundle):
    first = write_series(tmp_path / "a" / "scan", ct_volume(FLIPPED))
    second = write_series(tmp_path / "b" / "scan", ct_volume(OBLIQUE))
    with pytest.raises(MedsegError) as error:
        segment(ct_bundle, [first, second], tmp_path / "masks", device="cpu")
    assert_one_line_error(error, second, "same mask scan_seg.nii.gz", str(first))
    assert not (tmp_path / "masks").exists()


def test_scan_errors_name_the_folder(tmp_path, scratch):
    folder = write_series(tmp_path / "series", ct_volume(FLIPPED))
    with pytest.raises(MedsegError) as error:
        bundle = find_bundle("mri_brain_tumour_3d")
        predict._checked_scan(ScanRequest.of(folder), tmp_path, bundle, 2**40, channels=4, ignore_modality=True)
    assert_one_line_error(error, folder, "expected 4 channels")
