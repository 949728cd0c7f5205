"""What medseg adds to a bundle's training workflow, as config items: handlers and checkpoint entries.

Everything here is found by the component it builds (its ``_target_`` in any spelling) in the
bundle's ``train.json`` rather than by a fixed position, and is switched off on every process but
rank 0 where it writes or prints
(``"_disabled_": "@is_not_rank0"``, the flag the bundles and MONAI's tracking settings share).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medseg.bundle_config import target_name

RANK0_ONLY = {"_disabled_": "@is_not_rank0"}


def _index(items: list[Any], target: str, **values: Any) -> int | None:
    """Position of the first config dict in ``items`` that builds ``target`` (any spelling) with these values."""
    for index, item in enumerate(items):
        if target_name(item) == target and values.items() <= item.items():
            return index
    return None


def history_handler(path: Path) -> dict[str, Any]:
    """The trainer handler that writes ``history.csv`` (one row per epoch)."""
    return {
        "_target_": "medseg.training.history.HistoryRecorder",
        **RANK0_ONLY,
        "path": str(path),
        "validator": "@validate#evaluator",
    }


def init_weights_handler(weights: Path) -> dict[str, Any]:
    """The trainer handler that loads starting weights (fine-tuning) before the first epoch."""
    return {
        "_target_": "CheckpointLoader",
        "load_path": str(weights),
        "load_dict": {"model": "@train#trainer#network"},
        "map_location": "cpu",
    }


def progress_bar(train_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Overrides and a handler that replace the per-iteration log lines by a progress bar.

    The bundle's ``StatsHandler`` keeps its per-epoch lines; ignite's progress bar shows each
    epoch's iterations with the running loss and the time left.

    Returns:
        The overrides (``iteration_log`` off) and the progress-bar handler.
    """
    index = _index(train_config["train"]["handlers"], "StatsHandler")
    overrides = {} if index is None else {f"train#handlers#{index}#iteration_log": False}
    return overrides, {"_target_": "medseg.training.progress.LossProgressBar", **RANK0_ONLY, "persist": True}


def checkpoint_entries(train_config: dict[str, Any]) -> dict[str, Any]:
    """Overrides that add the random state and the best metric to the trainer checkpoint ``train#checkpoint``.

    Bundles without a trainer checkpoint get none (and cannot be resumed).
    """
    if "checkpoint" not in train_config["train"]:
        return {}
    entries: dict[str, Any] = {"train#checkpoint#save_dict#rng": {"_target_": "medseg.training.resume.RandomState"}}
    saver = _index(train_config["validate"]["handlers"], "CheckpointSaver", save_key_metric=True)
    if saver is not None:
        entries["train#checkpoint#save_dict#best"] = {
            "_target_": "medseg.training.resume.BestMetric",
            "validator": "@validate#evaluator",
            "saver": f"@validate#handlers#{saver}",
            "filename": f"@validate#handlers#{saver}#key_metric_filename",
        }
    return entries


def last_epoch_validation(train_config: dict[str, Any]) -> dict[str, Any]:
    """The override that puts :class:`~medseg.training.validation.LastEpochValidation` for ``ValidationHandler``."""
    index = _index(train_config["train"]["handlers"], "ValidationHandler")
    if index is None:
        return {}
    return {f"train#handlers#{index}#_target_": "medseg.training.validation.LastEpochValidation"}


def atomic_checkpoints(train_config: dict[str, Any]) -> dict[str, Any]:
    """Overrides that put :class:`~medseg.training.checkpoints.AtomicCheckpointSaver` for each ``CheckpointSaver``."""
    places = [("train#checkpoint", train_config["train"].get("checkpoint"))]
    for section in ("train", "validate"):
        places += [(f"{section}#handlers#{i}", item) for i, item in enumerate(train_config[section]["handlers"])]
    return {
        f"{place}#_target_": "medseg.training.checkpoints.AtomicCheckpointSaver"
        for place, item in places
        if target_name(item) == "CheckpointSaver"
    }
