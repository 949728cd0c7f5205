"""Resuming a training run: what its checkpoints hold beyond the bundle's own, and which one to resume from.

The bundle's ``train#checkpoint`` (a MONAI ``CheckpointSaver`` on the trainer) saves the network,
optimiser, learning-rate scheduler and trainer state every epoch and when training stops. medseg adds
two entries to it, both plain tensors and numbers so that the file loads with
``torch.load(weights_only=True)``:

- ``rng``: the Python, NumPy and torch random generators (:class:`RandomState`);
- ``best``: the validator's best key metric (:class:`BestMetric`), so that a resumed run replaces
  ``models/model.pt`` only with a better model.

``--resume`` loads every entry back with MONAI's ``CheckpointLoader`` before the first resumed epoch.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from ignite.engine import Engine
from monai.handlers import CheckpointSaver

from medseg.errors import MedsegError

CHECKPOINT_GLOB = "checkpoint_*.pt"


class RandomState:
    """The global random generators as a checkpointable object (``state_dict`` / ``load_state_dict``)."""

    def state_dict(self) -> dict[str, Any]:
        """The Python, NumPy, torch CPU and (where present) CUDA generator states."""
        version, python_state, gauss = random.getstate()
        legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())  # MT19937's, as a tuple
        name, keys, position, has_gauss, cached = legacy
        return {
            "python": [version, list(python_state), gauss],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generators saved by :meth:`state_dict`."""
        version, python_state, gauss = state["python"]
        random.setstate((version, tuple(python_state), gauss))
        name, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class BestMetric:
    """The validator's best key metric as a checkpointable object.

    Restoring it sets the validator's ``best_metric`` and tells the ``CheckpointSaver`` that writes
    the best model which score its file has, so a resumed run overwrites it only when it does better.

    Args:
        validator: the evaluator whose ``state.best_metric`` MONAI keeps.
        saver: the validator's key-metric ``CheckpointSaver``.
        filename: the saver's ``key_metric_filename``.
    """

    def __init__(self, validator: Engine, saver: CheckpointSaver, filename: str = "model.pt") -> None:
        self.validator, self.saver, self.filename = validator, saver, filename

    def state_dict(self) -> dict[str, float | int]:
        """The best key metric and the epoch it was reached in (-1 before any validation)."""
        state = self.validator.state
        best, epoch = state.best_metric, state.best_metric_epoch  # type: ignore[attr-defined]  # set by MONAI's evaluator
        return {"best_metric": float(best), "best_metric_epoch": int(epoch)}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore the best metric; where one was reached, the saver's record of the best model too."""
        self.validator.state.best_metric = state["best_metric"]  # type: ignore[attr-defined]  # ignite's State
        self.validator.state.best_metric_epoch = state["best_metric_epoch"]  # type: ignore[attr-defined]  # takes any
        if state["best_metric_epoch"] >= 0:
            self.saver.load_state_dict({"_saved": [(state["best_metric"], self.filename)]})


def _trainer_state(path: Path) -> dict[str, int]:
    return torch.load(path, map_location="cpu", weights_only=True)["trainer"]


def checkpoint_iteration(path: Path) -> int:
    """The trainer iteration a checkpoint was saved at."""
    return int(_trainer_state(path)["iteration"])


def epochs_done(path: Path) -> int:
    """The epochs a checkpoint's trainer had finished."""
    state = _trainer_state(path)
    return int(state["iteration"]) // int(state["epoch_length"])


def latest_checkpoint(models_dir: Path) -> Path:
    """The trainer checkpoint saved last (the highest iteration) in ``models_dir``.

    Raises:
        MedsegError: when the run has saved no checkpoint yet.
    """
    found = sorted(models_dir.glob(CHECKPOINT_GLOB))
    if not found:
        raise MedsegError("`resume=True`: this run has saved no checkpoint to resume from", models_dir)
    return max(found, key=checkpoint_iteration)
