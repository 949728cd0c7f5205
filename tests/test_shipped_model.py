"""The shipped CT weights on fresh synthetic patients they never saw (slow: clinical-size scans)."""

import nibabel as nib
import numpy as np
import pytest

from medseg.data.samples import write_ct_dataset
from medseg.evaluation import evaluate, mean_dice

# Training used seed 0; this seed draws different patients.
HELD_OUT_SEED = 20261124

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, ct_bundle):
    data = write_ct_dataset(tmp_path_factory.mktemp("held_out") / "ct", cases=10, test_cases=0, seed=HELD_OUT_SEED)
    output = tmp_path_factory.mktemp("evaluation")
    return data, output, evaluate(ct_bundle, data, output, device="cpu")


def test_dice_meets_the_release_bar(held_out):
    _, _, results = held_out
    assert len(results) == 10
    assert mean_dice(results, "liver") >= 0.90
    assert mean_dice(results, "tumour") >= 0.60


def test_masks_keep_each_scans_grid_in_both_orientations(held_out):
    data, output, _ = held_out
    orientations = set()
    for scan in sorted((data / "imagesTr").glob("*.nii.gz")):
        image = nib.load(scan)
        mask = nib.load(output / "masks" / scan.name.replace(".nii.gz", "_seg.nii.gz"))
        assert mask.get_data_dtype() == np.uint8 and mask.shape == image.shape
        np.testing.assert_array_equal(mask.affine, image.affine)
        orientations.add("".join(nib.aff2axcodes(image.affine)))
    assert orientations == {"RAS", "LPS"}
