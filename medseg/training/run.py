"""``medseg train``: hand a dataset to a bundle's ``train.json`` and run it.

medseg discovers the cases, splits them into training and validation, and passes both lists, the
output folder, device and epochs to the bundle as overrides. The training loop, transforms,
network, loss and checkpoints are the bundle's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg.bundles import Bundle, append_to, load_workflow, run_workflow
from medseg.data.discover import Case, discover
from medseg.devices import device_expression
from medseg.errors import MedsegError
from medseg.io.atomic import write_text
from medseg.weights import check_weights

VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class TrainResult:
    """Where a training run left its files.

    Args:
        output: the run folder.
        best_weights: ``model.pt`` with the best validation metric (absent if never validated).
        history: ``history.csv``, one row per epoch.
    """

    output: Path
    best_weights: Path
    history: Path


def split_cases(cases: list[Case], fraction: float = VALIDATION_FRACTION) -> tuple[list[Case], list[Case]]:
    """Deterministic hold-out split: cases sorted by image path, the last ``fraction`` validate."""
    if len(cases) < 2:
        raise MedsegError(f"training needs at least 2 labelled cases (one to validate), found {len(cases)}")
    ordered = sorted(cases, key=lambda case: case["image"])
    n_val = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
    return ordered[:-n_val], ordered[-n_val:]


def default_output(bundle: Bundle) -> Path:
    """``runs/<bundle>-<date>-<time>`` in the current folder."""
    return Path("runs") / f"{bundle.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    bundle: Bundle,
    data_dir: str | Path,
    *,
    output: str | Path | None = None,
    epochs: int | None = None,
    device: str = "auto",
    init_weights: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train a bundle on a dataset folder.

    Args:
        bundle: the bundle whose ``train.json`` runs.
        data_dir: dataset folder (see :func:`medseg.data.discover.discover`).
        output: run folder for checkpoints and logs; defaults to :func:`default_output`.
        epochs: overrides ``train#trainer#max_epochs``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        init_weights: start from these weights (fine-tuning) instead of a random initialisation.
        overrides: further config overrides, id to value (e.g. ``{"learning_rate": 1e-4}``).

    Returns:
        Paths of the best weights and the per-epoch history.
    """
    dataset = discover(data_dir)
    training, validation = split_cases(dataset.training)
    run_dir = Path(output) if output is not None else default_output(bundle)
    if epochs is not None and epochs < 1:
        raise MedsegError(f"--epochs must be at least 1, got {epochs}")
    config: dict[str, Any] = {
        "train#dataset#data": training,
        "validate#dataset#data": validation,
        "ckpt_dir": str(run_dir.resolve()),
        "output_dir": str(run_dir.resolve()),
        "device": device_expression(device),
        **(overrides or {}),
    }
    if epochs is not None:
        config["train#trainer#max_epochs"] = epochs
    handlers: list[dict[str, Any]] = []
    if init_weights is not None:
        handlers.append(
            {
                "_target_": "CheckpointLoader",
                "load_path": str(check_weights(init_weights).resolve()),
                "load_dict": {"model": "@train#trainer#network"},
                "map_location": "cpu",
            }
        )
    history = run_dir / "history.csv"
    handlers.append(
        {
            "_target_": "medseg.training.history.HistoryRecorder",
            "path": str(history),
            "validator": "@validate#evaluator",
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    split = {"train": [c["image"] for c in training], "validation": [c["image"] for c in validation]}
    write_text(run_dir / "split.json", json.dumps(split, indent=2) + "\n")
    workflow = load_workflow(bundle, ["train"], workflow_type="train", overrides=config)
    append_to(workflow, "train#handlers", handlers)
    run_workflow(workflow)
    return TrainResult(run_dir, run_dir / "model.pt", history)
