"""Plausibility: impossible voxel sizes are refused before work; odd content and masks are warned about."""

import numpy as np
import pytest

from medseg.bundles import find_bundle
from medseg.errors import MedsegError
from medseg.inference import predict
from medseg.inference.cohort_inputs import ScanRequest
from medseg.inference.plausibility import check_spacing, mask_warnings, scan_warnings
from medseg.io.nifti import write_nifti

CT_BUNDLE = "ct_liver_tumour_3d"


def _ct_like(shape=(40, 40, 20), seed=0) -> np.ndarray:
    """Air around a soft-tissue body, as every abdominal CT has: -1000 HU outside, 0-100 HU inside."""
    hu = np.full(shape, -1000.0, np.float32)
    hu[8:-8, 8:-8, :] = np.random.default_rng(seed).normal(50, 20, (shape[0] - 16, shape[1] - 16, shape[2]))
    return hu


@pytest.mark.parametrize("side", [0.001, 0.0099, 50.5, 100.0])
def test_impossible_voxel_sizes_are_refused_before_work(tmp_path, side):
    scan = write_nifti(tmp_path / "scan.nii.gz", _ct_like(), np.diag([0.8, 0.8, side, 1.0]))
    with pytest.raises(MedsegError) as error:
        predict._checked_scan(
            ScanRequest.of(scan), tmp_path, find_bundle(CT_BUNDLE), 2**40, channels=3, ignore_modality=False
        )
    assert str(error.value).startswith(f"{scan}: voxel size 0.8 x 0.8 x {side:g} mm is not a scan's")


@pytest.mark.parametrize("side", [0.01, 0.5, 5.0, 50.0])
def test_possible_voxel_sizes_pass(side):
    check_spacing(np.diag([side, 0.7, 3.0, 1.0]), "scan.nii.gz")


def test_a_ct_in_hu_gives_no_warning():
    assert scan_warnings(_ct_like(), "CT", three_d=True) == []


def test_a_label_map_given_as_a_scan():
    labels = np.zeros((40, 40, 20), np.float32)
    labels[10:30, 10:30, 5:15], labels[15:20, 15:20, 8:10] = 1, 2
    [warning] = scan_warnings(labels, "CT", three_d=True)
    assert warning == "holds only 3 distinct values (0, 1, 2): a label map rather than a CT scan?"


def test_an_mr_given_to_a_ct_bundle():
    mr = np.random.default_rng(1).uniform(0, 900, (40, 40, 20)).astype(np.float32)
    [warning] = scan_warnings(mr, "CT", three_d=True)
    assert "are not a CT's in HU, which has air at -1000" in warning


def test_a_ct_given_to_an_mr_bundle():
    [warning] = scan_warnings(_ct_like(), "MR", three_d=True)
    assert warning == "1st percentile of the intensities is -1000: negative like a CT's in HU, not an MR's"


def test_a_single_slice_for_a_3d_model_only():
    single = _ct_like((40, 40, 1))
    assert scan_warnings(single, "CT", three_d=True) == ["has a single slice (40 x 40 x 1): a 3D model sees no context"]
    assert scan_warnings(single, "CT", three_d=False) == []


def test_mask_warnings_against_the_shipped_training_range():
    bundle = find_bundle(CT_BUNDLE)
    ranges = bundle.volume_ranges
    assert ranges == {1: (1284.0, 1937.0), 2: (0.0, 89.0)}
    assert mask_warnings({1: 1500.0, 2: 0.0}, bundle.labels, ranges) == []
    assert mask_warnings({1: 1500.0, 2: 150.0}, bundle.labels, ranges) == []  # under twice the largest tumour
    assert mask_warnings({1: 0.0, 2: 0.0}, bundle.labels, ranges) == [
        "the mask is empty: no label was found in this scan"
    ]
    [head] = mask_warnings({1: 6000.0, 2: 1.0}, bundle.labels, ranges)
    assert head == (
        "liver volume 6000 mL is far outside the 1284-1937 mL seen in training: is this the scan the model is for?"
    )
    [small] = mask_warnings({1: 600.0}, bundle.labels, ranges)
    assert small.startswith("liver volume 600 mL is far outside")
    assert mask_warnings({1: 700.0, 2: 0.01}, bundle.labels, ranges) == []  # half the smallest liver, any tumour


def test_every_shipped_bundle_records_its_training_volumes():
    for name in (CT_BUNDLE, "ct_liver_tumour_2d", "mri_brain_tissue_3d", "mri_brain_tumour_3d"):
        bundle = find_bundle(name)
        ranges = bundle.volume_ranges
        assert set(ranges) == {label.value for label in bundle.labels if label.value}
        assert all(0 <= low <= high for low, high in ranges.values())


def test_a_single_slice_with_foreground_gets_its_overlay(tmp_path):
    """A one-voxel-thin view has no outline to draw: its voxels are filled, more opaquely."""
    from medseg.io.overlay import Row, write_overlay

    scan = _ct_like((30, 30, 1))
    mask = np.zeros(scan.shape, np.uint8)
    mask[10:20, 10:20, 0] = 1
    labels = find_bundle(CT_BUNDLE).labels
    png = write_overlay(
        tmp_path / "one.png",
        scan,
        mask,
        np.diag([0.7, 0.7, 5.0, 1.0]),
        rows=[Row("", (15, 15, 0))],
        labels=labels,
        modality="CT",
        title="one slice",
    )
    assert png.stat().st_size > 5_000
