"""The mask writer at the end of ``medseg infer``: the scan's exact grid, uint8, and its three refusals."""

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medseg.errors import MedsegError
from medseg.io.mask_writer import AFFINE_TOLERANCE_MM, SaveMaskd
from medseg.io.nifti import write_nifti

from .shapes import grid_affine

SHAPE = (12, 10, 7)


@pytest.fixture()
def scan(tmp_path):
    """An oblique LPS-stored scan with anisotropic voxels, whose affine has no round numbers."""
    affine = grid_affine((0.7, 0.9, 2.5), SHAPE, (10.3, -20.1, 31.7), degrees=(7.0, -4.0, 11.0), flip=(-1, -1, 1))
    return write_nifti(tmp_path / "scan.nii.gz", np.zeros(SHAPE, np.int16), affine)


def labels(values=(0, 1, 2)):
    rng = np.random.default_rng(0)
    return rng.choice(np.asarray(values), size=SHAPE)


def test_writes_uint8_on_exactly_the_scans_grid(tmp_path, scan):
    mask = labels()
    written = SaveMaskd("pred", tmp_path / "out").write(mask, scan, nib.load(scan).affine + 1e-4)
    assert written == tmp_path / "out" / "scan_seg.nii.gz"
    image = nib.load(written)
    assert image.get_data_dtype() == np.uint8 and image.shape == SHAPE
    np.testing.assert_array_equal(np.asarray(image.dataobj), mask)
    np.testing.assert_array_equal(image.affine, nib.load(scan).affine)
    np.testing.assert_allclose(image.get_qform(), image.get_sform(), atol=1e-5)  # the qform is a float32 quaternion
    assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == 1


def test_the_transform_writes_a_metatensors_mask_and_passes_the_data_on(tmp_path, scan):
    mask = labels((0, 255))
    pred = MetaTensor(torch.from_numpy(mask)[None], affine=torch.as_tensor(nib.load(scan).affine))
    pred.meta["filename_or_obj"] = str(scan)
    data = {"pred": pred, "other": 3}
    assert SaveMaskd("pred", tmp_path)(data) == data
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "scan_seg.nii.gz").dataobj), mask)


def test_refuses_a_prediction_of_another_shape(tmp_path, scan):
    with pytest.raises(MedsegError, match=r"prediction shape \(12, 10, 6\) does not match the scan's \(12, 10, 7\)"):
        SaveMaskd("pred", tmp_path).write(labels()[..., :6], scan)
    assert not any(tmp_path.glob("*_seg*"))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_refuses_a_prediction_that_did_not_come_back_to_the_scans_grid(tmp_path, scan, axis):
    moved = nib.load(scan).affine.copy()
    moved[axis, 3] += 2 * AFFINE_TOLERANCE_MM
    with pytest.raises(MedsegError, match=r"did not come back to the scan's grid \(affine differs\)") as error:
        SaveMaskd("pred", tmp_path).write(labels(), scan, moved)
    assert str(error.value).startswith(str(scan))
    assert not any(tmp_path.glob("*_seg*"))
    # within the tolerance, and with no carried affine at all, the mask is written
    moved[axis, 3] -= 1.5 * AFFINE_TOLERANCE_MM
    assert SaveMaskd("pred", tmp_path).write(labels(), scan, moved).is_file()
    assert SaveMaskd("pred", tmp_path / "plain").write(labels(), scan, None).is_file()


@pytest.mark.parametrize("value", [-1, 256])
def test_refuses_labels_that_do_not_fit_uint8(tmp_path, scan, value):
    mask = labels().astype(np.int16)
    mask[3, 4, 5] = value
    with pytest.raises(MedsegError, match=r"label values must fit in uint8 \(0-255\)"):
        SaveMaskd("pred", tmp_path).write(mask, scan)
    assert not any(tmp_path.glob("*_seg*"))


def test_a_four_channel_scan_gets_a_3d_mask_on_its_spatial_grid(tmp_path):
    """BraTS scans hold four sequences in a 4th axis; the mask has the first three."""
    affine = grid_affine((1.0, 1.0, 1.0), SHAPE, (0.0, 0.0, 0.0), flip=(-1, -1, 1))
    scan = write_nifti(tmp_path / "brats.nii.gz", np.zeros((*SHAPE, 4), np.float32), affine)
    written = nib.load(SaveMaskd("pred", tmp_path / "out").write(labels((0, 1, 2, 4)), scan, affine))
    assert written.shape == SHAPE
    np.testing.assert_array_equal(written.affine, affine)
