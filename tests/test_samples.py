import json

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.samples import datasets as samples
from medseg.samples.datasets import write_ct_dataset


def test_msd_layout(small_ct):
    description = json.loads((small_ct / "dataset.json").read_text())
    assert description["labels"] == {"0": "background", "1": "liver", "2": "tumour"}
    assert description["modality"] == {"0": "CT"}
    assert len(description["training"]) == description["numTraining"] == 6
    assert len(description["test"]) == description["numTest"] == 2
    for entry in description["training"]:
        image, label = nib.load(small_ct / entry["image"]), nib.load(small_ct / entry["label"])
        assert image.shape == label.shape
        np.testing.assert_array_equal(image.affine, label.affine)
        assert image.header["qform_code"] == image.header["sform_code"] == 1
        assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1, 2}
    for path in description["test"]:
        assert (small_ct / path).is_file()
        assert (small_ct / path.replace("imagesTs", "labelsTs")).is_file()


def test_deterministic_for_a_seed(tmp_path, small_ct):
    again = write_ct_dataset(tmp_path / "again", cases=6, test_cases=2, seed=7, preset="small", workers=2)
    for name in ("imagesTr/liver_003.nii.gz", "labelsTs/liver_007.nii.gz"):
        np.testing.assert_array_equal(
            np.asarray(nib.load(small_ct / name).dataobj), np.asarray(nib.load(again / name).dataobj)
        )


def test_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(MedsegError, match="not an empty folder"):
        write_ct_dataset(tmp_path, cases=1, preset="small")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    run = samples._run

    def broken(job):
        if job.name == "liver_001":
            raise OSError("disk full")
        return run(job)

    monkeypatch.setattr(samples, "_run", broken)
    monkeypatch.setattr(samples, "ProcessPoolExecutor", _InlineExecutor)
    with pytest.raises(OSError, match="disk full"):
        write_ct_dataset(tmp_path / "data", cases=3, preset="small")
    assert list(tmp_path.iterdir()) == []


class _InlineExecutor:
    """Runs jobs in this process so that a monkeypatched worker is used."""

    def __init__(self, max_workers=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return map(fn, items)
