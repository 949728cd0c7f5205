"""Trainer handlers that tests hand to training processes (importable by torchrun's children as ``tests.probes``)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class CaseRecorder:
    """Write, per rank, the cases each epoch trained on (``cases_rank<R>.json``) and the final weights."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.seen: dict[int, list[str]] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._record)
        engine.add_event_handler(Events.COMPLETED, self._save)

    def _record(self, engine: Engine) -> None:
        names = [Path(item["image"].meta["filename_or_obj"]).name for item in engine.state.batch]
        self.seen.setdefault(engine.state.epoch, []).extend(names)

    def _save(self, engine: Engine) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"cases_rank{rank()}.json").write_text(json.dumps(self.seen))
        network = getattr(engine.network, "module", engine.network)
        torch.save(network.state_dict(), self.folder / f"weights_rank{rank()}.pt")


class KillAt:
    """Kill this process with SIGKILL (no handler runs, nothing is saved) when epoch ``epoch`` starts.

    It kills once: the ``marker`` file it leaves spares the resumed run, which keeps its handlers.
    """

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, Path(marker)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED(once=self.epoch), self._kill)

    def _kill(self, engine: Engine) -> None:
        if not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


class CtrlC:
    """An inferer that presses Ctrl-C: it sends SIGINT to its own process, in the engine's network step."""

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args, **kwargs) -> torch.Tensor:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)  # the KeyboardInterrupt is raised here
        raise AssertionError("SIGINT did not interrupt the network step")


class FailOnRank:
    """Raise ``RuntimeError(message)`` on rank ``rank`` when the first epoch starts."""

    def __init__(self, rank: int, message: str) -> None:
        self.rank, self.message = rank, message

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED(once=1), self._fail)

    def _fail(self, engine: Engine) -> None:
        if rank() == self.rank:
            raise RuntimeError(self.message)
