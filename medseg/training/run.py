"""``medseg train``: check a dataset, derive the run's bundle, and run its ``train.json``.

Steps, all before the first epoch:

1. discover the dataset and check every case (training refuses a dataset with errors);
2. fingerprint it and, unless told otherwise, derive the bundle's target spacing, patch size and
   CT normalisation from the fingerprint (:mod:`medseg.data.fingerprint`);
3. copy the bundle into the run folder with those values written into its configs, so that the
   run folder *is* a bundle: ``medseg infer RUN_FOLDER scan.nii.gz`` uses the same preprocessing;
4. pick the fold's training and validation cases (:mod:`medseg.data.splits`) and where to cache
   them (:mod:`medseg.data.caching`);
5. run the run-bundle's ``train.json`` through ``monai.bundle`` with the data lists, device and
   output folder as overrides. The training loop is the bundle's own.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg import __version__
from medseg.bundles import Bundle, append_to, derive_bundle, load_workflow, run_workflow, top_level_values
from medseg.data.caching import cache_overrides, choose_cache, estimate_bytes
from medseg.data.discover import discover
from medseg.data.fingerprint import Fingerprint, bundle_presets, fingerprint
from medseg.data.splits import fold_cases
from medseg.data.validate import DatasetReport, check_dataset
from medseg.devices import device_expression
from medseg.errors import MedsegError
from medseg.io.atomic import write_text
from medseg.weights import check_weights

PRESET_KEYS = ("spacing", "patch_size", "intensity")
PRESET_CHOICES = ("auto", "fingerprint", "bundle")


@dataclass(frozen=True)
class TrainResult:
    """Where a training run left its files.

    Args:
        bundle: the run folder, a complete bundle (configs, ``models/model.pt``, docs).
        best_weights: ``models/model.pt``, the weights with the best validation metric.
        history: ``history.csv``, one row per epoch.
    """

    bundle: Bundle
    best_weights: Path
    history: Path

    @property
    def output(self) -> Path:
        """The run folder."""
        return self.bundle.root


def default_output(bundle: Bundle) -> Path:
    """``runs/<bundle>-<date>-<time>`` in the current folder."""
    return Path("runs") / f"{bundle.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def checked_dataset(bundle: Bundle, data_dir: str | Path, say: Callable[[str], None]) -> DatasetReport:
    """Discover and check a dataset against the bundle's labels and channels; raise on errors."""
    dataset = discover(data_dir)
    report = check_dataset(
        dataset, labels={label.value for label in bundle.labels} or None, channels=bundle.input_channels
    )
    for problem in report.problems:
        say(str(problem))
    if report.errors:
        raise MedsegError(f"the dataset has {len(report.errors)} error(s), listed above; not training", data_dir)
    if len(dataset.training) < 2:
        raise MedsegError(f"training needs at least 2 labelled cases, found {len(dataset.training)}", data_dir)
    return report


def _presets(bundle: Bundle, fp: Fingerprint, mode: str, fine_tuning: bool) -> dict[str, Any]:
    """Settings from the fingerprint, never finer than the bundle's own spacing (its compute budget)."""
    if mode not in PRESET_CHOICES:
        raise MedsegError(f"--presets must be one of {', '.join(PRESET_CHOICES)}, got {mode!r}")
    if mode == "bundle" or (mode == "auto" and fine_tuning):
        return {}
    defaults = top_level_values(bundle, "train", PRESET_KEYS)
    modality = bundle.metadata.get("network_data_format", {}).get("inputs", {}).get("image", {}).get("modality", "")
    presets = bundle_presets(fp, defaults, modality)
    if "spacing" in presets:  # a bundle spacing <= 0 keeps each scan's own spacing on that axis, as MONAI does
        pairs = zip(presets["spacing"], defaults["spacing"], strict=True)
        presets["spacing"] = [own if own <= 0 else max(data, own) for data, own in pairs]
    return presets


