import io
import os
from pathlib import Path

import pytest

from medseg import memory
from medseg.data.caching import available_memory, cache_overrides, choose_cache, estimate_bytes
from medseg.data.fingerprint import Fingerprint
from medseg.errors import MedsegError


def fingerprint(shape, spacing, channels=1):
    return Fingerprint(1, channels, spacing, spacing, spacing, shape, spacing, shape, [], {})


def test_estimate_counts_image_channels_and_label_at_the_target_spacing():
    fp = fingerprint([512, 512, 100], [0.75, 0.75, 2.5])
    # resampled to 1.5 x 1.5 x 2.5 mm: 256 x 256 x 100 voxels, image + label as float32
    assert estimate_bytes(fp, [1.5, 1.5, 2.5], cases=10) == 256 * 256 * 100 * 2 * 4 * 10


def test_estimate_keeps_an_axis_whose_target_spacing_is_minus_one():
    # The 2D bundle's Spacingd pixdim [1.5, 1.5, -1] keeps each scan's own slice spacing.
    fp = fingerprint([512, 512, 100], [0.75, 0.75, 2.5])
    assert estimate_bytes(fp, [1.5, 1.5, -1], cases=10) == 256 * 256 * 100 * 2 * 4 * 10


def test_memory_when_it_fits_disk_when_it_does_not(tmp_path):
    small = choose_cache(10**9, tmp_path / "cache", budget=4 * 10**9)
    assert small.kind == "memory" and "in memory" in str(small)
    large = choose_cache(40 * 10**9, tmp_path / "cache", budget=4 * 10**9)
    assert large.kind == "disk" and str(tmp_path / "cache") in str(large)
    overrides = cache_overrides(large, [{"image": "a"}], [{"image": "b"}], [])
    assert overrides["train#dataset"]["_target_"] == "PersistentDataset"
    assert overrides["validate#dataset"]["cache_dir"] == str(Path(tmp_path / "cache" / "validate"))
    assert cache_overrides(small, [{"image": "a"}], [], [])["train#dataset#data"] == [{"image": "a"}]


def test_available_memory_reads_memavailable_in_bytes(monkeypatch):
    meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    2500000 kB\n"
    monkeypatch.setattr(memory, "open", lambda *args, **kwargs: io.StringIO(meminfo), raising=False)
    assert available_memory() == 2_500_000 * 1024


def test_available_memory_without_proc_counts_free_pages(monkeypatch):
    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/meminfo")

    monkeypatch.setattr(memory, "open", no_proc, raising=False)
    monkeypatch.setattr(memory.os, "sysconf", {"SC_AVPHYS_PAGES": 300, "SC_PAGE_SIZE": 4096}.__getitem__)
    assert available_memory() == 300 * 4096


def test_available_memory_is_at_most_the_machines_memory():
    assert 0 < available_memory() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_gpu_when_training_on_cuda_and_the_cases_fit(tmp_path):
    assert choose_cache(10**9, tmp_path, budget=4 * 10**9, gpu=2 * 10**9).kind == "gpu"
    assert choose_cache(3 * 10**9, tmp_path, budget=4 * 10**9, gpu=2 * 10**9).kind == "memory"
    assert choose_cache(10**9, tmp_path, budget=4 * 10**9, gpu=None).kind == "memory"
    assert choose_cache(10**9, tmp_path, budget=4 * 10**9, gpu=2 * 10**9, kind="disk").kind == "disk"
    with pytest.raises(MedsegError, match="needs a CUDA device"):
        choose_cache(10**9, tmp_path, gpu=None, kind="gpu")


def test_gpu_cache_moves_cached_cases_to_the_device_and_loads_with_threads(tmp_path):
    gpu = choose_cache(10**9, tmp_path, gpu=2 * 10**9)
    base = [{"_target_": "LoadImaged", "keys": "image"}]
    overrides = cache_overrides(gpu, [{"image": "a"}], [{"image": "b"}], base)
    assert overrides["base_transforms"][:-1] == base
    to_device = {"_target_": "ToDeviced", "keys": ["image", "label"], "device": "@device"}
    assert overrides["base_transforms"][-1] == to_device
    assert overrides["train#dataloader#_target_"] == overrides["validate#dataloader#_target_"] == "ThreadDataLoader"
    assert overrides["train#dataloader#num_workers"] == 0
