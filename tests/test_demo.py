"""`medseg demo` end to end, as `make demo` runs it (slow)."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_and_reports(tmp_path):
    output = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "medseg", "demo", "--output", str(output), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "liver Dice" in result.stdout and "liver HD95" in result.stdout
    assert "slicer.util.loadSegmentation" in result.stdout
    masks = sorted((output / "results" / "masks").glob("*_seg.nii.gz"))
    assert len(masks) == 4
    assert (output / "training" / "models" / "model.pt").is_file()


def test_demo_replaces_only_its_own_folder(tmp_path):
    from medseg.demo import MARKER, _fresh_output
    from medseg.errors import MedsegError

    previous = tmp_path / "previous"
    _fresh_output(previous)
    (previous / "old_mask.nii.gz").write_bytes(b"x")
    _fresh_output(previous)
    assert sorted(p.name for p in previous.iterdir()) == [MARKER]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(MedsegError, match="not made by `medseg demo`"):
        _fresh_output(mine)
    assert (mine / "notes.txt").read_text() == "keep"