def _record(run_dir: Path, **facts: Any) -> None:
    import monai
    import torch

    facts["versions"] = {
        "medseg": __version__,
        "monai": monai.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    facts["command"] = sys.argv
    write_text(run_dir / "run.json", json.dumps(facts, indent=2, default=str) + "\n")


def train(
    bundle: Bundle,
    data_dir: str | Path,
    *,
    output: str | Path | None = None,
    epochs: int | None = None,
    device: str = "auto",
    fold: int = 0,
    init_weights: str | Path | None = None,
    presets: str = "auto",
    cache_memory: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Train a bundle on a dataset.

    Args:
        bundle: the bundle whose ``train.json`` runs.
        data_dir: dataset folder or CSV (see :func:`medseg.data.discover.discover`).
        output: run folder; defaults to :func:`default_output`. It must not hold a run already.
        epochs: overrides ``train#trainer#max_epochs``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        fold: cross-validation fold (see :mod:`medseg.data.splits`).
        init_weights: start from these weights (fine-tuning) instead of a random initialisation.
        presets: ``fingerprint`` (spacing, patch size and CT normalisation from the data),
            ``bundle`` (the bundle's own values) or ``auto`` (fingerprint, except when fine-tuning).
        cache_memory: memory budget in bytes for caching preprocessed cases; default half the
            available memory. Over it, cases are cached on disk.
        overrides: further config overrides (e.g. ``{"learning_rate": 1e-4}``); top-level keys are
            also written into the run's configs.
        say: where progress messages go.

    Returns:
        The run folder (a bundle), its best weights and its per-epoch history.
    """
    if epochs is not None and epochs < 1:
        raise MedsegError(f"--epochs must be at least 1, got {epochs}")
    run_dir = Path(output) if output is not None else default_output(bundle)
    if (run_dir / "configs").exists():
        raise MedsegError("already holds a training run; choose a new --output", run_dir)
    report = checked_dataset(bundle, data_dir, say)
    fp = fingerprint(report.stats)
    values = {**_presets(bundle, fp, presets, init_weights is not None), **(overrides or {})}
    run_bundle = derive_bundle(bundle, run_dir, {k: v for k, v in values.items() if "#" not in k})
    write_text(run_dir / "fingerprint.json", json.dumps(fp.to_dict(), indent=2) + "\n")
    dataset = report.dataset
    training, validation, splits = fold_cases(dataset.training, fold, dataset_dir=dataset.root, output_dir=run_dir)
    spacing = top_level_values(run_bundle, "train", ["spacing"]).get("spacing", fp.target_spacing)
    cache = choose_cache(estimate_bytes(fp, spacing, len(training) + len(validation)), run_dir / "cache", cache_memory)
    say(str(cache))
    config: dict[str, Any] = {
        **cache_overrides(cache, [c.as_dict() for c in training], [c.as_dict() for c in validation]),
        "ckpt_dir": str((run_dir / "models").resolve()),
        "output_dir": str(run_dir.resolve()),
        "device": device_expression(device),
        **(overrides or {}),
    }
    if epochs is not None:
        config["train#trainer#max_epochs"] = epochs
    _record(
        run_dir,
        bundle=str(bundle.root),
        data=str(Path(data_dir).resolve()),
        fold=fold,
        splits=str(splits),
        train_cases=[c.id for c in training],
        validation_cases=[c.id for c in validation],
        presets=values,
        epochs=epochs,
        device=device,
        init_weights=str(init_weights) if init_weights else None,
        cache=str(cache),
    )
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
    recorder = "medseg.training.history.HistoryRecorder"
    handlers.append({"_target_": recorder, "path": str(history), "validator": "@validate#evaluator"})
    workflow = load_workflow(run_bundle, ["train"], workflow_type="train", overrides=config)
    append_to(workflow, "train#handlers", handlers)
    run_workflow(workflow)
    return TrainResult(run_bundle, run_bundle.weights, history)
