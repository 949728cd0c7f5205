"""medseg infer against the stock MONAI model-zoo recipe, on the same bundle, weights and scans.

Stock: the bundle's own ``inference.json`` run by ``monai.bundle`` (its preprocessing,
``SlidingWindowInferer(roi=patch, sw_batch_size=4, overlap=0.5, mode="gaussian")``, softmax,
``Invertd`` of the probabilities, ``AsDiscreted(argmax)``, ``SaveImaged``). Fast: ``medseg infer``'s
default path. Each path runs in its own child process, one scan at a time, so that peak memory is
that path's alone; the two alternate per scan, so machine load drifts affect both alike.

Printed per scan and in total: end-to-end time (file in, mask on disk; interpreter start and
imports excluded), the ratio stock / fast, peak resident memory of each process and their ratio,
per-label Dice of fast against stock and of both against the ground truth, where the time goes,
and the network's achieved FLOP/s against this machine's measured float32 matmul peak.

    python benchmarks/inference.py                      # 512 x 512 x 200 at 0.75 x 0.75 x 1.5 mm
    python benchmarks/inference.py --size large         # 512 x 512 x 600 (memory)
    python benchmarks/inference.py --cases 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

GRIDS = {  # name -> (slices, slice spacing in mm): 512 x 512 at 0.75 mm in-plane
    "clinical": (200, 1.5),
    "large": (600, 0.5),
}


def make_scans(folder: Path, size: str, cases: int, seed: int) -> list[tuple[Path, Path]]:
    from medseg.io.nifti import write_nifti
    from medseg.samples.phantom import GridPreset
    from medseg.samples.phantom import make_case as phantom

    slices, thickness = GRIDS[size]
    preset = GridPreset(size, 512, (0.75, 0.75), (thickness, thickness), slices=slices)
    pairs = []
    for index in range(cases):
        image, label = folder / f"{size}_{index}.nii.gz", folder / f"{size}_{index}_label.nii.gz"
        if not image.exists():
            case = phantom((seed, index), preset)
            write_nifti(label, case.label, case.grid.affine())
            write_nifti(image, case.image, case.grid.affine())
        pairs.append((image, label))
    return pairs


# ---------------------------------------------------------------------------------------------
# child process: run one path on one scan, with timers around each stage


class Timers:
    """Seconds per stage; a stage called inside another (AsDiscreted inside the resampling) is not counted twice."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.shapes: list[tuple[int, ...]] = []
        self.networks: list = []
        self.active = False
        self.counting_flops = False

    def wrap(self, cls: type, stage: str) -> None:
        original = cls.__call__
        timers = self

        def timed(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if timers.active:
                return original(obj, *args, **kwargs)
            timers.active = True
            start = time.perf_counter()
            try:
                return original(obj, *args, **kwargs)
            finally:
                timers.seconds[stage] += time.perf_counter() - start
                timers.active = False

        cls.__call__ = timed


def _instrument(timers: Timers) -> None:
    """Time MONAI's and medseg's stages by wrapping their classes' ``__call__``."""
    import monai.transforms as mt
    from monai.inferers import Inferer

    import medseg.inference.inferers  # noqa: F401  (so its inferers are among Inferer's subclasses)
    from medseg.inference.label_rules import LabelRulesd
    from medseg.inference.resample import ResampleToSourced
    from medseg.io.mask_writer import SaveMaskd

    timers.wrap(mt.LoadImaged, "read")
    for cls in (mt.EnsureChannelFirstd, mt.Orientationd, mt.Spacingd, mt.CropForegroundd, mt.ScaleIntensityRanged):
        timers.wrap(cls, "preprocess")
    for cls in (Inferer, *Inferer.__subclasses__()):
        timers.wrap(cls, "inferer")
    timers.wrap(mt.Activationsd, "activation")
    timers.wrap(mt.Invertd, "back to source grid")
    timers.wrap(ResampleToSourced, "back to source grid")
    timers.wrap(mt.AsDiscreted, "argmax")
    timers.wrap(LabelRulesd, "label rules")
    timers.wrap(mt.SaveImaged, "write")
    timers.wrap(SaveMaskd, "write")


def _count_network(timers: Timers, network: Any) -> None:
    """Time the network's forward calls and remember their input shapes (FLOPs are counted afterwards).

    Hooks, not a patched ``forward``: they travel with the module into the copy that medseg's
    CPU-tuned inferer runs, and time that copy.
    """
    starts = []

    def before(module: Any, args: tuple) -> None:
        starts.append(time.perf_counter())

    def after(module: Any, args: tuple, output: Any) -> None:
        seconds = time.perf_counter() - starts.pop()
        if not timers.counting_flops:
            timers.seconds["network"] += seconds
            timers.shapes.append(tuple(args[0].shape))

    network.register_forward_pre_hook(before)
    network.register_forward_hook(after)
    timers.networks.append(network)


def _count_flops(timers: Timers) -> float:
    """FLOPs of every recorded forward call, counted once per shape after the timed run."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if not timers.networks:
        return 0.0
    network = timers.networks[-1]
    device = next(network.parameters()).device
    per_shape = {}
    timers.counting_flops = True
    for shape in set(timers.shapes):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            network(torch.zeros(shape, device=device))
        per_shape[shape] = float(counter.get_total_flops())
    return sum(per_shape[shape] for shape in timers.shapes)


def run_child(path: str, scan: str, out: str, bundle_name: str, weights: str | None) -> dict:
    import torch
    from monai.bundle import ConfigWorkflow

    from medseg import bundles as bundle_module
    from medseg.bundles import find_bundle
    from medseg.inference.predict import segment_report

    bundle = find_bundle(bundle_name)
    timers = Timers()
    _instrument(timers)
    weights_file = weights or str(bundle.weights)
    original_load = bundle_module.load_workflow

    def load_and_count(*args: Any, **kwargs: Any) -> Any:
        workflow = original_load(*args, **kwargs)
        real_initialize = workflow.initialize

        def initialize() -> Any:
            result = real_initialize()
            _count_network(timers, workflow.parser.get_parsed_content("network"))
            return result

        workflow.initialize = initialize
        return workflow

    start = time.perf_counter()
    if path == "stock":
        workflow = ConfigWorkflow(
            config_file=str(bundle.config("inference")),
            meta_file=str(bundle.config("metadata")),
            logging_file=False,
            workflow_type="infer",
            bundle_root=str(bundle.root),
            **{"dataset#data": [{"image": scan}], "ckpt_path": weights_file, "output_dir": out},
            device="$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        )
        workflow.initialize()
        _count_network(timers, workflow.parser.get_parsed_content("network"))
        workflow.run()
        workflow.finalize()
    else:
        bundle_module.load_workflow = load_and_count
        import medseg.inference.predict as predict

        predict.load_workflow = load_and_count
        report = segment_report(bundle, [scan], out, weights=weights_file, device="auto", extras=False)
        if report.failed:
            raise report.failed[0]
    total = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu_peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    seconds = dict(timers.seconds)
    seconds["inferer"] = seconds.get("inferer", 0.0) - seconds.get("network", 0.0)  # stitching and padding
    return {
        "total": total,
        "peak_rss": peak_kb * 1024,
        "gpu_peak": gpu_peak,
        "seconds": seconds,
        "flops": _count_flops(timers),
    }


# ---------------------------------------------------------------------------------------------
# parent process


def matmul_peak(threads: int) -> float:
    """Measured float32 matmul FLOP/s of this machine (best of a few 2048^3 products)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


def dice(a, b) -> float:
    import numpy as np

    total = a.sum() + b.sum()
    return float("nan") if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def compare(stock_mask: Path, fast_mask: Path, label: Path, values: dict[int, str]) -> dict[str, dict[str, float]]:
    import nibabel as nib
    import numpy as np

    stock, fast, truth = (np.asarray(nib.load(p).dataobj) for p in (stock_mask, fast_mask, label))
    return {
        name: {
            "fast_vs_stock": dice(fast == value, stock == value),
            "stock_vs_truth": dice(stock == value, truth == value),
            "fast_vs_truth": dice(fast == value, truth == value),
        }
        for value, name in values.items()
        if value
    }


def launch(path: str, scan: Path, out: Path, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--child", path, "--scan", str(scan), "--out", str(out)]
    command += ["--bundle", args.bundle] + (["--weights", args.weights] if args.weights else [])
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{path} failed on {scan}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(GRIDS), default="clinical")
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--bundle", default="ct_liver_tumour_3d")
    parser.add_argument("--weights", default=None, help="weights file (default: the bundle's shipped weights)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "medseg-benchmark")
    parser.add_argument("--child", choices=["stock", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--scan", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_child(args.child, args.scan, args.out, args.bundle, args.weights)))
        return

    from medseg.bundles import find_bundle

    labels = {label.value: label.name for label in find_bundle(args.bundle).labels}
    args.data.mkdir(parents=True, exist_ok=True)
    scans = make_scans(args.data, args.size, args.cases, args.seed)
    peak = matmul_peak(args.threads)
    rows = []
    for index, (scan, label) in enumerate(scans):
        with tempfile.TemporaryDirectory() as work:
            outs = {path: Path(work) / path for path in ("stock", "fast")}
            order = ["stock", "fast"] if index % 2 == 0 else ["fast", "stock"]
            runs = {path: launch(path, scan, outs[path], args) for path in order}
            masks = {path: next(outs[path].glob("*_seg.nii.gz")) for path in outs}
            rows.append((scan.name, runs, compare(masks["stock"], masks["fast"], label, labels)))
    report(rows, peak, args)


def report(rows: list, peak: float, args: argparse.Namespace) -> None:
    import numpy as np

    print(f"\n{args.bundle} on {len(rows)} {args.size} scan(s), {args.threads} threads")
    print(f"float32 matmul peak of this machine: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'scan':<18} {'stock s':>8} {'fast s':>7} {'speed-up':>8} {'stock GB':>8} {'fast GB':>7} {'mem ratio':>9}")
    for name, runs, _ in rows:
        s, f = runs["stock"], runs["fast"]
        print(
            f"{name:<18} {s['total']:8.1f} {f['total']:7.1f} {s['total'] / f['total']:7.2f}x "
            f"{s['peak_rss'] / 1e9:8.2f} {f['peak_rss'] / 1e9:7.2f} {f['peak_rss'] / s['peak_rss']:9.2f}"
        )
    stock_total = sum(r[1]["stock"]["total"] for r in rows)
    fast_total = sum(r[1]["fast"]["total"] for r in rows)
    print(f"{'all':<18} {stock_total:8.1f} {fast_total:7.1f} {stock_total / fast_total:7.2f}x")
    print("\nDice per label (mean over scans)")
    names = list(rows[0][2])
    for name in names:
        values = {key: np.nanmean([r[2][name][key] for r in rows]) for key in rows[0][2][name]}
        print(
            f"  {name:<10} fast vs stock {values['fast_vs_stock']:.4f}   stock vs truth {values['stock_vs_truth']:.4f}"
            f"   fast vs truth {values['fast_vs_truth']:.4f}"
        )
    print("\nwhere the time goes (seconds, summed over scans)")
    stages = ["read", "preprocess", "network", "inferer", "activation", "back to source grid", "argmax"]
    stages += ["label rules", "write"]
    for path in ("stock", "fast"):
        totals = defaultdict(float)
        for _, runs, _ in rows:
            for stage, seconds in runs[path]["seconds"].items():
                totals[stage] += seconds
        total = sum(r[1][path]["total"] for r in rows)
        flops = sum(r[1][path]["flops"] for r in rows)
        shown = [stage for stage in stages if totals[stage] > 0.005]
        parts = "  ".join(f"{stage.replace('inferer', 'stitching')} {totals[stage]:.1f}" for stage in shown)
        print(f"  {path:<5} {parts}  other {total - sum(totals.values()):.1f}")
        rate = flops / max(totals["network"], 1e-9)
        print(
            f"        network share {totals['network'] / total:.0%}; forward {flops / 1e12:.2f} TFLOP at "
            f"{rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of the matmul peak"
        )


if __name__ == "__main__":
    main()
