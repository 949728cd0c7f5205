"""Whole processes, as a user runs them: ``medseg infer`` against the stock MONAI recipe, same scan and weights.

Three commands, each a fresh process timed from its start to its exit (interpreter start, imports, reading,
inference, writing, everything):

- ``medseg infer BUNDLE scan.nii.gz -o OUT`` with its default outputs (mask, ``.seg.nrrd``, statistics,
  overlay, viewer data, ``stats.csv``, ``report.html``, colour table, Slicer snippet);
- the same with ``--masks-only``;
- the stock recipe as the model zoo runs it: ``python -m monai.bundle run --config_file configs/inference.json
  --meta_file configs/metadata.json --logging_file configs/logging.conf --bundle_root BUNDLE --dataset_dir DIR
  --output_dir OUT``, where ``DIR/imagesTs/`` holds the scan (the bundle's datalist globs it).

CPU seconds are the process tree's (``wait4``'s user + system time): on a shared machine they move less
than wall time. Peak memory is the largest sum of the resident memory of the process and its children, sampled every
10 ms with psutil, or the kernel's own peak of the process (``wait4``'s ``ru_maxrss``) when larger. The
commands run in turn, their order rotating each round; each round prints the voxels where medseg's
masks differ from the stock recipe's.

    python benchmarks/whole_process.py                  # 512 x 512 x 200 CT at 0.75 x 0.75 x 1.5 mm, 2 rounds
    python benchmarks/whole_process.py --python /path/to/plain-venv/bin/python   # as a default install runs
    nice python benchmarks/whole_process.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from inference import make_scans  # benchmarks/inference.py: the same synthetic clinical-size scans

POLL_S = 0.01


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of ``process`` and all its children now (0 once it has gone)."""
    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return 0
    return total


def timed(command: list[str]) -> tuple[float, float, int]:
    """Run ``command`` to its end; return its wall seconds, CPU seconds and peak resident bytes (module docstring)."""
    start = time.perf_counter()
    process = psutil.Popen(command, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))  # noqa: SIM115
    peak, finished = [0], threading.Event()

    def sample() -> None:
        while not finished.is_set():
            peak[0] = max(peak[0], tree_rss(process))
            time.sleep(POLL_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    finished.set()
    sampler.join()
    if process.returncode != 0:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}")
    return seconds, usage.ru_utime + usage.ru_stime, max(peak[0], usage.ru_maxrss * 1024)


def commands(python: str, bundle_root: Path, bundle: str, scan: Path, work: Path) -> dict[str, tuple[list[str], Path]]:
    """Each path's command line and the folder its mask lands in."""
    dataset = work / "dataset"
    (dataset / "imagesTs").mkdir(parents=True, exist_ok=True)
    linked = dataset / "imagesTs" / scan.name
    if not linked.exists():
        linked.symlink_to(scan.resolve())
    configs = bundle_root / "configs"
    stock = [python, "-m", "monai.bundle", "run", "--config_file", str(configs / "inference.json")]
    stock += ["--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf")]
    stock += ["--bundle_root", str(bundle_root), "--dataset_dir", str(dataset), "--output_dir", str(work / "stock")]
    medseg = [python, "-m", "medseg", "infer", bundle, str(scan)]
    return {
        "medseg": ([*medseg, "-o", str(work / "medseg")], work / "medseg"),
        "medseg --masks-only": ([*medseg, "-o", str(work / "masks"), "--masks-only"], work / "masks"),
        "stock": (stock, work / "stock"),
    }


def differing_voxels(folders: dict[str, Path], scan: Path) -> dict[str, int]:
    """For each path but the stock one, the voxels where its mask differs from the stock recipe's."""
    import nibabel as nib
    import numpy as np

    name = scan.name.removesuffix(".nii.gz") + "_seg.nii.gz"
    masks = {path: np.asarray(nib.load(next(folder.rglob(name))).dataobj) for path, folder in folders.items()}
    return {path: int((mask != masks["stock"]).sum()) for path, mask in masks.items() if path != "stock"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="ct_liver_tumour_3d")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "medseg-benchmark")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the environment to time both paths in, e.g. a default install's "
        "(pip install torch==2.13.0 medseg) rather than this development one (default: this one)",
    )
    args = parser.parse_args()

    from medseg.bundles import find_bundle

    bundle_root = find_bundle(args.bundle).root
    args.data.mkdir(parents=True, exist_ok=True)
    [(scan, _)] = make_scans(args.data, "clinical", 1, args.seed)
    runs: dict[str, list[tuple[float, float, int]]] = {}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="medseg-whole-") as work:
            paths = commands(args.python, bundle_root, args.bundle, scan, Path(work))
            names = list(paths)
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                seconds, cpu, peak = timed(paths[name][0])
                runs.setdefault(name, []).append((seconds, cpu, peak))
                line = f"{name:<20} {seconds:6.1f} s  cpu {cpu:6.1f} s  {peak / 1e9:5.2f} GB"
                print(f"round {round_ + 1}: {line}", flush=True)
            differing = differing_voxels({name: folder for name, (_, folder) in paths.items()}, scan)
            print(f"round {round_ + 1}: voxels differing from the stock mask: {differing}", flush=True)
    report(runs, scan)


def report(runs: dict[str, list[tuple[float, float, int]]], scan: Path) -> None:
    def median(name: str, field: int) -> float:
        return statistics.median(run[field] for run in runs[name])

    print(f"\n{scan.name}: medians of {len(runs['stock'])} rounds")
    print(f"{'command':<20} {'wall s':>7} {'speed-up':>8} {'CPU s':>7} {'CPU ratio':>9} {'peak GB':>8} {'of stock':>8}")
    for name in runs:
        seconds, cpu, peak = (median(name, field) for field in range(3))
        print(
            f"{name:<20} {seconds:7.1f} {median('stock', 0) / seconds:7.2f}x {cpu:7.1f}"
            f" {median('stock', 1) / cpu:8.2f}x {peak / 1e9:8.2f} {peak / median('stock', 2):8.2f}"
        )


if __name__ == "__main__":
    main()
