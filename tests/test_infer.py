import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.inference.predict import segment
from medseg.io.nifti import write_nifti


def _flip_to_lps(source, target):
    """Store the same scan with its first two voxel axes reversed (RAS -> LPS)."""
    image = nib.load(source)
    data = np.asarray(image.dataobj)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = np.array(data.shape[:2]) - 1
    write_nifti(target, np.ascontiguousarray(data[::-1, ::-1]), image.affine @ flip)
    return target


@pytest.fixture(scope="module")
def ras_and_lps(tmp_path_factory, small_ct):
    folder = tmp_path_factory.mktemp("orient")
    for index in range(6):
        source = small_ct / "imagesTr" / f"liver_{index:03d}.nii.gz"
        if nib.aff2axcodes(nib.load(source).affine) == ("R", "A", "S"):
            break
    else:
        pytest.fail("no RAS case in the small dataset")
    ras = folder / "scan_ras.nii.gz"
    ras.write_bytes(source.read_bytes())
    return ras, _flip_to_lps(ras, folder / "scan_lps.nii.gz")


@pytest.fixture(scope="module")
def masks(tmp_path_factory, tiny_run, ras_and_lps):
    return segment(tiny_run.bundle, ras_and_lps, tmp_path_factory.mktemp("masks"), device="cpu")


def test_mask_names(masks):
    assert [m.name for m in masks] == ["scan_ras_seg.nii.gz", "scan_lps_seg.nii.gz"]
    assert not [p for p in masks[0].parent.iterdir() if p.name.startswith(".")]


def test_mask_has_the_scan_grid_exactly(masks, ras_and_lps):
    for mask_path, scan_path in zip(masks, ras_and_lps, strict=True):
        mask, scan = nib.load(mask_path), nib.load(scan_path)
        assert mask.get_data_dtype() == np.uint8
        assert mask.shape == scan.shape
        np.testing.assert_array_equal(mask.affine, scan.affine)
        assert mask.header["qform_code"] == mask.header["sform_code"] == 1
        np.testing.assert_allclose(mask.get_qform(), mask.get_sform(), atol=1e-5)
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2}


def test_simpleitk_sees_the_same_grid(masks, ras_and_lps):
    for mask_path, scan_path in zip(masks, ras_and_lps, strict=True):
        mask, scan = sitk.ReadImage(str(mask_path)), sitk.ReadImage(str(scan_path))
        assert mask.GetSize() == scan.GetSize()
        np.testing.assert_allclose(mask.GetOrigin(), scan.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(mask.GetSpacing(), scan.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(mask.GetDirection(), scan.GetDirection(), atol=1e-6)


def test_lps_and_ras_storage_give_the_same_segmentation(masks):
    ras = np.asarray(nib.load(masks[0]).dataobj)
    lps = np.asarray(nib.load(masks[1]).dataobj)[::-1, ::-1]
    assert (ras > 0).sum() > 100, "the tiny model should find some liver"
    assert np.mean(ras == lps) > 0.999
