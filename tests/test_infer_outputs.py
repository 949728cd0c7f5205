"""``medseg infer`` writes, per case, a Slicer segmentation, statistics and an overlay beside each mask, and
a table, report, colour table and Slicer snippet per run; all of a case's files or none of them."""

import csv
import hashlib
import json
import subprocess
import sys

import pytest
import slicerio

from medseg.inference import outputs
from medseg.inference.predict import segment_report
from medseg.io.paths import CaseFiles

CASE_FILES = ("mask", "segmentation", "stats", "overlay", "viewer")


@pytest.fixture(scope="module")
def test_scans(small_ct):
    return sorted((small_ct / "imagesTs").glob("*.nii.gz"))


def _run_failing_for_one(tmp_path_factory, tiny_run, test_scans, writer: str, message: str):
    """Segment ``test_scans`` with ``outputs.<writer>`` raising ``message`` for the second scan only."""
    failing = test_scans[1].name.removesuffix(".nii.gz")
    write = getattr(outputs, writer)

    def fail_for_one(path, *args, **kwargs):
        if path.name.startswith(failing):
            raise RuntimeError(message)
        return write(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outputs, writer, fail_for_one)
        output = tmp_path_factory.mktemp("infer_outputs")
        report = segment_report(tiny_run.bundle, test_scans, output, device="cpu")
    return report, output, failing


@pytest.fixture(scope="module")
def one_case_fails(tmp_path_factory, tiny_run, test_scans):
    """A run whose second case fails while writing its Slicer segmentation (after its mask was written)."""
    return _run_failing_for_one(tmp_path_factory, tiny_run, test_scans, "write_seg_nrrd", "no pictures today")


def test_an_overlay_that_fails_costs_only_itself(tmp_path_factory, tiny_run, test_scans):
    report, output, failing = _run_failing_for_one(tmp_path_factory, tiny_run, test_scans, "write_overlay", "no ink")
    assert report.failed == [] and len(report.written) == 2
    assert [w for w in report.warnings if "skipped" in w] == [f"{test_scans[1]}: overlay skipped: RuntimeError: no ink"]
    files = CaseFiles(output, failing)
    assert not files.overlay.exists()
    assert all(getattr(files, name).is_file() for name in ("mask", "segmentation", "stats"))
    assert "overlay skipped: RuntimeError: no ink" in json.loads(files.stats.read_text())["warnings"]
    assert "warning: overlay skipped: RuntimeError: no ink" in (output / "report.html").read_text()


def test_a_failing_case_leaves_nothing_and_is_reported(one_case_fails, test_scans):
    report, output, failing = one_case_fails
    [error] = report.failed
    assert error.path == test_scans[1]
    assert "RuntimeError: no pictures today" in str(error)
    assert not [path.name for path in output.iterdir() if path.name.startswith(failing)]
    assert not [path.name for path in output.iterdir() if path.name.startswith(".")]


def test_the_other_case_has_all_its_files(one_case_fails, tiny_run):
    report, output, _ = one_case_fails
    [mask] = report.written
    files = CaseFiles.of_mask(mask)
    assert all(getattr(files, name).is_file() for name in CASE_FILES)
    segments = slicerio.read_segmentation(str(files.segmentation))["segments"]
    assert [(s["name"], s["labelValue"]) for s in segments] == [("liver", 1), ("tumour", 2)]
    stats = json.loads(files.stats.read_text())
    assert stats["bundle"] == tiny_run.bundle.name and stats["case"] == files.name
    assert stats["labels"][0]["volume_ml"] > 50, "the tiny model finds the phantom's liver"
    rows = list(csv.DictReader((output / "stats.csv").open()))
    assert {row["case"] for row in rows} == {files.name}
    assert (output / f"{tiny_run.bundle.name}_colors.ctbl").is_file()
    assert str(files.segmentation) in (output / "open_in_slicer.py").read_text()
    assert (output / "report.html").read_text().count("data:image/png;base64,") == 1
    run = stats["provenance"]
    assert (run["device"], run["weights_sha256"]) == (
        "cpu",
        [hashlib.sha256(tiny_run.bundle.weights.read_bytes()).hexdigest()],
    )


def test_masks_only_from_the_command_line(tmp_path, tiny_run, test_scans):
    stale = CaseFiles(tmp_path, test_scans[0].name.removesuffix(".nii.gz"))
    stale.stats.write_text("{}")  # from an earlier run: must not outlive the new mask
    command = [sys.executable, "-m", "medseg", "infer", "--trust", str(tiny_run.bundle.root), str(test_scans[0])]
    done = subprocess.run([*command, "-o", str(tmp_path), "--device", "cpu", "--masks-only"], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert [path.name for path in tmp_path.iterdir()] == [stale.mask.name]


def test_a_second_run_into_the_folder_keeps_every_case_in_the_table_and_report(tmp_path, tiny_run, test_scans):
    first, second = test_scans
    for scan in (first, second):
        segment_report(tiny_run.bundle, [scan], tmp_path, device="cpu")
    with (tmp_path / "stats.csv").open() as handle:
        listed = {row["case"] for row in csv.DictReader(handle)}
    names = {scan.name.removesuffix(".nii.gz") for scan in test_scans}
    assert listed == names
    page = (tmp_path / "report.html").read_text()
    assert all(name in page for name in names)
    assert page.count("data:image/png;base64,") == 2
