"""Checkpoints written whole or not at all.

MONAI's ``CheckpointSaver`` saves through ignite's ``DiskSaver`` with ``atomic=False`` (ignite's atomic
mode leaves files readable by their owner only), so a run killed while saving leaves a truncated
``model.pt`` that the next ``--resume`` or ``medseg infer`` chokes on. :class:`AtomicCheckpointSaver`
is the same handler with each save going through :func:`medseg.io.atomic.atomic_file`. medseg puts it
in place of the bundle's ``CheckpointSaver`` by override when it trains; the bundle's configs keep
MONAI's (they stay portable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from monai.handlers import CheckpointSaver

from medseg.io.atomic import atomic_file


def _save_atomically(kwargs: Mapping[str, Any], checkpoint: Mapping, path: Path, save: Callable[..., None]) -> None:
    """``DiskSaver._save_func``'s job: ``save(checkpoint, path)``, through a temporary file."""
    with atomic_file(path) as temporary:
        save(checkpoint, temporary, **kwargs)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` (same arguments) whose checkpoint files appear only when complete."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                disk = checkpoint.save_handler
                disk._save_func = partial(_save_atomically, disk.kwargs)  # type: ignore[method-assign]  # no option for it
