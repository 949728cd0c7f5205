"""Training throughput of `medseg train` against the stock model-zoo recipe, on the same bundle and data.

Stock: the bundle's own ``train.json`` as ``python -m monai.bundle run`` runs it (``CacheDataset``
in RAM, a ``DataLoader`` with worker processes, AMP on CUDA). medseg: ``medseg train``'s code
path, which on CUDA caches the preprocessed cases on the GPU (``ToDeviced``, ``ThreadDataLoader``)
when they fit, and otherwise caches as the stock recipe does. Both get the same spacing, patch
size, epochs and seed; validation is switched off so that only training is timed.

Each path runs in its own child process; the two alternate when repeated. Printed: training
patches per second (epochs after the first, data loading included), the ratio medseg / stock,
and on CUDA the mean GPU utilisation sampled with nvidia-smi.

    python benchmarks/training.py                # bundle settings, 20 clinical-grid cases, 5 epochs
    python benchmarks/training.py --tiny         # CPU smoke run: 6 mm voxels, 32^3 patches, 3 epochs
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ignite.engine import Engine, Events

BUNDLE = "ct_liver_tumour_3d"
TINY = {"spacing": [6.0, 6.0, 6.0], "patch_size": [32, 32, 32]}


class PatchTimer:
    """Trainer handler: patches trained and seconds spent in the iterations of every epoch but the first."""

    def __init__(self, result: str) -> None:
        self.result = Path(result)
        self.patches, self.seconds, self.started = 0, 0.0, 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._count)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _start(self, engine: Engine) -> None:
        self.started = time.perf_counter()

    def _count(self, engine: Engine) -> None:
        if engine.state.epoch > 1:
            now = time.perf_counter()
            self.seconds += now - self.started
            self.started = now
            self.patches += len(engine.state.batch)

    def _write(self, engine: Engine) -> None:
        self.result.write_text(json.dumps({"patches": self.patches, "seconds": self.seconds}))


class GpuSampler:
    """Mean GPU utilisation (%) from ``nvidia-smi``, sampled every 0.5 s while the block runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=0"]
        while not self._stop.wait(0.5):
            output = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
            if output.isdigit():
                self.samples.append(float(output))

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def child(path: str, data: Path, output: Path, result: Path, settings: dict, epochs: int, device: str) -> None:
    """Train one path in this process; the timer writes ``result``."""
    from medseg.bundles import find_bundle, load_workflow, run_workflow
    from medseg.devices import device_expression
    from medseg.training.run import train

    bundle = find_bundle(BUNDLE)
    timer = {"_target_": "training.PatchTimer", "result": str(result)}
    if path == "medseg":
        train(
            bundle,
            data,
            output=output,
            epochs=epochs,
            device=device,
            presets="bundle",
            overrides=settings,
            handlers=[timer],
            say=lambda _: None,
        )
        return
    overrides = {
        "dataset_dir": str(data),
        "ckpt_dir": str(output / "models"),
        "output_dir": str(output),
        "device": device_expression(device),
        "train#trainer#max_epochs": epochs,
        **settings,
    }
    workflow = load_workflow(bundle, ["train"], workflow_type="train", overrides=overrides, quiet=True)
    workflow.parser["train#handlers"] = [*workflow.parser["train#handlers"], timer]
    run_workflow(workflow)


def measure(path: str, args: argparse.Namespace, data: Path, scratch: Path, settings: dict) -> dict:
    output, result = scratch / f"{path}-{time.monotonic_ns()}", scratch / f"{path}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        path,
        "--data",
        str(data),
        "--output",
        str(output),
        "--result",
        str(result),
        "--settings",
        json.dumps(settings),
        "--epochs",
        str(args.epochs),
        "--device",
        args.device,
    ]
    with GpuSampler() as gpu:
        subprocess.run(command, check=True, capture_output=not args.verbose)
    measured = json.loads(result.read_text())
    return {"rate": measured["patches"] / measured["seconds"], "gpu": gpu.mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="6 mm voxels, 32^3 patches, 6 small cases, 3 epochs")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, help="a dataset to use instead of synthetic CT")
    parser.add_argument("--verbose", action="store_true", help="show the children's training logs")
    parser.add_argument("--child", choices=["medseg", "stock"], help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", type=json.loads, default={}, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.output, args.result, args.settings, args.epochs, args.device)
        return
    if args.tiny:
        args.cases, args.epochs = 6, 3
    settings = {**(TINY if args.tiny else {}), "val_interval": args.epochs + 1, "seed": 0}
    with tempfile.TemporaryDirectory(prefix="medseg-train-bench-") as scratch:
        data = args.data
        if data is None:
            from medseg.samples.datasets import write_ct_dataset

            data = write_ct_dataset(
                Path(scratch) / "data",
                cases=args.cases,
                test_cases=1,
                seed=3,
                preset="small" if args.tiny else "clinical",
            )
        runs: dict[str, list[dict]] = {"stock": [], "medseg": []}
        for _ in range(args.repeats):
            for path in runs:
                runs[path].append(measure(path, args, data, Path(scratch), settings))
    rates = {path: statistics.median(r["rate"] for r in results) for path, results in runs.items()}
    print(
        f"bundle {BUNDLE}, {args.cases} cases, {args.epochs} epochs (the first not timed), device {args.device}, "
        f"settings {settings}"
    )
    for path, results in runs.items():
        gpu = [r["gpu"] for r in results if r["gpu"] is not None]
        utilisation = f", GPU utilisation {statistics.mean(gpu):.0f} %" if gpu else ", GPU utilisation n/a"
        print(f"{path:>7}: {rates[path]:8.2f} training patches/s{utilisation}")
    print(f"  ratio medseg / stock: {rates['medseg'] / rates['stock']:.2f}x")


if __name__ == "__main__":
    main()
