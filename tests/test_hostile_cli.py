"""Hostile input at the command line: one line per bad file, exit status 1, nothing written, in bounded time;
untrusted bundles, scans over the memory budget and Ctrl-C."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest

from medseg.bundles import BUILTIN_BUNDLES
from medseg.data.validate import ScanInfo, check_scan, check_scan_header
from medseg.inference.memory import network_voxels, stage_bytes
from medseg.inference.predict import segment_report

from . import hostile
from .test_cli_errors import assert_one_line_error, medseg

TIME_LIMIT_S = 120  # the whole batch of bad scans, including start-up (about 10 s on a busy 2-core machine)


def _edited(*edits: tuple[str, int, object]) -> bytes:
    return gzip.compress(hostile.edit_header(hostile.valid_nifti(), list(edits)))


def _image(data: np.ndarray, affine: np.ndarray | None = None) -> bytes:
    return gzip.compress(nib.Nifti1Image(data, np.eye(4) if affine is None else affine).to_bytes())


def _sheared() -> np.ndarray:
    affine = np.eye(4)
    affine[0, 1] = 0.5
    return affine


NAN_VOXELS = np.zeros((8, 8, 8), np.float32)
NAN_VOXELS[3, 4, 5] = np.nan
# File name -> (content, what the error line says).
BAD_SCANS = {
    "wrong_magic.nii.gz": (_edited(("magic", 0, b"xyz\0")), "cannot read NIfTI"),
    "truncated.nii.gz": (gzip.compress(hostile.valid_nifti())[:-30], "cannot read NIfTI"),
    "terabytes.nii": (hostile.edit_header(hostile.valid_nifti(), [("dim", 1, 30000), ("dim", 2, 30000)]), "truncated"),
    "zero_spacing.nii.gz": (_edited(("pixdim", 1, 0.0)), "voxel spacing"),
    "negative_spacing.nii.gz": (_edited(("pixdim", 3, -2.0)), "voxel spacing"),
    "singular.nii.gz": (_edited(("srow_x", 0, 0.0), ("srow_y", 0, 0.0), ("srow_z", 0, 0.0)), "singular"),
    "sheared.nii.gz": (_image(np.zeros((8, 8, 8), np.int16), _sheared()), "not orthonormal"),
    "nan_voxels.nii.gz": (_image(NAN_VOXELS), "NaN"),
    "slope_overflow.nii.gz": (_edited(("scl_slope", 0, 1e38)), "overflows"),
    "flat_2d.nii.gz": (_image(np.zeros((8, 8), np.int16)), "2 dimensions"),
    "five_d.nii.gz": (_image(np.zeros((4, 4, 4, 1, 2), np.int16)), "5 dimensions"),
}


@pytest.fixture(scope="module")
def bad_scans(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, str]:
    folder = tmp_path_factory.mktemp("bad_scans")
    scans = {}
    for name, (content, problem) in BAD_SCANS.items():
        (folder / name).write_bytes(content)
        scans[folder / name] = problem
    nrrd.write(str(folder / "scan.nrrd"), np.zeros((4, 4, 4), np.int16))
    scans[folder / "scan.nrrd"] = "not a NIfTI or DICOM file"
    return scans


def test_each_bad_scan_gets_one_line_and_nothing_is_written(tmp_path, bad_scans, random_weights):
    arguments = ["infer", "ct_liver_tumour_3d", *bad_scans, "-o", tmp_path / "out", "--weights", random_weights]
    result = subprocess.run(
        [sys.executable, "-m", "medseg", *map(str, arguments), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,  # the time bound: TimeoutExpired fails the test
    )
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("segmenting:")]
    assert len(lines) == len(bad_scans), result.stderr  # beside the progress bar, one line per scan
    for line, (path, problem) in zip(lines, bad_scans.items(), strict=True):
        assert line.startswith(f"error: {path}: ") and problem in line, line
    assert not (tmp_path / "out").exists()


def _copied_bundle(folder: Path) -> Path:
    target = folder / "my_bundle"
    shutil.copytree(BUILTIN_BUNDLES / "ct_liver_tumour_3d", target, ignore=shutil.ignore_patterns("models"))
    return target


def test_a_bundle_from_elsewhere_needs_trust(tmp_path):
    bundle = _copied_bundle(tmp_path)
    result = medseg("infer", bundle, tmp_path / "scan.nii.gz", "-o", tmp_path / "out")
    assert_one_line_error(result, str(bundle), "--trust", "run Python code")
    assert not (tmp_path / "out").exists()
    trusted = medseg("infer", "--trust", bundle, tmp_path / "scan.nii.gz", "-o", tmp_path / "out")
    assert trusted.stderr.splitlines()[0] == f"running bundle code from {bundle} (--trust)"
    assert "run Python code" not in trusted.stderr


def test_the_user_bundle_folder_is_trusted(tmp_path):
    _copied_bundle(tmp_path / "bundles")
    command = [sys.executable, "-m", "medseg", "infer", "my_bundle", str(tmp_path / "scan.nii.gz"), "-o", "out"]
    environment = {**os.environ, "MEDSEG_BUNDLES": str(tmp_path / "bundles")}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path)
    assert "--trust" not in result.stderr and "weights file not found" in result.stderr


def test_stage_bytes_formula():
    scan = ScanInfo(Path("scan.nii.gz"), (512, 512, 60), 1, np.diag([0.8, 0.8, 5.0, 1.0]), voxel_bytes=2)
    assert network_voxels((512, 512, 60), (0.8, 0.8, 5.0), (1.6, 1.6, -1)) == 256 * 256 * 60
    voxels, resampled = 512 * 512 * 60, 256 * 256 * 60
    stages = stage_bytes(scan, (1.6, 1.6, -1), 3)
    assert stages.reader == 4 * (voxels + voxels)  # downsampled: reorienting's two copies are the peak
    assert stages.queued == 4 * resampled * (1 + 3)
    assert stages.writer == 8 * resampled * 3 + (2 + 2) * voxels
    assert stages.single == max(stages.reader, stages.queued + stages.writer)
    assert stages.pipeline(2) == stages.reader + stages.writer + 5 * stages.queued
    upsampled = stage_bytes(scan, (0.4, 0.4, 5.0), 1)
    assert upsampled.reader == 4 * (voxels + 4 * voxels)  # the scan and its copy on the finer grid


@pytest.mark.parametrize(
    ("stored", "slope", "held"), [(np.int16, 1, 2), (np.uint8, 1, 1), (np.float32, 1, 4), (np.int16, 0.5, 4)]
)
def test_the_estimate_counts_voxels_as_the_outputs_hold_them(tmp_path, stored, slope, held):
    scan = tmp_path / "scan.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), stored), np.eye(4)), scan)
    with scan.open("r+b") as handle:  # scl_slope and scl_inter (nibabel resets them when it saves an array)
        handle.seek(112)
        handle.write(np.array([slope, 0], "<f4").tobytes())
    assert check_scan_header(scan).voxel_bytes == held  # int16 with a slope is read, and held, as float32
    assert check_scan(scan).voxel_bytes == held


def test_a_scan_over_the_memory_budget_is_refused_before_work(tmp_path, small_ct, ct_bundle, random_weights):
    scan = small_ct / "imagesTs" / "liver_006.nii.gz"
    report = segment_report(ct_bundle, [scan], tmp_path / "out", weights=random_weights, max_memory=10**6)
    [error] = report.failed
    assert error.path == scan and "more than the 1.0 MB allowed (`max_memory`)" in str(error)
    assert not (tmp_path / "out").exists()


def _ctrl_c_works() -> None:
    """Let the child handle SIGINT even when the tests run in the background (which ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_with_one_line_and_no_output(tmp_path, small_ct, random_weights):
    out = tmp_path / "out"
    scan = small_ct / "imagesTs" / "liver_006.nii.gz"  # one scan: no progress bar
    command = ["infer", "ct_liver_tumour_3d", scan, "-o", out, "--weights", random_weights, "--device", "cpu"]
    run = subprocess.Popen(
        [sys.executable, "-m", "medseg", *map(str, command)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_works,
    )
    deadline = time.monotonic() + TIME_LIMIT_S
    while not list(out.glob(".medseg-staging-*")) and time.monotonic() < deadline:  # segmenting has begun
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    stderr = run.communicate(timeout=60)[1]
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["interrupted"], stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_ctrl_c_that_a_library_wrapped_still_stops_the_run():
    """pydoc.locate (MONAI's _target_ lookup) wraps a Ctrl-C during an import in ErrorDuringImport."""
    import pydoc

    from medseg.errors import interrupted

    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        wrapped = pydoc.ErrorDuringImport("monai.transforms.compose", sys.exc_info())
    assert interrupted(RuntimeError("config failed")) is False
    assert interrupted(wrapped) is True
    try:
        try:
            raise wrapped
        except pydoc.ErrorDuringImport as error:
            raise RuntimeError("problem in Compose") from error
    except RuntimeError as error:
        assert interrupted(error) is True
