import nibabel as nib
import numpy as np
import pytest

from medseg.samples.phantom import PRESETS, make_case, random_anatomy, random_grid
from medseg.samples.phantom.render import LIVER, TUMOUR


@pytest.fixture(scope="module")
def clinical_case():
    return make_case((3, 1), "clinical")


def test_same_seed_same_voxels():
    first, second = make_case((5, 2), "small"), make_case((5, 2), "small")
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.label, second.label)
    assert not np.array_equal(first.image, make_case((5, 3), "small").image)


def test_clinical_grid_matches_the_issue(clinical_case):
    grid = clinical_case.grid
    assert grid.shape[:2] == (512, 512)
    assert 0.6 <= grid.spacing[0] == grid.spacing[1] <= 0.9
    assert 1.0 <= grid.spacing[2] <= 5.0
    assert clinical_case.image.dtype == np.int16 and clinical_case.label.dtype == np.uint8
    assert clinical_case.image.shape == clinical_case.label.shape == grid.shape


def test_intensities_are_hounsfield_units(clinical_case):
    image, label = clinical_case.image.astype(float), clinical_case.label
    hu = clinical_case.anatomy.hu
    assert np.median(image[:5, :5]) == pytest.approx(-1000, abs=60)  # air in the corner
    liver = image[label == LIVER]
    assert abs(np.median(liver) - hu.liver) < 15
    assert 10 <= liver.std() <= 40  # scanner noise plus vessels
    assert image.max() > 400  # bone


def test_liver_volume_and_tumours_are_plausible():
    volumes, counts = [], []
    for index in range(8):
        case = make_case((11, index), "small")
        voxel_ml = np.prod(case.grid.spacing) / 1000
        volumes.append((case.label > 0).sum() * voxel_ml / 1000)
        counts.append(len(case.anatomy.tumours))
        if case.anatomy.tumours:
            assert (case.label == TUMOUR).any(), f"case {index}: tumours drawn but none labelled"
    assert 1.0 <= np.median(volumes) <= 2.0
    assert all(0 <= n <= 4 for n in counts) and len(set(counts)) > 1


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_orientation_codes_on_disk(orientation):
    for index in range(20):
        case = make_case((1, index), "small")
        if case.grid.orientation == orientation:
            assert "".join(nib.aff2axcodes(case.grid.affine())) == orientation
            return
    pytest.fail(f"no {orientation} case among 20 seeds")


def test_benchmark_preset_is_the_issue_6_scan():
    rng = np.random.default_rng(0)
    grid = random_grid(rng, random_anatomy(rng), PRESETS["benchmark"])
    assert grid.shape == (512, 512, 200)
    assert grid.spacing == pytest.approx((0.75, 0.75, 1.5))
