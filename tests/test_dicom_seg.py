"""DICOM SEG for DICOM series inputs: segments, codes, and every labelled voxel where the mask has it."""

import nibabel as nib
import numpy as np
import pytest

from medseg.bundles import find_bundle
from medseg.errors import MedsegError
from medseg.inference.predict import segment
from medseg.io.dicom import series_to_nifti
from medseg.io.paths import CaseFiles

from . import test_dicom
from .test_dicom import OBLIQUE, ct_volume, write_series

hd = pytest.importorskip("highdicom", reason="DICOM SEG needs the dicom extra: pip install medseg[dicom]")

from medseg.io.dicom_seg import write_dicom_seg  # noqa: E402  (after the skip: it needs highdicom)

FRAME_OF_REFERENCE = "0020|0052"


@pytest.fixture()
def series(tmp_path, monkeypatch):
    """An oblique CT series with a frame of reference (as every scanner writes), and its NIfTI."""
    monkeypatch.setitem(test_dicom.CT_TAGS, FRAME_OF_REFERENCE, "1.2.826.0.1.3680043.8.498.77")
    folder = write_series(tmp_path / "patient_7", ct_volume(OBLIQUE))
    return folder, series_to_nifti(folder, tmp_path / "patient_7.nii.gz")


def _brain_tumour_mask(shape):
    mask = np.zeros(shape, np.uint8)
    mask[6:20, 4:16, 2:9] = 2  # oedema
    mask[9:14, 7:12, 4:7] = 4  # enhancing tumour; no necrosis at all
    return mask


def test_segments_codes_and_voxels(series, tmp_path):
    folder, nifti = series
    scan = nib.load(nifti)
    mask = _brain_tumour_mask(scan.shape)
    bundle = find_bundle("mri_brain_tumour_3d")
    path = write_dicom_seg(tmp_path / "x_seg.dcm", mask, folder, bundle)
    seg = hd.seg.segread(path)
    described = [
        (d.SegmentNumber, d.SegmentLabel, d.SegmentedPropertyTypeCodeSequence[0].CodeValue) for d in seg.SegmentSequence
    ]
    assert described == [
        (1, "necrotic tumour core", "6574001"),
        (2, "peritumoral oedema", "79654002"),
        (3, "enhancing tumour", "108369006"),
    ]
    assert seg.SegmentSequence[2].AnatomicRegionSequence[0].CodeValue == "12738006"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.826.0.1.3680043.8.498.2"
    volume = seg.get_volume(combine_segments=True)
    frames = np.argwhere(volume.array > 0)
    lps = np.c_[frames, np.ones(len(frames))] @ volume.affine.T
    ras = lps * [-1, -1, 1, 1]
    voxels = np.rint(ras @ np.linalg.inv(scan.affine).T)[:, :3].astype(int)
    found = volume.array[tuple(frames.T)]
    np.testing.assert_array_equal(mask[tuple(voxels.T)], np.array([0, 0, 2, 4])[found])
    assert len(frames) == np.count_nonzero(mask)


def test_a_series_without_frame_of_reference_is_one_line(tmp_path):
    folder = write_series(tmp_path / "odd", ct_volume(OBLIQUE))
    with pytest.raises(MedsegError, match="cannot make a DICOM SEG of this series") as error:
        write_dicom_seg(
            tmp_path / "odd_seg.dcm", np.zeros((32, 24, 12), np.uint8), folder, find_bundle("ct_liver_tumour_3d")
        )
    assert "\n" not in str(error.value) and str(error.value).startswith(str(folder))
    assert not list(tmp_path.glob("*.dcm"))


def test_infer_on_a_series_writes_its_dicom_seg(series, tmp_path, tiny_run):
    folder, _ = series
    [mask] = segment(tiny_run.bundle, [folder], tmp_path / "out", device="cpu")
    seg = hd.seg.segread(CaseFiles.of_mask(mask).dicom_seg)
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["liver", "tumour"]
    # one frame per segment and slice that holds it (highdicom leaves out empty frames)
    labels = np.asarray(nib.load(mask).dataobj)
    expected = {number: int((labels == number).any(axis=(0, 1)).sum()) for number in (1, 2)}
    found = [f.SegmentIdentificationSequence[0].ReferencedSegmentNumber for f in seg.PerFrameFunctionalGroupsSequence]
    assert expected[1] > 0 and seg.NumberOfFrames == sum(expected.values())
    assert {number: found.count(number) for number in (1, 2)} == expected
