import json

import numpy as np
import pytest

from medseg.data.discover import discover
from medseg.data.fingerprint import bundle_presets, fingerprint, target_spacing
from medseg.data.validate import check_dataset
from medseg.io.nifti import write_nifti


@pytest.fixture(scope="module")
def small_fingerprint(small_ct):
    return fingerprint(check_dataset(discover(small_ct), workers=1).stats)


def test_target_spacing_is_the_median_unless_one_axis_is_much_coarser():
    iso = np.array([[1.0, 1.0, 1.0], [1.2, 1.2, 1.4], [0.8, 0.8, 1.2]])
    np.testing.assert_allclose(target_spacing(iso), [1.0, 1.0, 1.2])
    thick = np.array([[0.7, 0.7, 5.0], [0.8, 0.8, 5.0], [0.75, 0.75, 1.0], [0.7, 0.7, 5.0], [0.8, 0.8, 5.0]])
    np.testing.assert_allclose(target_spacing(thick), [0.75, 0.75, np.percentile(thick[:, 2], 10)])


def test_fingerprint_of_the_synthetic_ct(small_fingerprint, small_ct):
    fp = small_fingerprint
    assert fp.cases == 6 and fp.channels == 1
    hu = fp.foreground[0]
    assert 20 < hu["p00_5"] < hu["mean"] < hu["p99_5"] < 260  # liver and tumours in HU
    assert set(fp.label_volume_ml) == {"1", "2"}
    assert 1000 < fp.label_volume_ml["1"]["median"] < 2000  # a liver is 1.2 to 1.8 L
    assert 3.0 < fp.spacing_median[0] < 5.0


def test_ct_presets_clip_to_foreground_percentiles_then_zscore(small_fingerprint):
    defaults = {"spacing": [1.5, 1.5, 2.5], "patch_size": [96, 96, 64], "intensity": {}}
    presets = bundle_presets(small_fingerprint, defaults, "CT")
    hu = small_fingerprint.foreground[0]
    assert presets["intensity"] == {
        "clip": [round(hu["p00_5"], 1), round(hu["p99_5"], 1)],
        "mean": round(hu["mean"], 2),
        "std": round(hu["std"], 2),
    }
    assert presets["spacing"] == small_fingerprint.target_spacing
    # the bundle's patch, shrunk where the data are smaller, in multiples of 16
    assert all(p % 16 == 0 and p <= d for p, d in zip(presets["patch_size"], [96, 96, 64], strict=True))
    assert presets["patch_size"][2] <= small_fingerprint.shape_at_target[2]


def test_mri_bundles_get_no_dataset_wide_intensities(small_fingerprint):
    presets = bundle_presets(small_fingerprint, {"spacing": [1, 1, 1], "intensity": {}}, "MR")
    assert "intensity" not in presets and "patch_size" not in presets


def test_a_dataset_whose_every_label_is_empty_has_a_fingerprint_without_intensities():
    """No foreground anywhere: spacing and shape presets still come from the data, intensities from the bundle."""
    from medseg.data.validate import CaseStats

    empty = [CaseStats(f"c{i}", (64, 64, 30), (0.8, 0.8, 2.5), {}, np.zeros((0, 1), np.float32)) for i in range(3)]
    fp = fingerprint(empty)
    assert (fp.cases, fp.channels, fp.foreground, fp.label_volume_ml) == (3, 1, [], {})
    assert fp.target_spacing == [0.8, 0.8, 2.5]
    presets = bundle_presets(fp, {"spacing": [1.5, 1.5, 2.5], "intensity": {"clip": [-200, 300]}}, "CT")
    assert presets == {"spacing": [0.8, 0.8, 2.5]}


def _hand_made(root):
    """Three cases whose statistics are easy to work out: (shape, spacing, {label: voxels}, intensities)."""
    cases = [
        ((10, 8, 6), (1.0, 1.0, 2.0), {1: (slice(2, 4), slice(2, 4), slice(2, 4)), 2: (5, 5, 5)}),
        ((12, 8, 6), (1.0, 1.0, 3.0), {1: (slice(0, 2), slice(0, 2), 0)}),
        ((10, 10, 6), (2.0, 2.0, 2.0), {1: (9, 9, 5)}),
    ]
    training = []
    for index, (shape, spacing, labels) in enumerate(cases):
        image, label = np.zeros(shape, np.int16), np.zeros(shape, np.uint8)
        for value, where in labels.items():
            label[where] = value
            image[where] = 100 * value  # liver 100, tumour 200
        affine = np.diag([*spacing, 1.0])
        write_nifti(root / "imagesTr" / f"c{index}.nii.gz", image, affine)
        write_nifti(root / "labelsTr" / f"c{index}.nii.gz", label, affine)
        training.append({"image": f"./imagesTr/c{index}.nii.gz", "label": f"./labelsTr/c{index}.nii.gz"})
    labels = {"0": "background", "1": "liver", "2": "tumour"}
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "CT"}, "labels": labels, "training": training}))
    return root


def test_fingerprint_worked_out_by_hand(tmp_path):
    fp = fingerprint(check_dataset(discover(_hand_made(tmp_path)), workers=1).stats)
    assert (fp.cases, fp.channels) == (3, 1)
    assert fp.spacing_median == [1.0, 1.0, 2.0] and fp.shape_median == [10.0, 8.0, 6.0]
    assert fp.spacing_p10 == [1.0, 1.0, 2.0] and fp.spacing_p90 == [1.8, 1.8, 2.8]  # linear between sorted values
    assert fp.target_spacing == [1.0, 1.0, 2.0]  # 2 mm is not 3x the finest 1 mm
    assert fp.shape_at_target == [12, 8, 6]  # medians of (10, 8, 6), (12, 8, 9), (20, 20, 6)
    # liver: 8 voxels of 2 uL, 4 of 3 uL, 1 of 8 uL; tumour: 1 voxel of 2 uL
    assert fp.label_volume_ml["1"] == pytest.approx({"cases": 3, "median": 0.012, "min": 0.008, "max": 0.016})
    assert fp.label_volume_ml["2"] == pytest.approx({"cases": 1, "median": 0.002, "min": 0.002, "max": 0.002})
    # foreground: 13 voxels at 100 and one at 200; the 99.5th percentile lies 0.935 of the way to 200
    clipped = [100.0] * 13 + [193.5]
    expected = {"p00_5": 100.0, "p99_5": 193.5, "mean": np.mean(clipped), "std": np.std(clipped), "median": 100.0}
    assert fp.foreground == [pytest.approx(expected)]


def test_foreground_is_sampled_without_repeats(tmp_path):
    """Over 10,000 foreground voxels, 10,000 distinct ones are kept for the intensity statistics."""
    from medseg.data.discover import Case
    from medseg.data.validate import FOREGROUND_SAMPLES, inspect_case

    image = np.arange(30 * 30 * 20, dtype=np.float32).reshape(30, 30, 20)
    write_nifti(tmp_path / "image.nii.gz", image, np.eye(4))
    write_nifti(tmp_path / "label.nii.gz", np.ones(image.shape, np.uint8), np.eye(4))
    stats = inspect_case(Case("c", (tmp_path / "image.nii.gz",), tmp_path / "label.nii.gz")).stats
    assert stats.foreground.shape == (FOREGROUND_SAMPLES, 1) == (10_000, 1)
    assert len(np.unique(stats.foreground)) == 10_000
    assert stats.label_ml == {1: pytest.approx(18.0)} and stats.spacing == (1.0, 1.0, 1.0)
