"""An ignite handler that writes one CSV row per training epoch: loss, learning rate, validation metrics."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from medseg.io.atomic import write_text


class HistoryRecorder:
    """Record the mean training loss of each epoch and the latest validation metrics.

    Attach it to the trainer after the validation handler, so that an epoch's row carries the
    metrics of the validation run at the end of that epoch (empty on epochs without one).

    Rows of earlier epochs already in the file are kept: a resumed run appends to its history, and
    drops the rows of any epoch it trains again (one finished after the last checkpoint).

    Args:
        path: CSV file to (re)write after every epoch.
        validator: the evaluator whose ``state.metrics`` to record, or None.
        loss_key: key of the loss in the trainer's output dicts.
    """

    def __init__(self, path: str | Path, validator: Engine | None = None, loss_key: str = "loss") -> None:
        self.path = Path(path)
        self.validator = validator
        self.loss_key = loss_key
        self.rows: list[dict[str, Any]] | None = None
        self._losses: list[float] = []
        self._validated_at = -1

    def attach(self, engine: Engine) -> None:
        """Register with the trainer ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._losses = []
        if self.rows is None:
            self.rows = [row for row in self._earlier_rows() if int(row["epoch"]) < engine.state.epoch]

    def _earlier_rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def _collect(self, engine: Engine) -> None:
        output: Any = engine.state.output  # the trainer's output_transform decides its type
        items = output if isinstance(output, list) else [output]
        self._losses.extend(float(item[self.loss_key]) for item in items if self.loss_key in item)

    def _write(self, engine: Engine) -> None:
        row: dict[str, Any] = {
            "epoch": engine.state.epoch,
            "train_loss": sum(self._losses) / len(self._losses) if self._losses else math.nan,
            "lr": engine.optimizer.param_groups[0]["lr"] if hasattr(engine, "optimizer") else math.nan,
        }
        validator = self.validator
        if validator is not None and validator.state.epoch != self._validated_at and validator.state.metrics:
            self._validated_at = validator.state.epoch
            row.update({name: float(value) for name, value in validator.state.metrics.items()})
        assert self.rows is not None, "an epoch completed before it started"
        self.rows.append(row)
        columns = list(dict.fromkeys(key for r in self.rows for key in r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buffer.getvalue())
