"""`medseg infer` says what it does: device, path and steps on a terminal; one summary line per scan."""

import os
import pty
import re
import subprocess
import sys

from .test_resume import child_env


def test_a_terminal_sees_the_device_the_path_and_each_step(tmp_path, tiny_run, small_ct):
    scan = sorted((small_ct / "imagesTs").glob("*.nii.gz"))[0]
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "medseg", "infer", "--trust", str(tiny_run.output), str(scan)]
    with subprocess.Popen(
        [*command, "-o", str(tmp_path), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        env=child_env(),
    ) as run:
        os.close(follower)
        shown = b""
        while chunk := _read(leader):
            shown += chunk
        stdout = run.communicate(timeout=600)[0]
    assert run.returncode == 0, shown.decode(errors="replace")
    terminal = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    assert f"segmenting with {tiny_run.bundle.name} on cpu, fast path (--window patch)" in terminal
    assert f"segmenting {scan.name.removesuffix('.nii.gz')} (1/1)" in terminal
    (summary,) = [line for line in stdout.splitlines() if line.startswith("wrote ")]
    volumes = r"liver \d+\.\d mL, tumour \d+\.\d mL \(\d+ lesions?\)"
    assert re.fullmatch(rf"wrote .*_seg\.nii\.gz: {volumes}(; \d+ warnings?)?", summary), summary


def _read(leader):
    """The next bytes the child wrote to the terminal; empty once it has closed it."""
    try:
        return os.read(leader, 65536)
    except OSError:  # the child exited: Linux reports the closed terminal as EIO
        return b""


def test_a_run_of_several_scans_shows_one_bar_with_counts_rate_and_time_left(capsys):
    from medseg.errors import MedsegError
    from medseg.inference.progress import RunProgress, run_display

    with run_display(3, "segmenting with a bundle") as (_, show):
        show(RunProgress(total=3, done=1))
        show(RunProgress(total=3, done=1, failed=1, error=MedsegError("not a NIfTI file", "bad.nii.gz")))
    shown = capsys.readouterr().err
    assert "]\rerror: bad.nii.gz: not a NIfTI file\n" in shown, "a line of its own per failure"
    assert "\x1b" not in shown, "no terminal codes in a pipe"
    last = shown.split("\r")[-1]
    bar = r"segmenting:  67%\|.*\| 2/3 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+scan/s, 1 done, 1 failed\]\n"
    assert re.fullmatch(bar, last), last
