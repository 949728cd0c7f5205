"""The brain MRI sample data: the real MNI152 brain from nilearn, and versions of it as other scans show it."""

import json

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.samples.datasets import write_mri_dataset
from medseg.samples.mni import load_template
from medseg.samples.mri_variants import HELD_OUT, MriVariant, render_variant

NOISY = MriVariant("noisy", spacing=(2.0, 2.0, 2.0), bias=0.3, noise=0.04, gamma=1.2, orientation="LPS")
CLEAN = MriVariant("clean", spacing=(2.0, 2.0, 2.0), orientation="LPS")


@pytest.fixture(scope="module")
def template():
    return load_template()


def test_noise_and_bias_stay_inside_the_brain(template):
    """Skull-stripped scans are exactly 0 outside the brain, whatever the scanner added."""
    image, label, _ = render_variant(template, NOISY, np.random.default_rng(0))
    clean, _, _ = render_variant(template, CLEAN, np.random.default_rng(0))
    assert image.dtype == np.int16 and image.shape == label.shape
    outside = clean == 0
    assert not image[outside].any()
    assert not image[:8, :8, :8].any() and not image[-8:, -8:, -8:].any()
    brain = clean > 0
    assert 0.1 < brain.mean() < 0.9
    assert np.std(image[brain].astype(float) - clean[brain]) > 5, "noise was added inside the brain"


def test_a_variant_is_stored_on_its_own_grid(template):
    image, label, affine = render_variant(template, NOISY, np.random.default_rng(1))
    assert nib.aff2axcodes(affine) == ("L", "P", "S")
    np.testing.assert_allclose(np.abs(np.diag(affine)[:3]), 2.0)
    assert set(np.unique(label)) == {0, 1, 2}
    extent = np.asarray(template.t1.shape) * np.linalg.norm(template.affine[:3, :3], axis=0)
    np.testing.assert_array_equal(image.shape, np.ceil(extent / 2.0).astype(int))


def test_dataset_layout_and_held_out_cases(tmp_path):
    folder = write_mri_dataset(tmp_path / "mri", cases=2, seed=3, workers=1)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"0": "background", "1": "grey matter", "2": "white matter"}
    assert len(dataset["training"]) == 2
    tests = sorted(path.name for path in (folder / "labelsTs").glob("*.nii.gz"))
    assert tests == sorted(f"mni_{variant.name}.nii.gz" for variant in HELD_OUT)
    template_case = nib.load(folder / "imagesTr" / "mni_000.nii.gz")
    np.testing.assert_allclose(template_case.header.get_zooms()[:3], 1.0)
    for name in tests:
        image, label = nib.load(folder / "imagesTs" / name), nib.load(folder / "labelsTs" / name)
        assert image.shape == label.shape
        np.testing.assert_array_equal(image.affine, label.affine)


def test_test_cases_picks_the_first_held_out_checks(tmp_path):
    folder = write_mri_dataset(tmp_path / "mri", cases=1, test_cases=1, seed=3, workers=1)
    assert [path.name for path in (folder / "imagesTs").glob("*.nii.gz")] == [f"mni_{HELD_OUT[0].name}.nii.gz"]
    with pytest.raises(MedsegError, match="`test_cases` must be between 0 and 4"):
        write_mri_dataset(tmp_path / "more", cases=1, test_cases=5)
