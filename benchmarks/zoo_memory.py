"""Peak memory of the model zoo's whole-body CT bundle (105 classes, SegResNet, 1.5 mm): stock recipe against medseg.

The bundle is the zoo's own (``tests/zoo/wholeBody_ct_segmentation``) with random weights made
here from a fixed seed (the real ones cannot be downloaded here), so the masks mean nothing, but
both paths must give the same ones. Each run is a whole process, as a user runs it, niced:

- stock: ``python -m monai.bundle run`` on the bundle's ``inference.json``, its dataset set to
  the one scan, everything else as the zoo ships it (a DataLoader worker, its device expression);
- medseg: ``medseg infer --trust BUNDLE scan -o out --masks-only``, and with its default outputs
  (Slicer segmentation, statistics, overlay, report).

Peak memory is the main process's resident high-water mark as the kernel counts it (``ru_maxrss``),
and the largest total proportional set size (PSS: shared pages split between the processes that
share them) of the process and its children (a DataLoader worker), polled every 0.2 s, which can
miss a short peak; ratios use the larger of the two. The same poll
kills a run whose tree passes ``--limit-gb`` or leaves the machine less than 2 GB, so that a
stock run too big for the machine is recorded as "killed above" instead of taking the machine
down. Agreement is the share of equal voxels of the two masks on the scan's own grid.

    python benchmarks/zoo_memory.py --slices 300 --paths medseg                # the full-size CT, medseg only
    python benchmarks/zoo_memory.py --slices 60 120 --paths stock medseg
    python benchmarks/zoo_memory.py --slices 300 --init-filters 32 --workdir w32   # the bundle's network, full width
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/zoo_bundles.py: the fixture copy and its seeded weights

from tests.zoo_bundles import make_weights, zoo_copy  # noqa: E402

GB = 1024**3
SPACING = (0.7, 0.7, 1.5)  # mm: a 358 mm field of view over 512 x 512, 1.5 mm slices
RESERVE = 2 * GB  # memory the machine keeps whatever a run wants


@dataclass
class Run:
    """One whole-process run: wall time, peak memory (polled tree PSS; the main process's own high-water mark)."""

    seconds: float
    peak: int
    main_peak: int
    killed: bool
    returncode: int


def make_scan(path: Path, slices: int, seed: int = 0) -> Path:
    """A CT-like 512 x 512 x ``slices`` int16 scan: air, a body ellipse, a few organ-like ellipsoids, noise."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, 512), np.linspace(-1, 1, 512), indexing="ij")
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    volume = np.full((512, 512, slices), -1000, np.int16)
    volume[body] = 40
    z = np.linspace(-1, 1, slices)
    for cx, cy, radius, value in [(-0.3, 0.1, 0.3, 60), (0.35, 0.0, 0.15, 120), (0.0, -0.4, 0.1, 700)]:
        inside = ((x[..., None] - cx) ** 2 + (y[..., None] - cy) ** 2 + (z * 0.8) ** 2) < radius**2
        volume[inside] = value
    volume += rng.normal(0, 15, volume.shape).astype(np.int16)
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


def tree_pss(process: psutil.Process) -> int:
    """Proportional set size (bytes) of ``process`` and all its descendants."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def measure(command: list[str], limit: int, log: Path) -> Run:
    """Run ``command`` niced in its own process group; poll its tree's memory; kill it past ``limit``."""
    start = time.perf_counter()
    with log.open("w") as output:
        child = subprocess.Popen(["nice", "-n", "10", *command], stdout=output, stderr=output, start_new_session=True)
        process, peak, killed = psutil.Process(child.pid), 0, False
        while process.status() != psutil.STATUS_ZOMBIE:  # exited, not yet reaped: wait4 below reaps it
            peak = max(peak, tree_pss(process))
            if peak > limit or psutil.virtual_memory().available < RESERVE:
                os.killpg(child.pid, 9)
                killed = True
                break
            time.sleep(0.2)
        _, status, usage = os.wait4(child.pid, 0)  # ru_maxrss: the kernel's high-water mark, in KiB
    returncode = os.waitstatus_to_exitcode(status)
    return Run(time.perf_counter() - start, peak, usage.ru_maxrss * 1024, killed, returncode)


def stock_command(root: Path, scan: Path, output: Path, overrides: dict) -> list[str]:
    """The zoo's own run of the bundle on one scan (its arguments in a file, as ``--args_file``)."""
    args = {
        "config_file": str(root / "configs" / "inference.json"),
        "meta_file": str(root / "configs" / "metadata.json"),
        "logging_file": str(root / "configs" / "logging.conf"),
        "bundle_root": str(root),
        "output_dir": str(output),
        "dataset#data": [{"image": str(scan)}],
        **overrides,
    }
    args_file = output.with_suffix(".json")
    args_file.write_text(json.dumps(args), encoding="utf-8")
    return [sys.executable, "-m", "monai.bundle", "run", "--args_file", str(args_file)]


def medseg_command(root: Path, scan: Path, output: Path, overrides: dict, masks_only: bool) -> list[str]:
    """``medseg infer --trust`` on one scan, with the same network overrides as the stock run."""
    options = [f"--override={key}={json.dumps(value)}" for key, value in overrides.items()]
    return [sys.executable, "-m", "medseg", "infer", "--trust", str(root), str(scan), "-o", str(output), *options] + (
        ["--masks-only"] if masks_only else []
    )


def agreement(mask: Path, reference: Path) -> float:
    """Share of equal voxels of two masks on the same grid (shape and affine checked)."""
    a, b = nib.load(mask), nib.load(reference)
    if a.shape[:3] != b.shape[:3] or not np.allclose(a.affine, b.affine, atol=1e-4):
        raise SystemExit(f"{mask} and {reference} are not on the same grid")
    return float(np.mean(np.asarray(a.dataobj).squeeze() == np.asarray(b.dataobj).squeeze()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[300])
    parser.add_argument("--paths", nargs="+", default=["stock", "medseg"], choices=["stock", "medseg"])
    parser.add_argument("--outputs", nargs="+", default=["masks", "default"], choices=["masks", "default"])
    parser.add_argument("--init-filters", type=int, default=8, help="SegResNet width (the bundle's: 32)")
    parser.add_argument("--limit-gb", type=float, default=18.0, help="kill a run whose tree passes this")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "medseg_zoo_memory")
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    overrides = {"network_def#init_filters": args.init_filters}
    root = work / "wholeBody_ct_segmentation"
    if not root.exists():  # the bundle and its seeded weights, made once per work folder
        zoo_copy("wholeBody_ct_segmentation", work)
        make_weights(root, overrides)
    print(f"wholeBody_ct_segmentation, SegResNet init_filters={args.init_filters}, scans 512 x 512 x N at {SPACING} mm")
    print(f"{'slices':>6} {'path':<16} {'wall s':>7} {'main GB':>8} {'tree GB':>8} {'/ stock':>8} {'agreement':>9}")
    for slices in args.slices:
        scan = work / f"ct_{slices}.nii.gz"
        if not scan.exists():
            make_scan(scan, slices)
        runs: dict[str, tuple[Run, Path | None]] = {}
        if "stock" in args.paths:
            out = work / f"stock_{slices}"
            run = measure(
                stock_command(root, scan, out, overrides), int(args.limit_gb * GB), work / f"stock_{slices}.log"
            )
            masks = sorted(out.rglob("*.nii.gz"))
            runs["stock"] = (run, masks[0] if masks and not run.killed else None)
        if "medseg" in args.paths:
            for kind in args.outputs:
                out = work / f"medseg_{kind}_{slices}"
                command = medseg_command(root, scan, out, overrides, masks_only=kind == "masks")
                run = measure(command, int(args.limit_gb * GB), work / f"medseg_{kind}_{slices}.log")
                runs[f"medseg {kind}"] = (run, out / f"ct_{slices}_seg.nii.gz")
        report(slices, runs)


def report(slices: int, runs: dict) -> None:
    """One line per path: wall time, peak, ratio to the stock run's peak, agreement with its mask."""
    stock_run, stock_mask = runs.get("stock", (None, None))
    for name, (run, mask) in runs.items():
        peak = f"{'>' if run.killed else ''}{run.peak / GB:.2f}"
        ratio = agreed = ""
        if stock_run is not None and name != "stock":
            ratio = f"{'<' if stock_run.killed else ''}{_top(run) / _top(stock_run):.3f}"
            if stock_mask is not None and mask is not None and mask.exists():
                agreed = f"{agreement(mask, stock_mask):.6f}"
        status = " (killed)" if run.killed else "" if run.returncode == 0 else f" (exit {run.returncode})"
        main = f"{run.main_peak / GB:.2f}"
        print(
            f"{slices:>6} {name + status:<16} {run.seconds:>7.0f} {main:>8} {peak:>8} {ratio:>8} {agreed:>9}",
            flush=True,
        )


def _top(run: Run) -> int:
    return max(run.peak, run.main_peak)


if __name__ == "__main__":
    main()
