"""Cohorts: inputs at scale, one workflow for every scan, a resumable manifest, the cohort summary."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.inference.cohort_inputs import ScanRequest, expand_inputs
from medseg.inference.manifest import MANIFEST, Manifest
from medseg.inference.predict import segment_report

from .conftest import TINY
from .test_resume import child_env

TINY_FLAGS = ["--override", "spacing=[6.0,6.0,6.0]", "--override", "patch_size=[32,32,32]"]


@pytest.fixture
def scans(tmp_path, small_ct) -> Path:
    """A folder of five small CT scans (copies, so that a test may change one)."""
    folder = tmp_path / "scans"
    folder.mkdir()
    sources = sorted((small_ct / "imagesTr").glob("*.nii.gz"))[:5]
    for source in sources:
        shutil.copy2(source, folder / source.name)
    return folder


def _names(requests: list[ScanRequest]) -> list[tuple[str, str]]:
    return [(request.source.name, request.name) for request in requests]


def test_a_folder_of_niftis_of_series_folders_and_a_list(tmp_path):
    niftis = tmp_path / "niftis"
    niftis.mkdir()
    for name in ("b.nii.gz", "a.nii", "notes.txt"):
        (niftis / name).write_bytes(b"x")
    series = tmp_path / "dicom"
    for name in ("s2", "s1"):
        (series / name).mkdir(parents=True)
        (series / name / "1.dcm").write_bytes(b"x")
    listed = tmp_path / "lists" / "cohort.txt"
    listed.parent.mkdir()
    listed.write_text("# cohort\n../niftis/a.nii\n\n" + str(niftis / "b.nii.gz") + "\n")
    table = tmp_path / "lists" / "cohort.csv"
    table.write_text("case_id,path\np001,../niftis/a.nii\n,../niftis/b.nii.gz\n")

    assert _names(expand_inputs([niftis])) == [("a.nii", "a"), ("b.nii.gz", "b")]
    assert _names(expand_inputs([series])) == [("s1", "s1"), ("s2", "s2")]
    assert _names(expand_inputs([series / "s1"])) == [("s1", "s1")], "a series folder is one scan"
    assert _names(expand_inputs([], [listed])) == [("a.nii", "a"), ("b.nii.gz", "b")]
    assert _names(expand_inputs([], [table])) == [("a.nii", "p001"), ("b.nii.gz", "b")]


def test_an_empty_folder_is_a_failing_scan_and_a_missing_list_entry_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    assert _names(expand_inputs([tmp_path / "empty"])) == [("empty", "empty")], "fails as a series, alone"
    listed = tmp_path / "cohort.csv"
    listed.write_text("path\ngone.nii.gz\nalso_gone.nii.gz\n")
    with pytest.raises(MedsegError) as missing:
        expand_inputs([], [listed])
    assert (
        str(missing.value)
        == f"{listed}: line 2: no such file or folder: {tmp_path / 'gone.nii.gz'} (2 entries missing)"
    )


def test_the_network_and_weights_are_built_once_for_many_scans(
    tmp_path, ct_bundle, scans, random_weights, one_thread, builds_and_loads
):
    built, loaded = builds_and_loads
    second = tmp_path / "second.pt"
    shutil.copy(random_weights, second)
    report = segment_report(
        ct_bundle, [scans], tmp_path / "out", weights=[random_weights, second], device="cpu", overrides=TINY
    )
    assert len(report.written) == 5 and not report.failed
    assert built == {"UNet": 1}
    # each file is checked once before the run (check_weights); then the CheckpointLoader loads the first and
    # the ensemble each member, once for all five scans
    assert loaded == {random_weights.name: 3, second.name: 2}


def _history(output: Path) -> Counter:
    """How many times each scan (by name) was recorded done."""
    return Counter(entry.name for entry in Manifest(output).history if entry.state == "done")


def _infer(scans: Path, output: Path, weights: Path, *more: str) -> list[str]:
    command = [sys.executable, "-m", "medseg", "infer", "ct_liver_tumour_3d", str(scans), "-o", str(output)]
    return [*command, "--weights", str(weights), "--device", "cpu", "--masks-only", *TINY_FLAGS, *more]


def test_a_run_killed_mid_way_resumes_and_does_no_scan_twice(tmp_path, scans, random_weights):
    output = tmp_path / "out"
    run = subprocess.Popen(_infer(scans, output, random_weights), env=child_env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not _history(output) and time.monotonic() < deadline:  # the first scan is done
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    finished = _history(output)
    assert 1 <= sum(finished.values()) < 5, "killed mid-way"
    assert not list(output.glob("*.tmp*")), "no partial file under a real name"

    again = subprocess.run(_infer(scans, output, random_weights), env=child_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    names = sorted(path.name.removesuffix(".nii.gz") for path in scans.iterdir())
    assert _history(output) == dict.fromkeys(names, 1), "each scan done exactly once"
    assert not list(output.glob(".medseg-staging-*")), "the killed run's staging folder is gone"
    assert sorted(path.name for path in output.iterdir()) == sorted([MANIFEST, *(f"{n}_seg.nii.gz" for n in names)])
    assert f"skipped {sum(finished.values())} scans done by an earlier run" in again.stdout

    changed = scans / f"{names[2]}.nii.gz"
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    subprocess.run(_infer(scans, output, random_weights), env=child_env(), check=True, capture_output=True)
    assert _history(output) == {**dict.fromkeys(names, 1), names[2]: 2}, "only the changed scan is redone"


def test_failed_scans_are_retried_only_when_asked(tmp_path, scans, random_weights):
    (scans / "broken.nii.gz").write_bytes(b"not a scan")
    output = tmp_path / "out"

    def failures() -> int:
        return sum(entry.state == "failed" for entry in Manifest(output).history)

    first = subprocess.run(_infer(scans, output, random_weights), env=child_env(), capture_output=True, text=True)
    assert first.returncode == 1
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {scans / 'broken.nii.gz'}: "), first.stderr
    assert failures() == 1
    again = subprocess.run(_infer(scans, output, random_weights), env=child_env(), capture_output=True, text=True)
    assert (again.returncode, failures()) == (0, 1), again.stderr
    retried = subprocess.run(
        _infer(scans, output, random_weights, "--retry-failed"), env=child_env(), capture_output=True, text=True
    )
    assert (retried.returncode, failures()) == (1, 2)
    assert sum(_history(output).values()) == 5


def test_a_scan_too_large_for_the_pipeline_names_the_prefetch(tmp_path, ct_bundle, random_weights):
    for name in ("a", "b", "c"):
        nib.save(nib.Nifti1Image(np.zeros((64, 64, 64), np.int16), np.eye(4)), tmp_path / f"{name}.nii.gz")
    from medseg.data.validate import check_scan_header
    from medseg.inference.memory import stage_bytes

    single = stage_bytes(check_scan_header(tmp_path / "a.nii.gz", channels=1), [1.5, 1.5, 2.5], 3).single
    report = segment_report(
        ct_bundle,
        [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", tmp_path / "c.nii.gz"],
        tmp_path / "out",
        weights=random_weights,
        device="cpu",
        max_memory=single + 1,
    )
    assert len(report.failed) == 3
    assert "(`max_memory`, or `prefetch` below 2)" in str(report.failed[0])


def test_a_stage_that_breaks_stops_the_run_with_its_error(tmp_path, monkeypatch, ct_bundle, scans, random_weights):
    (scans / "broken.nii.gz").write_bytes(b"not a scan")  # read first: its failure cannot be recorded
    real_append = Manifest.append

    def disk_full_for_failures(self, entries):
        entries = list(entries)
        if any(entry.state == "failed" for entry in entries):
            raise OSError("No space left on device")
        real_append(self, entries)

    monkeypatch.setattr(Manifest, "append", disk_full_for_failures)
    outcome = {}

    def run():
        try:
            segment_report(ct_bundle, [scans], tmp_path / "out", weights=random_weights, device="cpu", overrides=TINY)
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=180)
    assert not thread.is_alive(), "the run hangs"
    assert str(outcome["error"]) == "No space left on device"
