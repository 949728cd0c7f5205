"""What ``medseg infer``'s default outputs cost beside the mask, on a 512 x 512 x 200 CT.

The scan is benchmarks/inference.py's synthetic clinical-size CT; its mask is the scan's true label map with
six tumours of 4 to 14 voxels a side planted in the liver (so that lesions are found, measured and drawn).
Timed in one process, after the imports: each case's outputs (``.seg.nrrd``, statistics with lesions,
overlay, viewer data: ``write_case_outputs``) and the run's (``stats.csv``, ``report.html``, colour
table, Slicer snippet: ``write_run_outputs``), wall and CPU seconds, median of ``--repeats``.
The stock recipe writes none of these, so there is no ratio.

    python benchmarks/outputs.py --repeats 3
    python benchmarks/outputs.py --repeats 3 --read-ahead    # the scan kept from the read ahead, not read again
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from inference import make_scans  # benchmarks/inference.py: the same synthetic clinical-size scans

from medseg.bundles import find_bundle
from medseg.inference.outputs import CaseRecord, write_case_outputs, write_run_outputs
from medseg.io import read_ahead
from medseg.io.nifti import write_nifti
from medseg.io.paths import CaseFiles, ScanInput

TUMOURS = 6


def mask_with_tumours(label: Path, target: Path, seed: int) -> None:
    """The label map with :data:`TUMOURS` box tumours (label 2) planted in its liver (label 1)."""
    image = nib.load(label)
    mask = np.asarray(image.dataobj).astype(np.uint8)
    rng = np.random.default_rng(seed)
    liver = np.argwhere(mask == 1)
    for centre in liver[rng.choice(len(liver), TUMOURS)]:
        half = int(rng.integers(2, 8))
        box = tuple(slice(max(0, v - half), v + half) for v in centre)
        mask[box][mask[box] == 1] = 2
    write_nifti(target, mask, image.affine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "medseg-benchmark")
    parser.add_argument(
        "--read-ahead",
        action="store_true",
        help="the scan read ahead before the clock starts, as `medseg infer` reads a single scan while it starts",
    )
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    [(scan, label)] = make_scans(args.data, "clinical", 1, 4242)
    mask = args.data / "clinical_0_tumours_seg.nii.gz"
    if not mask.exists():
        mask_with_tumours(label, mask, seed=0)
    bundle = find_bundle("ct_liver_tumour_3d")
    record = CaseRecord({"benchmark": "outputs"})
    times: dict[str, list[tuple[float, float]]] = {"case outputs": [], "run outputs": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as work:
            files = CaseFiles(Path(work), scan.name.removesuffix(".nii.gz"))
            shutil.copy(mask, files.mask)
            if args.read_ahead:
                read_ahead.start(scan, keep_image=True)
                read_ahead.take_voxels(scan, read_ahead.DTYPE)  # the reader's copy, taken (and dropped) first
            for name, write, given in [
                ("case outputs", write_case_outputs, (bundle, ScanInput(scan, scan), files, record)),
                ("run outputs", write_run_outputs, (bundle, Path(work))),
            ]:
                wall, cpu = time.perf_counter(), time.process_time()
                write(*given)
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    print(f"{scan.name}, median of {args.repeats}")
    for name, values in times.items():
        wall, cpu = (statistics.median(v[i] for v in values) for i in range(2))
        print(f"  {name:<13} wall {wall:5.2f} s  CPU {cpu:5.2f} s")


if __name__ == "__main__":
    main()
