from pathlib import Path

from medseg.data.caching import available_memory, cache_overrides, choose_cache, estimate_bytes
from medseg.data.fingerprint import Fingerprint


def fingerprint(shape, spacing, channels=1):
    return Fingerprint(1, channels, spacing, spacing, spacing, shape, spacing, shape, [], {})


def test_estimate_counts_image_channels_and_label_at_the_target_spacing():
    fp = fingerprint([512, 512, 100], [0.75, 0.75, 2.5])
    # resampled to 1.5 x 1.5 x 2.5 mm: 256 x 256 x 100 voxels, image + label as float32
    assert estimate_bytes(fp, [1.5, 1.5, 2.5], cases=10) == 256 * 256 * 100 * 2 * 4 * 10


def test_memory_when_it_fits_disk_when_it_does_not(tmp_path):
    small = choose_cache(10**9, tmp_path / "cache", budget=4 * 10**9)
    assert small.kind == "memory" and "in memory" in str(small)
    large = choose_cache(40 * 10**9, tmp_path / "cache", budget=4 * 10**9)
    assert large.kind == "disk" and str(tmp_path / "cache") in str(large)
    overrides = cache_overrides(large, [{"image": "a"}], [{"image": "b"}])
    assert overrides["train#dataset"]["_target_"] == "PersistentDataset"
    assert overrides["validate#dataset"]["cache_dir"] == str(Path(tmp_path / "cache" / "validate"))
    assert cache_overrides(small, [{"image": "a"}], [])["train#dataset#data"] == [{"image": "a"}]


def test_available_memory_is_positive():
    assert available_memory() > 0
