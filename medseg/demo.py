"""``medseg demo``: the whole job on embedded data, in a few minutes on a laptop CPU.

1. write a small synthetic CT dataset (training and labelled test cases);
2. fine-tune the CT liver/tumour bundle's shipped weights on it for a couple of epochs, through
   the bundle's own ``train.json`` (the same path as ``medseg train``);
3. segment the test scans with the fine-tuned weights and score them against their labels;
4. print the Dice table, how to open the masks in 3D Slicer, and where the report is.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from medseg.errors import MedsegError
from medseg.io.atomic import write_text

DEMO_BUNDLE = "ct_liver_tumour_3d"
MARKER = ".medseg-demo"


def _fresh_output(output: Path) -> None:
    """Start from an empty folder; replace a previous demo's folder, never anything else."""
    if output.exists():
        if not (output / MARKER).is_file() and any(output.iterdir()):
            raise MedsegError("exists and was not made by `medseg demo`; choose another `output`", output)
        shutil.rmtree(output)
    output.mkdir(parents=True)
    write_text(output / MARKER, "made by medseg demo\n")


def _slicer_help(scan: Path, mask: Path) -> str:
    return (
        "Open a result in 3D Slicer (5.x):\n"
        f"  drag {scan} and {mask} into the Slicer window;\n"
        "  in the Add Data dialog tick 'Show Options' and choose 'Segmentation' for the _seg file.\n"
        "Or paste into Slicer's Python console:\n"
        f"  slicer.util.loadVolume(r'{scan}'); slicer.util.loadSegmentation(r'{mask}')"
    )


def run_demo(
    output: Path = Path("demo_output"),
    *,
    epochs: int = 2,
    train_cases: int = 6,
    test_cases: int = 4,
    seed: int = 2024,
    device: str = "auto",
) -> None:
    """Run the demo; see the module docstring. Everything lands in ``output``."""
    from medseg.bundles import find_bundle
    from medseg.evaluation import evaluate
    from medseg.report import dice_table
    from medseg.samples.datasets import write_ct_dataset
    from medseg.training.run import train

    start = time.monotonic()
    bundle = find_bundle(DEMO_BUNDLE)
    _fresh_output(output)
    data = output / "data"
    typer.echo(f"[1/4] writing {train_cases} training and {test_cases} test synthetic CT scans to {data}")
    write_ct_dataset(data, cases=train_cases, test_cases=test_cases, seed=seed)
    typer.echo(f"[2/4] fine-tuning {bundle.name} for {epochs} epochs (its train.json, from the shipped weights)")
    run = train(
        bundle,
        data,
        output=output / "training",
        epochs=epochs,
        device=device,
        init_weights=bundle.weights,
        overrides={"learning_rate": 1e-4, "val_interval": 1, "num_workers": 0},
    )
    typer.echo(f"[3/4] segmenting the test scans with {run.best_weights}")
    results = evaluate(run.bundle, data, output / "results", device=device, cases="test")
    typer.echo("[4/4] Dice against the test labels (on each scan's own grid):\n")
    typer.echo(dice_table(results, [label.name for label in bundle.labels if label.value]))
    masks = sorted((output / "results" / "masks").glob("*_seg.nii.gz"))
    scan = data / "imagesTs" / masks[0].name.replace("_seg.nii.gz", ".nii.gz")
    typer.echo(f"\nmasks: {output / 'results' / 'masks'}\n{_slicer_help(scan.resolve(), masks[0].resolve())}")
    typer.echo(f"volumes, lesions and pictures: {output / 'results' / 'masks' / 'report.html'}")
    typer.echo(f"\ndemo finished in {time.monotonic() - start:.0f} s")
