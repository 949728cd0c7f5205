"""The first scan read during start-up: taken by the reader and the outputs only when it is the same file."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.inference import outputs
from medseg.inference.predict import segment
from medseg.io import fast_nifti, read_ahead, readers
from medseg.io.nifti import write_nifti


@pytest.fixture(autouse=True)
def nothing_ahead():
    read_ahead.discard()
    yield
    read_ahead.discard()


@pytest.fixture
def scan(tmp_path):
    voxels = np.random.default_rng(0).integers(-1000, 1000, (12, 10, 7)).astype(np.int16)
    return write_nifti(tmp_path / "scan.nii.gz", voxels, np.diag([0.8, 0.8, 2.0, 1.0]))


def test_the_reader_takes_c_ordered_float32_voxels_once_and_the_outputs_the_stored_ones(scan):
    stored = np.asarray(nib.load(scan).dataobj)
    read_ahead.start(scan, keep_image=True)
    assert read_ahead.take_voxels(scan, "int16") is None, "laid out as float32 only"
    image, voxels = read_ahead.take_voxels(scan.parent / ".." / scan.parent.name / scan.name, "float32")
    assert voxels.dtype == np.float32 and voxels.flags.c_contiguous and image.shape == voxels.shape
    np.testing.assert_array_equal(voxels, stored)
    assert read_ahead.take_voxels(scan, "float32") is None, "taken once"
    np.testing.assert_array_equal(np.asarray(read_ahead.take_image(scan).dataobj), stored)
    assert read_ahead.take_image(scan) is None


def test_nothing_is_kept_for_the_outputs_of_a_masks_only_run(scan):
    read_ahead.start(scan, keep_image=False)
    assert read_ahead.take_voxels(scan, "float32") is not None
    assert read_ahead.take_image(scan) is None


def test_a_changed_file_another_file_or_a_broken_one_is_read_as_usual(scan, tmp_path):
    read_ahead.start(scan, keep_image=True)
    assert read_ahead.take_image(tmp_path / "other.nii.gz") is None
    stat = scan.stat()
    os.utime(scan, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert read_ahead.take_voxels(scan, "float32") is None, "modified since it was read"
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(scan.read_bytes()[:300])
    read_ahead.start(broken, keep_image=True)
    assert read_ahead.take_voxels(broken, "float32") is None
    read_ahead.start(tmp_path, keep_image=True)  # a folder (DICOM series) is not read ahead
    assert read_ahead.take_image(tmp_path) is None


@pytest.fixture
def reads(monkeypatch):
    """The files that medseg's reader and outputs load themselves (not through the read ahead)."""
    loaded = []

    def counted(path):
        loaded.append(os.path.basename(path))
        return fast_nifti.load_nifti(path)

    monkeypatch.setattr(readers, "load_nifti", counted)
    monkeypatch.setattr(outputs, "load_nifti", counted)
    return loaded


def test_a_scan_read_ahead_gives_the_same_outputs_without_reading_it_again(tiny_run, small_ct, tmp_path, reads):
    scan = small_ct / "imagesTr" / "liver_000.nii.gz"
    [usual] = segment(tiny_run.bundle, [scan], tmp_path / "usual", device="cpu")
    assert reads.count(scan.name) == 2, "the reader and the outputs each read the scan"
    reads.clear()
    read_ahead.start(scan, keep_image=True)
    [ahead] = segment(tiny_run.bundle, [scan], tmp_path / "ahead", device="cpu")
    assert scan.name not in reads
    assert read_ahead._ahead is None, "forgotten once the scan is done"
    np.testing.assert_array_equal(np.asarray(nib.load(ahead).dataobj), np.asarray(nib.load(usual).dataobj))
    for suffix in ("_stats.json", "_viewer.json"):
        same = [json.loads((folder / f"liver_000{suffix}").read_text()) for folder in (usual.parent, ahead.parent)]
        same[0].pop("provenance", None), same[1].pop("provenance", None)
        assert same[0] == same[1]


def test_medseg_infer_reads_a_single_nifti_scan_ahead_but_not_on_the_stock_path_or_for_a_cohort(
    tiny_run, small_ct, tmp_path, monkeypatch
):
    started = []
    monkeypatch.setattr(read_ahead, "start", lambda path, keep_image: started.append((path.name, keep_image)))
    scan, other = (small_ct / "imagesTr" / f"liver_00{case}.nii.gz" for case in (0, 1))
    command = ["infer", "--trust", str(tiny_run.bundle.root), "--device", "cpu", "--masks-only"]
    assert CliRunner().invoke(app, [*command, str(scan), "-o", str(tmp_path / "a")]).exit_code == 0
    assert CliRunner().invoke(app, [*command, str(scan), "--stock", "-o", str(tmp_path / "b")]).exit_code == 0
    assert CliRunner().invoke(app, [*command, str(scan), str(other), "-o", str(tmp_path / "c")]).exit_code == 0
    assert started == [("liver_000.nii.gz", False)]
