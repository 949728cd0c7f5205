"""A cohort: ``medseg infer`` in one process against the stock recipe run over a datalist, as users time it.

Stock: the bundle's own ``inference.json`` run by ``python -m monai.bundle run`` with the scans as
its ``datalist`` (one process, the network built once, scans in turn: how the model zoo runs a
datalist), writing masks only. medseg: ``medseg infer BUNDLE FOLDER -o OUT`` with its default
outputs (masks, Slicer segmentations, statistics, overlays, report, cohort summary), pipelined.
Each is one whole process (interpreter start and imports included), timed from outside; peak
memory is that process's maximum resident set; CPU time is its user + system seconds (on a
shared machine they move less than wall time). Masks are compared voxel by voxel.

    python benchmarks/cohort.py                                  # 10 scans of 512 x 512 x 200, 0.75 x 0.75 x 1.5 mm
    nice python benchmarks/cohort.py --cases 3 --size 256 --slices 100
    nice python benchmarks/cohort.py --cases 3 --size 128 --slices 64 --ray-workers 2   # also on a local Ray

With ``--ray-workers N`` the same ``medseg infer`` runs a third time as ``--ray local --workers N``
(Ray started by the process on this machine, N actors), and its throughput (scans per minute,
Ray's start-up included) is printed against the single-process run's, masks compared with it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = "ct_liver_tumour_3d"
# Runs a command and prints, over the children it waited for, their CPU seconds (user + system) and peak
# resident memory (kB, the largest child's).
MEASURED = "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; " + (
    "use = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(use.ru_utime + use.ru_stime, use.ru_maxrss, file=sys.stderr); sys.exit(code)"
)


def make_scans(folder: Path, cases: int, size: int, slices: int, spacing: tuple[float, float]) -> list[Path]:
    """``cases`` synthetic abdominal CTs of ``size`` x ``size`` x ``slices`` voxels (cached in ``folder``)."""
    from medseg.io.nifti import write_nifti
    from medseg.samples.phantom import GridPreset
    from medseg.samples.phantom import make_case as phantom

    preset = GridPreset("cohort", size, (spacing[0], spacing[0]), (spacing[1], spacing[1]), slices=slices)
    folder.mkdir(parents=True, exist_ok=True)
    scans = []
    for index in range(cases):
        scan = folder / f"ct_{index:03d}.nii.gz"
        if not scan.exists():
            case = phantom((20261201, index), preset)
            write_nifti(scan, case.image, case.grid.affine())
        scans.append(scan)
    return scans


def timed(command: list[str]) -> tuple[float, float, float]:
    """Run ``command`` as a whole process; its wall time (s), CPU time (s) and peak resident memory (GB)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    cpu, peak = done.stderr.strip().splitlines()[-1].split()
    return seconds, float(cpu), int(peak) / 1e6


def stock_command(scans: list[Path], output: Path, work: Path) -> list[str]:
    """``monai.bundle run`` of the bundle's ``inference.json`` over ``scans`` (an args file holds the datalist)."""
    bundle = ROOT / "bundles" / BUNDLE
    args = work / "stock_args.json"
    args.write_text(json.dumps({"datalist": [str(scan) for scan in scans], "output_dir": str(output)}))
    config = bundle / "configs" / "inference.json"
    run = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config)]
    return [*run, "--bundle_root", str(bundle), "--args_file", str(args)]


def compare(scans: list[Path], stock: Path, fast: Path) -> tuple[int, float]:
    """Masks identical voxel for voxel, and the smallest fraction of equal voxels over the scans."""
    import nibabel as nib
    import numpy as np

    same, lowest = 0, 1.0
    for scan in scans:
        name = scan.name.removesuffix(".nii.gz")
        a = np.asarray(nib.load(stock / f"{name}_seg.nii.gz").dataobj)
        b = np.asarray(nib.load(fast / f"{name}_seg.nii.gz").dataobj)
        same += bool(np.array_equal(a, b))
        lowest = min(lowest, float(np.mean(a == b)))
    return same, lowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels")
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--spacing", type=float, nargs=2, default=(0.75, 1.5), help="in-plane and slice mm")
    parser.add_argument("--ray-workers", type=int, default=0, help="also run on a local Ray with N workers")
    parser.add_argument("--work", type=Path, default=None, help="folder for the scans and outputs (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medseg-cohort-bench-") as temporary:
        work = args.work or Path(temporary)
        scans = make_scans(work / "scans", args.cases, args.size, args.slices, tuple(args.spacing))
        stock_out, fast_out, ray_out = work / "stock", work / "medseg", work / "ray"
        for folder in (stock_out, fast_out, ray_out):
            subprocess.run(["rm", "-rf", str(folder)], check=True)
        medseg = [sys.executable, "-m", "medseg", "infer", BUNDLE, str(work / "scans"), "-o", str(fast_out)]
        stock_s, stock_cpu, stock_gb = timed(stock_command(scans, stock_out, work))
        fast_s, fast_cpu, fast_gb = timed([*medseg, "--device", "cpu"])
        same, lowest = compare(scans, stock_out, fast_out)
        if args.ray_workers:
            ray_medseg = [*medseg[:-1], str(ray_out), "--device", "cpu"]
            ray_s, ray_cpu, ray_gb = timed([*ray_medseg, "--ray", "local", "--workers", str(args.ray_workers)])
            ray_same, ray_lowest = compare(scans, fast_out, ray_out)
    grid = f"{args.size} x {args.size} x {args.slices} at {args.spacing[0]} x {args.spacing[0]} x {args.spacing[1]} mm"
    print(f"{args.cases} CT scans of {grid}; whole processes: wall time, CPU time (user + system), peak memory")
    for name, (wall, cpu, gb) in {
        "stock (monai.bundle run, datalist, masks only)": (stock_s, stock_cpu, stock_gb),
        "medseg infer (pipelined, default outputs)": (fast_s, fast_cpu, fast_gb),
    }.items():
        print(f"  {name:<48} {wall:7.1f} s  cpu {cpu:7.1f} s  {gb:5.2f} GB")
    ratios = f"x{stock_s / fast_s:.2f} wall, x{stock_cpu / fast_cpu:.2f} cpu"
    print(f"  ratio stock / medseg: {ratios}; memory medseg / stock {fast_gb / stock_gb:.2f}")
    print(f"  masks identical: {same} of {len(scans)} (lowest voxel agreement {lowest:.6f})")
    if args.ray_workers:
        per_minute = [60 * args.cases / seconds for seconds in (fast_s, ray_s)]
        label = f"medseg infer --ray local --workers {args.ray_workers}:"
        without = "(not Ray's worker processes)"
        print(f"  {label:<48}{ray_s:7.1f} s  cpu {ray_cpu:7.1f} s {without}  {ray_gb:5.2f} GB (largest process)")
        print(f"  throughput: one process {per_minute[0]:.2f} scans/min, Ray {per_minute[1]:.2f} scans/min", end="")
        print(f" (x{per_minute[1] / per_minute[0]:.2f})")
        print(f"  Ray masks identical to the one-process run: {ray_same} of {len(scans)} (lowest {ray_lowest:.6f})")


if __name__ == "__main__":
    main()
