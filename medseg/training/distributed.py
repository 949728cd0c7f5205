"""Launch a prepared training run on several processes with ``torchrun`` (PyTorch's elastic launcher).

Each process runs ``python -m medseg.training.launch RUN/launch.json``: the run bundle's
``train.json`` merged with its ``multi_gpu_train.json`` (``DistributedSampler``,
``DistributedDataParallel``, one process per device, logging and saving on rank 0 only). The
ranks share the validation cases; a fold with fewer validation cases than ranks is validated whole
by every rank, so that any fold works with any number of processes (the metric, gathered from all
ranks, counts each case once per rank: its mean is the fold's). ``torchrun`` runs under medseg's
agent (:mod:`medseg.training.agent`), which reports a failure in one line naming the rank.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import medseg
from medseg.engine_logs import debug_environment
from medseg.errors import MedsegError


@dataclass(frozen=True)
class Launcher:
    """How many processes, on how many nodes, meeting where.

    Args:
        nproc: processes on this node (one per GPU, or CPU processes with the gloo backend).
        nnodes: number of nodes (``"2"``, or an elastic range such as ``"1:4"``).
        rdzv_backend: rendezvous backend for several nodes (``c10d``).
        rdzv_endpoint: ``host:port`` every node can reach; needed for several nodes.
    """

    nproc: int
    nnodes: str = "1"
    rdzv_backend: str = "c10d"
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.nproc < 1:
            raise MedsegError(f"`nproc` must be at least 1, got {self.nproc}")
        if self.nnodes != "1" and self.rdzv_endpoint is None:
            raise MedsegError("training on several nodes needs `rdzv_endpoint='HOST:PORT'`")

    def command(self, spec: Path) -> list[str]:
        """The command line that runs ``spec`` on this node: ``torchrun``'s, through medseg's agent.

        The agent writes why the processes failed, if they do, to ``failure_file(spec)``.
        """
        agent = [sys.executable, "-m", "medseg.training.agent", str(failure_file(spec).resolve())]
        command = [*agent, f"--nproc-per-node={self.nproc}"]
        if self.rdzv_endpoint is None:
            command.append("--standalone")  # one node, on a free port
        else:
            command += [
                f"--nnodes={self.nnodes}",
                f"--rdzv-backend={self.rdzv_backend}",
                f"--rdzv-endpoint={self.rdzv_endpoint}",
            ]
        return [*command, "-m", "medseg.training.launch", str(spec.resolve())]


def failure_file(spec: Path) -> Path:
    """Where the agent writes why the training processes of ``spec`` failed: ``RUN/failure.txt``."""
    return spec.parent / "failure.txt"


def _environment() -> dict[str, str]:
    """This environment, with the medseg that prepared the run first on the children's path, and ``--debug``."""
    package_root = str(Path(medseg.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    python_path = package_root if not path else os.pathsep.join([package_root, path])
    return {**os.environ, "PYTHONPATH": python_path, **debug_environment()}


def run_torchrun(launcher: Launcher, spec: Path) -> None:
    """Run the spec's workflow in ``launcher.nproc`` processes and wait for them.

    Raises:
        MedsegError: when any process fails: which rank failed first, and why.
    """
    failure = failure_file(spec)
    failure.unlink(missing_ok=True)
    status = subprocess.run(launcher.command(spec), env=_environment(), check=False).returncode
    if status == 0:
        return
    if failure.is_file():
        raise MedsegError(failure.read_text(encoding="utf-8").strip())
    raise MedsegError(f"the training processes failed (torchrun exit status {status})")
