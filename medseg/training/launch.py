"""The launch spec of a training run, and the one function every training process runs it with.

``medseg train`` prepares a run once (dataset checks, fingerprint, run bundle, split, cache) and
writes what the training processes need to ``RUN/launch.json``: which of the run bundle's configs
to merge, the config overrides, the handlers to add to the trainer, the tracking backend and the
checkpoint to resume from. The single in-process run and each ``torchrun`` child
(``python -m medseg.training.launch RUN/launch.json``) then build the same ``monai.bundle``
workflow from it with :func:`run_spec`; none of them prepares anything again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

from medseg.bundles import Bundle, append_to, load_workflow, run_workflow
from medseg.engine_logs import inherit_debug
from medseg.errors import root_cause
from medseg.io.atomic import write_text
from medseg.quiet import quiet_libraries
from medseg.training.quiet import QUIET_FAILURES

if TYPE_CHECKING:
    from monai.bundle import ConfigWorkflow

SPEC_FILE = "launch.json"


@dataclass
class LaunchSpec:
    """What a training process runs.

    Args:
        bundle: the run folder (a bundle) whose configs run.
        configs: config names merged in order: ``["train"]``, or ``["train", "multi_gpu_train"]``.
        overrides: config id to value.
        handlers: config items appended to ``train#handlers``.
        tracking: ``"mlflow"`` to add MONAI's MLflow handlers, or None.
        resume_from: a trainer checkpoint to restore before the first epoch, or None.
    """

    bundle: str
    configs: list[str]
    overrides: dict[str, Any]
    handlers: list[dict[str, Any]] = field(default_factory=list)
    tracking: str | None = None
    resume_from: str | None = None

    def save(self, path: Path) -> Path:
        """Write the spec as JSON to ``path``."""
        write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> LaunchSpec:
        """Read a spec written by :meth:`save`."""
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def _restore_before_training(workflow: ConfigWorkflow, checkpoint: str) -> None:
    """Load every object the trainer checkpoint saves (``train#checkpoint#save_dict``) when training starts."""
    workflow.parser["train#resume"] = {
        "_target_": "CheckpointLoader",
        "load_path": checkpoint,
        "load_dict": "@train#checkpoint#save_dict",
        "map_location": "@device",
    }
    workflow.parser["run"] = ["$@train#resume.attach(@train#trainer)", *workflow.parser["run"]]


def build_workflow(spec: LaunchSpec) -> ConfigWorkflow:
    """The run bundle's training workflow as the spec describes it, not yet initialised."""
    workflow = load_workflow(
        Bundle(Path(spec.bundle)), spec.configs, workflow_type="train", overrides=spec.overrides, tracking=spec.tracking
    )
    append_to(workflow, "train#handlers", spec.handlers)
    if spec.resume_from is not None:
        _restore_before_training(workflow, spec.resume_from)
    return workflow


def run_spec(spec: LaunchSpec) -> None:
    """Build, run and finalise the spec's workflow."""
    run_workflow(build_workflow(spec))


def main(argv: list[str] | None = None) -> None:
    """``python -m medseg.training.launch RUN/launch.json``: what each ``torchrun`` process runs.

    A failure is recorded in the error file ``torchrun`` gives the process, for the agent to report
    in one line (:mod:`medseg.training.agent`); its traceback is printed only under ``--debug``.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m medseg.training.launch RUN/launch.json")
    debug = inherit_debug()
    if not debug:
        quiet_libraries()
    spec = LaunchSpec.load(Path(args[0]))
    try:
        run_spec(spec if debug else replace(spec, handlers=[*spec.handlers, QUIET_FAILURES]))
    except Exception as error:
        ErrorHandler().record_exception(root_cause(error))
        if debug:
            raise
        sys.exit(1)


if __name__ == "__main__":
    main()
