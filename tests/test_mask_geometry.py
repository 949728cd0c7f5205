"""Masks (and Slicer segmentations) on exactly the scan's grid, for real data stored every which way.

The scans are the real MNI152 T1 from nilearn, resampled onto RAS, LPS, oblique and axis-permuted grids
with anisotropic voxels and arbitrary origins. The CT test model segments them (what it finds does not
matter here, only where it is written), on medseg's fast path and on the bundle's stock recipe; SimpleITK
then reads every mask with the same size, origin, spacing and direction as its scan.
"""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medseg.inference.options import InferenceOptions
from medseg.inference.predict import segment
from medseg.io.nifti import write_nifti
from medseg.io.paths import CaseFiles
from medseg.samples.mni import load_template, resample

from .shapes import grid_affine

FIELD_MM = np.array([150.0, 180.0, 150.0])  # right-left, front-back, up-down
CENTRE = np.array([3.7, -24.2, 14.9])  # off the template's centre: any origin
GRIDS = {
    "ras": {"spacing": (3.5, 4.0, 5.0)},
    "lps": {"spacing": (3.5, 4.0, 5.0), "flip": (-1, -1, 1)},
    "oblique": {"spacing": (4.0, 4.5, 5.5), "degrees": (18, -12, 25), "flip": (1, -1, 1)},
    "permuted": {"spacing": (5.0, 3.8, 4.2), "order": (2, 0, 1), "degrees": (-10, 8, -30), "flip": (-1, 1, -1)},
}


def _grid(spacing, order=(0, 1, 2), **turns):
    shape = tuple(int(n) for n in np.round(FIELD_MM[list(order)] / spacing))
    return grid_affine(spacing, shape, CENTRE, order=order, **turns), shape


@pytest.fixture(scope="module")
def mni_scans(tmp_path_factory):
    """The MNI152 T1 on each grid, as int16 'HU' (brain 50 to 200, outside -50)."""
    template = load_template()
    folder = tmp_path_factory.mktemp("mni_grids")
    scans = []
    for name, grid in GRIDS.items():
        affine, shape = _grid(**grid)
        t1 = resample(template.t1, template.affine, affine, shape)
        scans.append(write_nifti(folder / f"mni_{name}.nii.gz", np.round(t1 * 250 - 50).astype(np.int16), affine))
    return scans


@pytest.fixture(scope="module", params=["fast", "stock"])
def masks(request, tmp_path_factory, tiny_run, mni_scans):
    options = InferenceOptions(stock=request.param == "stock")
    output = tmp_path_factory.mktemp(f"masks_{request.param}")
    return segment(tiny_run.bundle, mni_scans, output, device="cpu", options=options)


def test_the_grids_are_what_they_claim(mni_scans):
    codes = [nib.aff2axcodes(nib.load(path).affine) for path in mni_scans]
    assert codes[:2] == [("R", "A", "S"), ("L", "P", "S")]
    assert codes[3][0] in "SI", "the permuted grid's first voxel axis runs up or down"
    direction = np.reshape(sitk.ReadImage(str(mni_scans[2])).GetDirection(), (3, 3))
    assert np.abs(direction).max() < 0.99, "the oblique grid has no axis along a world axis"


def test_simpleitk_reads_the_scan_grid_exactly(masks, mni_scans):
    for mask_path, scan_path in zip(masks, mni_scans, strict=True):
        scan = sitk.ReadImage(str(scan_path))
        for written in (mask_path, CaseFiles.of_mask(mask_path).segmentation):
            image = sitk.ReadImage(str(written))
            assert image.GetSize() == scan.GetSize(), written.name
            np.testing.assert_allclose(image.GetOrigin(), scan.GetOrigin(), atol=1e-4, err_msg=written.name)
            np.testing.assert_allclose(image.GetSpacing(), scan.GetSpacing(), atol=1e-5, err_msg=written.name)
            np.testing.assert_allclose(image.GetDirection(), scan.GetDirection(), atol=1e-5, err_msg=written.name)


def test_nifti_header_qform_equals_sform_and_labels_are_integers(masks, mni_scans, tiny_run):
    values = {label.value for label in tiny_run.bundle.labels}
    for mask_path, scan_path in zip(masks, mni_scans, strict=True):
        mask, scan = nib.load(mask_path), nib.load(scan_path)
        assert mask.get_data_dtype() == np.uint8
        assert mask.shape == scan.shape
        np.testing.assert_array_equal(mask.affine, scan.affine)
        assert int(mask.header["qform_code"]) == int(mask.header["sform_code"]) == 1
        np.testing.assert_allclose(mask.get_qform(), mask.get_sform(), atol=1e-4)
        assert set(np.unique(np.asarray(mask.dataobj)).tolist()) <= values


def test_flipped_storage_gives_the_same_segmentation(masks):
    ras = np.asarray(nib.load(masks[0]).dataobj)
    lps = np.asarray(nib.load(masks[1]).dataobj)[::-1, ::-1]
    assert ras.any(), "the model should label something in the scan, or this test proves nothing"
    assert np.mean(ras == lps) > 0.999
