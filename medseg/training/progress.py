"""A terminal progress bar for the trainer: one bar per epoch with the running loss and the epoch's ETA."""

from __future__ import annotations

from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar
from monai.handlers import from_engine


class LossProgressBar(ProgressBar):
    """ignite's ``ProgressBar``, attached so that it shows the trainer's loss.

    MONAI attaches trainer handlers with ``handler.attach(engine)`` alone; ignite's bar needs its
    ``output_transform`` at attach time, which this class supplies.

    Args:
        loss_key: key of the loss in the trainer's output.
        tqdm_kwargs: passed to ``ProgressBar`` (``persist``, ``bar_format``, ...).
    """

    def __init__(self, loss_key: str = "loss", **tqdm_kwargs: Any) -> None:
        super().__init__(**tqdm_kwargs)
        self.loss_key = loss_key

    def attach(self, engine: Engine, **kwargs: Any) -> None:  # type: ignore[override]
        """Show ``{loss_key: value}`` beside the bar of each epoch (``kwargs`` as ``ProgressBar.attach``'s)."""
        loss = from_engine([self.loss_key], first=True)
        super().attach(engine, output_transform=lambda output: {self.loss_key: loss(output)}, **kwargs)
