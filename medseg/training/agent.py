"""The ``torchrun`` agent of ``medseg train --nproc``: PyTorch's elastic launcher, its failures told in one line.

``torchrun`` reports a failed training process with every process's traceback and a page of its
own summary. This runs the same launcher (``torch.distributed.run``'s arguments and ``run``) with
its log lines dropped, and turns the ``ChildFailedError`` it raises into one line that names the
first rank that failed and why: the exception that process recorded (see
:func:`medseg.training.launch.main`), or the signal that ended it. The line goes to a file that
``medseg train`` reads::

    python -m medseg.training.agent FAILURE_FILE TORCHRUN_ARGUMENTS...
"""

from __future__ import annotations

import sys
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.run import get_args_parser, run

from medseg.engine_logs import engine_logs_silenced, inherit_debug
from medseg.io.atomic import write_text


def _reason(failure: ProcessFailure) -> str:
    """What ended one process: its recorded exception, the signal that killed it, or its exit status."""
    if Path(failure.error_file).is_file():
        message = failure.message
        return message["message"] if isinstance(message, dict) else str(message)
    if failure.exitcode < 0:
        return f"killed by {failure.signal_name()} (out of memory, or stopped from outside)"
    return f"exit status {failure.exitcode}"


def failure_line(error: ChildFailedError) -> str:
    """One line naming the first process that failed and why."""
    rank, failure = error.get_first_failure()
    return f"the training process of rank {rank} failed: {_reason(failure)}"


def main(argv: list[str] | None = None) -> None:
    """Run ``torchrun`` with the given arguments; on a failure, write its line to the failure file and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        raise SystemExit("usage: python -m medseg.training.agent FAILURE_FILE TORCHRUN_ARGUMENTS...")
    inherit_debug()
    try:
        with engine_logs_silenced():
            run(get_args_parser().parse_args(args[1:]))
    except ChildFailedError as error:
        write_text(Path(args[0]), failure_line(error) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
