"""A cohort's peak memory, measured as the user's process reaches it, stays within medseg's stated estimate.

``medseg infer`` refuses a scan whose estimate (:class:`medseg.inference.memory.StageBytes`) exceeds
``--max-memory``: an estimate below what runs really take would let a cohort be killed for memory hours
in. Each run here is a whole process; its peak is the maximum resident set the operating system
recorded. Runs on a tiny scan give the process's own peak (interpreter, MONAI, the network and its
weights, one window), which the cohort's peak is measured above.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.bundles import find_bundle
from medseg.data.validate import check_scan_header
from medseg.defaults import DEFAULT_PREFETCH
from medseg.inference.memory import stage_bytes
from medseg.inference.options import InferenceOptions, held_channels
from medseg.io.nifti import write_nifti
from medseg.samples.phantom import make_case
from medseg.samples.phantom.grid import GridPreset

from .test_resume import child_env

BUNDLE = "ct_liver_tumour_3d"
SCANS = 5
# Runs a command and prints the peak resident memory (bytes) of the process it waited for.
PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(code)"
)


def _peak_bytes(scans: list[Path], output: Path) -> int:
    """Peak resident memory of ``medseg infer BUNDLE SCANS -o OUTPUT`` (default outputs) as a whole process."""
    infer = [sys.executable, "-m", "medseg", "infer", BUNDLE, *map(str, scans), "-o", str(output), "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, "-c", PEAK, *infer], capture_output=True, text=True, env=child_env(), check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


@pytest.mark.slow
def test_a_cohorts_peak_memory_stays_within_the_estimate(tmp_path):
    case = make_case((20261201, 0), GridPreset("memory", 320, (0.75, 0.75), (1.5, 1.5), slices=120))
    scans = [tmp_path / f"ct_{index}.nii.gz" for index in range(SCANS)]
    write_nifti(scans[0], case.image, case.grid.affine())
    for copy in scans[1:]:  # the same voxels under other names: the pipeline holds each as its own scan
        shutil.copy(scans[0], copy)
    tiny = tmp_path / "tiny.nii.gz"
    write_nifti(tiny, case.image[::8, ::8, ::4], case.grid.affine() @ np.diag([8.0, 8.0, 4.0, 1.0]))

    # the process's own peak varies by some 100 MB from run to run (a third of the estimate): take the median
    process = statistics.median(_peak_bytes([tiny], tmp_path / f"tiny_out_{run}") for run in range(3))
    cohort = _peak_bytes(scans, tmp_path / "cohort_out")

    bundle = find_bundle(BUNDLE)
    target = bundle.parsed("inference").network_spacing()
    stages = stage_bytes(check_scan_header(scans[0]), target, held_channels(bundle, InferenceOptions()))
    estimate = stages.pipeline(min(DEFAULT_PREFETCH, SCANS - 1))
    rise = cohort - process
    assert rise <= estimate, (
        f"the cohort rose {rise / 1e6:.0f} MB above the process, over the {estimate / 1e6:.0f} MB estimate"
    )
    assert rise >= estimate / 4, "the scans are too small for the test to tell a wrong estimate"
