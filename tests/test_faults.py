"""Injected faults: a writer that fails part-way (an exception, a full disk, a kill) leaves no partial file,
and running again finishes the job."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import pytest
import torch
from PIL import Image

from medseg.inference.predict import segment_report
from medseg.io import nifti, seg_nrrd
from medseg.io.paths import CaseFiles
from medseg.training.checkpoints import AtomicCheckpointSaver

from .conftest import TINY

DISK_FULL = OSError(errno.ENOSPC, "No space left on device")
MID_WRITE = RuntimeError("failed mid-write")


def _fails_mid_write(error: Exception, path_at: int) -> Callable[..., None]:
    """A writer that leaves some bytes at its ``path_at``-th argument, then raises ``error``."""

    def write(*args: object, **kwargs: object) -> None:
        Path(str(args[path_at])).write_bytes(b"\x1f\x8b half a file")
        raise error

    return write


def _visible_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def scan(small_ct: Path) -> Path:
    return small_ct / "imagesTs" / "liver_006.nii.gz"


def _segment(ct_bundle, scan: Path, output: Path, weights: Path):
    return segment_report(ct_bundle, [scan], output, weights=weights, device="cpu", overrides=TINY)


# (object, attribute, index of the path argument, fault): each writer of a case's required files and of the run's.
WRITERS = {
    "mask": (nifti, "save_nifti", 1, MID_WRITE),
    "Slicer segmentation": (seg_nrrd.slicerio, "write_segmentation", 0, DISK_FULL),
    "statistics": (Path, "write_text", 0, DISK_FULL),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_failed_write_leaves_nothing_and_a_rerun_finishes(
    writer, tmp_path, monkeypatch, one_thread, ct_bundle, scan, random_weights
):
    owner, name, path_at, error = WRITERS[writer]
    output = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, _fails_mid_write(error, path_at))
        report = _segment(ct_bundle, scan, output, random_weights)
    assert not report.written and str(error) in str(report.failed[0])
    assert _visible_files(output) == []
    report = _segment(ct_bundle, scan, output, random_weights)
    assert not report.failed
    files = CaseFiles.of_mask(report.written[0])
    assert nib.load(files.mask).shape == nib.load(scan).shape
    assert all(getattr(files, kind).stat().st_size > 0 for kind in ("segmentation", "stats", "overlay"))


def test_a_failed_overlay_write_leaves_no_part_of_it_and_costs_only_itself(
    tmp_path, monkeypatch, one_thread, ct_bundle, scan, random_weights
):
    """The overlay is optional: its failed write leaves no partial file, and every other output is written."""
    output = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", _fails_mid_write(MID_WRITE, 1))
        report = _segment(ct_bundle, scan, output, random_weights)
    assert not report.failed and [w for w in report.warnings if "overlay skipped" in w] == [
        f"{scan}: overlay skipped: {type(MID_WRITE).__name__}: {MID_WRITE}"
    ]
    files = CaseFiles.of_mask(report.written[0])
    assert not files.overlay.exists() and not [p for p in output.rglob(".*") if p.is_file()]
    assert all(getattr(files, kind).is_file() for kind in ("mask", "segmentation", "stats"))


def test_a_failed_checkpoint_save_leaves_the_last_good_one(tmp_path, monkeypatch):
    saver = AtomicCheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(2, 2)}, save_final=True)
    disk = saver._final_checkpoint.save_handler
    disk({"model": {"weight": torch.ones(2)}}, "model.pt")
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", _fails_mid_write(DISK_FULL, 1))
        with pytest.raises(OSError, match="No space left"):
            disk({"model": {"weight": torch.zeros(2)}}, "model.pt")
    assert _visible_files(tmp_path) == ["model.pt"]
    assert torch.load(tmp_path / "model.pt", weights_only=True)["model"]["weight"].sum() == 2


# Writes a file through atomic_file in two halves; with a pause, it says so between them.
ATOMIC_WRITER = textwrap.dedent(
    """
    import sys, time
    from medseg.io.atomic import atomic_file

    with atomic_file(sys.argv[1]) as partial, partial.open("wb") as handle:
        handle.write(b"first half,")
        handle.flush()
        if sys.argv[2] == "pause":
            print("half written", flush=True)
            time.sleep(60)
        handle.write(b"second half")
    """
)


def test_a_kill_mid_write_leaves_no_file_and_a_rerun_finishes(tmp_path):
    target = tmp_path / "out" / "result.bin"
    writer = subprocess.Popen(
        [sys.executable, "-c", ATOMIC_WRITER, str(target), "pause"], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline() == "half written\n"
    writer.send_signal(signal.SIGKILL)
    assert writer.wait(timeout=30) == -signal.SIGKILL
    assert not target.exists()
    assert [path.name for path in target.parent.iterdir() if not path.name.startswith(".")] == []
    subprocess.run([sys.executable, "-c", ATOMIC_WRITER, str(target), "go"], check=True, timeout=60)
    assert target.read_bytes() == b"first half,second half"
