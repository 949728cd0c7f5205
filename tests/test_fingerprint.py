import numpy as np
import pytest

from medseg.data.discover import discover
from medseg.data.fingerprint import bundle_presets, fingerprint, target_spacing
from medseg.data.validate import check_dataset


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
