"""Validation that also runs at a run's last epoch, so that every run leaves its best weights."""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.handlers import ValidationHandler


class LastEpochValidation(ValidationHandler):
    """MONAI's ``ValidationHandler`` that also validates at the trainer's last epoch, whatever the interval.

    A bundle validates every ``val_interval`` epochs and saves ``models/model.pt`` when its metric
    improves; a run shorter than the interval (``--epochs 1`` against an interval of 5), or one
    whose last epoch falls between two validations, would end without them. Validating at the
    last epoch too gives every run a model, and the model of its last epoch a score. Handlers
    validating every N iterations (``epoch_level=False``) are left as they are.
    """

    def attach(self, engine: Engine) -> None:
        """Validate every ``interval`` epochs, and at the last epoch when the interval skips it."""
        super().attach(engine)
        if self.epoch_level:
            engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=self._skipped_last_epoch), self)

    def _skipped_last_epoch(self, engine: Engine, epoch: int) -> bool:
        return epoch == engine.state.max_epochs and epoch % self.interval != 0
