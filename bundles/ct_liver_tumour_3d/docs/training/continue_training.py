"""Continue the shipped-weights training of this bundle from a checkpoint, single-threaded.

Runs a bundle's ``train.json`` through ``monai.bundle`` as ``python -m monai.bundle run`` would, with
overrides for the data, output, epochs and learning rate, one extra handler that loads the starting
weights, and medseg's ``HistoryRecorder`` for the per-epoch history. Stages 2 and 3 of the shipped
weights were made with it (see ``../README.md``, Training). Stage 2 ran the bundle as it was at commit
87b10e5 (polynomial decay; its ``train.json`` is saved here as ``stage1_train.json``)::

    git worktree add ../at-87b10e5 87b10e5
    python continue_training.py --bundle ../at-87b10e5/bundles/ct_liver_tumour_3d \
        --init stage1/model_epoch60.pt --epochs 131 --lr 1.4e-3 --data DATA --output stage2
    python continue_training.py --bundle bundles/ct_liver_tumour_3d \
        --init stage2/model.pt --epochs 50 --lr 1.2e-3 --data DATA --output stage3
"""

import argparse
from pathlib import Path

import torch

from medseg.bundles import append_to, find_bundle, load_workflow, run_workflow


def main() -> None:
    """Parse the arguments and run the training."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder whose train.json runs")
    parser.add_argument("--init", type=Path, required=True, help="weights to start from")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True, help="starting learning rate")
    parser.add_argument("--data", type=Path, required=True, help="MSD dataset (medseg sample-data ct, seed 0)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    torch.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    workflow = load_workflow(
        find_bundle(args.bundle),
        ["train"],
        workflow_type="train",
        overrides={
            "dataset_dir": str(args.data),
            "ckpt_dir": str(args.output),
            "output_dir": str(args.output),
            "device": "$torch.device('cpu')",
            "num_workers": 1,
            "train#trainer#max_epochs": args.epochs,
            "learning_rate": args.lr,
        },
    )
    start = {"_target_": "CheckpointLoader", "load_path": str(args.init), "load_dict": {"model": "@network"}}
    history = {
        "_target_": "medseg.training.history.HistoryRecorder",
        "path": str(args.output / "history.csv"),
        "validator": "@validate#evaluator",
    }
    append_to(workflow, "train#handlers", [start, history])
    run_workflow(workflow)


if __name__ == "__main__":
    main()
