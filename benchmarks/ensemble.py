"""Dice of an ensemble of cross-validation folds against its members, on labelled test scans.

Trains ``--folds`` folds of the CT bundle on one synthetic dataset (``medseg train --fold K``, the
same settings and seed for each), then segments the dataset's labelled test scans with each fold
alone and with the ensemble of all folds (``medseg infer --weights a.pt b.pt ...``, the fast path),
and prints each label's mean Dice on the scans' own grids: every member, the members' mean, the
ensemble, and the ensemble's gain over the members' mean and over the best member.

    python benchmarks/ensemble.py                  # 3 folds, 12 + 4 small-grid cases, 12 epochs
    python benchmarks/ensemble.py --folds 5 --epochs 30
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

BUNDLE = "ct_liver_tumour_3d"
TINY = {"spacing": [6.0, 6.0, 6.0], "patch_size": [32, 32, 32], "num_workers": 0, "val_interval": 1}


def label_dice(results: list, labels: list[str]) -> dict[str, float]:
    from medseg.evaluation import mean_dice

    return {label: mean_dice(results, label) for label in labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--test-cases", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from medseg.bundles import find_bundle
    from medseg.evaluation import evaluate
    from medseg.samples.datasets import write_ct_dataset
    from medseg.training.run import train

    torch.set_num_threads(1)
    bundle = find_bundle(BUNDLE)
    labels = [label.name for label in bundle.labels if label.value]
    with tempfile.TemporaryDirectory(prefix="medseg-ensemble-bench-") as scratch:
        root = Path(scratch)
        data = write_ct_dataset(root / "data", cases=args.cases, test_cases=args.test_cases, seed=5, preset="small")
        runs = [
            train(
                bundle,
                data,
                output=root / f"fold{fold}",
                epochs=args.epochs,
                device="cpu",
                fold=fold,
                presets="bundle",
                seed=args.seed,
                overrides=TINY,
                say=lambda _: None,
            )
            for fold in range(args.folds)
        ]
        members = [
            label_dice(evaluate(run.bundle, data, root / f"eval{fold}", device="cpu"), labels)
            for fold, run in enumerate(runs)
        ]
        weights = [run.best_weights for run in runs]
        ensemble = label_dice(evaluate(runs[0].bundle, data, root / "ensemble", weights=weights, device="cpu"), labels)
    print(
        f"{BUNDLE}: {args.folds} folds of {args.cases} synthetic cases, {args.epochs} epochs each, "
        f"settings {TINY}, Dice on {args.test_cases} labelled test scans"
    )
    print(f"{'':>16}" + "".join(f"{label:>10}" for label in labels))
    for fold, dice in enumerate(members):
        print(f"{f'fold {fold}':>16}" + "".join(f"{dice[label]:10.3f}" for label in labels))
    mean = {label: sum(m[label] for m in members) / len(members) for label in labels}
    best = {label: max(m[label] for m in members) for label in labels}
    for name, values in (("members' mean", mean), ("ensemble", ensemble)):
        print(f"{name:>16}" + "".join(f"{values[label]:10.3f}" for label in labels))
    print(f"{'gain over mean':>16}" + "".join(f"{ensemble[label] - mean[label]:+10.3f}" for label in labels))
    print(f"{'gain over best':>16}" + "".join(f"{ensemble[label] - best[label]:+10.3f}" for label in labels))


if __name__ == "__main__":
    main()
